"""ADOPT: the drop-in for pytorch-optimizer's ``ADOPT`` (torch.optim has none)."""

import torch

from ..maths import adopt
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer


class ADOPT(Optimizer):
    r"""ADOPT: Adam dividing each gradient by the second moment of the gradients before it.

    .. code-block:: text

        t = 1:  v = g^2                                  (the parameters do not move)
        t > 1:  n = clip(g / max(sqrt(v), eps), t^clip_exponent)
                m = m + (1 - beta1) (n - m);  theta = theta - lr m
                v = beta2 v + (1 - beta2) g^2

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3).
        betas: (beta1, beta2), the decay of m and of v, each in [0, 1) (default (0.9, 0.9999)).
        eps: the least sqrt(v) divides by (default 1e-6).
        weight_decay: L2 penalty added to the gradient, or with ``decoupled_weight_decay`` the
            decay rate of theta (default 0).
        decoupled_weight_decay: decay theta directly, as AdamW (default False; the oracle's
            ``weight_decouple``).
        clip_exponent: the normalised gradient is clipped to +-t^clip_exponent at step t, the
            paper's schedule with 0.25 (default); None turns clipping off, the first version of
            ADOPT. The oracle takes a function of t (``clip_lambda``); adamlab takes the
            schedule's exponent, a number, which the fused kernel computes itself.
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.ADOPT(model.parameters(), lr=1e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate"
    (NeurIPS 2024). The same steps as pytorch-optimizer's ADOPT (``weight_decouple`` is
    ``decoupled_weight_decay``; its ``fixed_decay`` is not offered). State: ``step``,
    ``exp_avg`` (m), ``exp_avg_sq`` (v), as the oracle names them (its step is per group).
    """

    maths = adopt
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.9999),
                 eps: float = 1e-6, weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 clip_exponent: float | None = 0.25, cautious: bool = False, maximize: bool = False, fused: bool | None = None,
                 stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, clip_exponent=clip_exponent, cautious=cautious, maximize=maximize,
            fused=fused, stochastic_rounding=stochastic_rounding))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        exponent = group.get("clip_exponent")
        if exponent is not None and (isinstance(exponent, bool) or not isinstance(exponent, (int, float))
                                     or not 0 <= exponent < float("inf")):
            raise InvalidHyperparameter("clip_exponent", exponent, "a finite number >= 0, or None (no clipping)")
