"""LaProp: the drop-in for pytorch-optimizer's ``LaProp`` (torch.optim has none)."""

import torch

from ..maths import laprop
from .base import Optimizer


class LaProp(Optimizer):
    r"""LaProp: momentum of gradients already divided by their RMS, momentum and adaptivity apart.

    .. code-block:: text

        v = beta2 v + (1 - beta2) g^2
        m = beta1 m + (1 - beta1) lr g / ((sqrt(v) + eps) / sqrt(1 - beta2^t))
        l = beta1 l + (1 - beta1) lr                   (1 - beta1^t times lr, at a constant lr)
        theta = theta - (lr / l) m;  theta = theta (1 - lr weight_decay)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 4e-4, the authors').
        betas: (beta1, beta2), the decay of m and of v, each in [0, 1) (default (0.9, 0.999));
            unlike Adam's, any pair works.
        eps: added to sqrt(v) (default 1e-15, the authors').
        weight_decay: the decay rate of theta, decoupled as AdamW's (default 0), or with
            ``decoupled_weight_decay=False`` an L2 penalty added to the gradient.
        decoupled_weight_decay: decay theta directly (default True; the oracle's
            ``weight_decouple``).
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.LaProp(model.parameters(), lr=4e-4)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Ziyin, Wang & Ueda, "LaProp: Separating Momentum and Adaptivity in Adam" (2020). The same
    steps as pytorch-optimizer's LaProp, but for two departures from it, where adamlab follows
    the paper (``adamlab.maths.laprop`` says which). Not offered: the oracle's ``centered`` and
    ``ams_bound`` variants. State: ``step``, ``exp_avg_lr_1`` (one number: the average of the
    rates, kept as the step is, in float32 unless the default dtype is float64; the oracle keeps
    a Python float, so its steps and adamlab's part by about 1e-7 in float32's rounding of it),
    ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    maths = laprop
    state_fields = {"step": "step", "exp_avg_lr_1": "lr_average", "exp_avg": "m", "exp_avg_sq": "v"}
    scalar_state = ("step", "exp_avg_lr_1")

    def __init__(self, params, lr: float | torch.Tensor = 4e-4,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-15, weight_decay: float = 0.0, decoupled_weight_decay: bool = True, *,
                 cautious: bool = False, maximize: bool = False, fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, cautious=cautious, maximize=maximize, fused=fused,
            stochastic_rounding=stochastic_rounding))
