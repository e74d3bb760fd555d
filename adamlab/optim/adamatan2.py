"""AdamAtan2: the drop-in for adam-atan2-pytorch's ``AdamAtan2`` (torch.optim has none)."""

import math

import torch

from ..maths import adamatan2
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer


class AdamAtan2(Optimizer):
    r"""Adam-atan2: Adam whose m_hat / (sqrt(v_hat) + eps) is atan2(m_hat, b sqrt(v_hat)): no eps.

    .. code-block:: text

        m, v   = Adam's moments, bias-corrected to m_hat, v_hat
        theta  = theta (1 - lr weight_decay) - lr a atan2(m_hat, b sqrt(v_hat))

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-4).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.99)).
        weight_decay: decoupled decay rate, multiplied by lr (default 0).
        a: the update's scale, > 0 (default 1.27).
        b: the weight of sqrt(v_hat) in the angle, > 0 (default 1).
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.AdamAtan2(model.parameters(), lr=1e-4)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Everett et al., "Scaling Exponents Across Parameterizations and Optimizers" (ICML 2024).
    The same steps as adam-atan2-pytorch's ``AdamAtan2`` (not offered: its ``decoupled_wd``,
    ``regen_reg_rate``, ``cautious_wd``, and ``cautious_factor``, for which ``cautious=True``
    gives the paper's mask). State: ``step`` (the oracle's ``steps``), ``exp_avg`` (m),
    ``exp_avg_sq`` (v). The angle is ``adamlab.maths.ops.atan2``, made of arithmetic (a library's
    atan2 rounds its own way), so the fused kernel and the simple path step alike; it is within
    3e-16 of the exact angle, and so of the oracle's float64 steps.
    """

    maths = adamatan2
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, a: float = 1.27, b: float = 1.0, *, cautious: bool = False,
                 maximize: bool = False, fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, a=a, b=b, cautious=cautious,
                                      maximize=maximize, fused=fused, stochastic_rounding=stochastic_rounding))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        for name in ("a", "b"):
            value = group[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InvalidHyperparameter(name, value, "a finite number > 0")
