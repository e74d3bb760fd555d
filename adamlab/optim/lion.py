"""Lion: sign-based updates with one state tensor (torch.optim has no Lion)."""

import torch

from ..maths import lion
from .base import Optimizer


class Lion(Optimizer):
    r"""Lion (EvoLved Sign Momentum): every coordinate steps by lr in the direction of a sign.

    .. code-block:: text

        c     = beta1 * m + (1 - beta1) * g
        theta = theta * (1 - lr * weight_decay) - lr * sign(c)
        m     = beta2 * m + (1 - beta2) * g

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-4: Lion wants 3-10x
            less than AdamW).
        betas: (beta1, beta2), the interpolation that sets the direction and the momentum's
            decay, each in [0, 1) (default (0.9, 0.99)).
        weight_decay: decoupled decay rate, multiplied by lr as in AdamW (default 0; use
            3-10x AdamW's to keep lr * weight_decay).
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.Lion(model.parameters(), lr=3e-5, weight_decay=1.0)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Chen et al., "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023). The same
    step as the ``lion-pytorch`` package's Lion (its default, lr-coupled weight decay), and
    its state key: ``exp_avg`` (m), created at the first step; no step counter.
    """

    maths = lion
    state_fields = {"exp_avg": "m"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0, *,
                 cautious: bool = False, maximize: bool = False, fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay,
                                      cautious=cautious, maximize=maximize, fused=fused, stochastic_rounding=stochastic_rounding))
