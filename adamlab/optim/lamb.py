"""LAMB: layer-wise adaptive large-batch steps (torch.optim has no LAMB)."""

import torch

from ..maths import lamb
from .base import Optimizer


class LAMB(Optimizer):
    r"""LAMB: Adam's direction plus decoupled decay, scaled per tensor by a trust ratio.

    .. code-block:: text

        r     = m_hat / (sqrt(v_hat) + eps)          as Adam
        u     = r + weight_decay * theta
        theta = theta - lr * (||theta|| / ||u||) * u  (ratio 1 when either norm is 0)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3): each tensor
            moves by lr times its own norm.
        betas: decay rates (beta1, beta2) of the two moments, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) in the denominator (default 1e-6).
        weight_decay: decoupled decay rate, inside the trust ratio (default 0).
        {maximize}
        fused: None (default) takes the fused step where it can (the CPU kernel, in two
            passes: the trust ratio needs a tensor's norms before it moves; or the compiled
            maths on CUDA), False forces the simple path, True demands the fused step.
        {stochastic_rounding}

    Example::

        optimizer = adamlab.LAMB(model.parameters(), lr=1e-2, weight_decay=0.01)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76
    minutes" (ICLR 2020), with phi = identity. pytorch-optimizer's ``Lamb`` differs: it
    bias-corrects m only (its step is this one divided by 1 - beta1^t), clamps ||theta||
    at 10, adds eps to ||u||, and applies the decay outside the ratio.
    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    maths = lamb
    elementwise = False  # the trust ratio's norms are over whole tensors
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, *, maximize: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, fused=fused, stochastic_rounding=stochastic_rounding))
