"""Adamax: the drop-in for ``torch.optim.Adamax``."""

import torch

from ..maths import adamax
from .base import Optimizer


class Adamax(Optimizer):
    r"""Adamax: Adam dividing by a decayed maximum of past gradients instead of their root mean square.

    .. code-block:: text

        g = grad + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        theta = theta - lr / (1 - beta1^t) * m / u

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 2e-3).
        betas: decay rates (beta1, beta2) of the moment and of the maximum, each
            in [0, 1) (default (0.9, 0.999)).
        eps: added to |g| before the maximum (default 1e-8).
        weight_decay: L2 penalty (default 0).
        {maximize}
        capturable: keep the step counter on the parameter's device, for CUDA
            graphs (default False).
        fused: None (default) takes the fused step where it can, False forces
            the simple path, True demands the fused step (torch.optim.Adamax has
            no such argument).
        {implementation_flags}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.Adamax(model.parameters(), lr=2e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015), section 7.1.
    State: ``step``, ``exp_avg`` (m), ``exp_inf`` (u).
    """

    maths = adamax
    state_fields = {"step": "step", "exp_avg": "m", "exp_inf": "u"}

    def __init__(self, params, lr: float | torch.Tensor = 2e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, foreach: bool | None = None, *,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach, maximize=maximize,
            differentiable=differentiable, capturable=capturable, fused=fused,
            stochastic_rounding=stochastic_rounding))
