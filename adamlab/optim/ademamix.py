"""AdEMAMix: the drop-in for bitsandbytes' ``AdEMAMix`` (torch.optim has none)."""

import torch

from ..maths import ademamix
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer


class AdEMAMix(Optimizer):
    r"""AdEMAMix: Adam's fast average of the gradients, with a slow one mixed in by alpha.

    .. code-block:: text

        m1 = beta1 m1 + (1 - beta1) g;   m2 = beta3 m2 + (1 - beta3) g;   v = beta2 v + (1 - beta2) g^2
        theta = theta (1 - lr weight_decay)
              - lr (m1 / (1 - beta1^t) + alpha m2) / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3).
        betas: (beta1, beta2, beta3): the fast average's, the second moment's and the slow
            average's decay, each in [0, 1) (default (0.9, 0.999, 0.9999)).
        alpha: the slow average's weight in the step (default 5).
        t_alpha: warm alpha up linearly over this many steps (default None: no warmup).
        t_beta3: warm beta3 up from beta1 over this many steps, the slow average's half-life
            growing linearly (default None: no warmup). The paper sets both to the run's length.
        eps: added to the denominator (default 1e-8).
        weight_decay: decoupled decay rate of theta, as AdamW's (default 0.01).
        {cautious}
        {maximize}
        {fused}
            With ``t_beta3`` the step takes logarithms the CPU kernel has not, and torch.compile
            cannot build it: the simple path, on the CPU and on a GPU.
        {stochastic_rounding}

    Example::

        optimizer = adamlab.AdEMAMix(model.parameters(), lr=1e-3, t_alpha=10_000, t_beta3=10_000)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older" (2024). The
    same steps as bitsandbytes' 32-bit AdEMAMix, which computes in float32 whatever the
    parameters' dtype. State: ``step``, ``exp_avg`` (m1), ``exp_avg_slow`` (m2), ``exp_avg_sq``
    (v); bitsandbytes keeps m1 and m2 stacked in one ``state1``.
    """

    maths = ademamix
    state_fields = {"step": "step", "exp_avg": "m1", "exp_avg_slow": "m2", "exp_avg_sq": "v"}
    kernel_limits = "its fused CPU kernel does not take t_beta3 (its warmup takes logarithms)"

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float, float, float] = (0.9, 0.999, 0.9999), alpha: float = 5.0,
                 t_alpha: int | None = None, t_beta3: int | None = None, eps: float = 1e-8,
                 weight_decay: float = 0.01, *, cautious: bool = False, maximize: bool = False, fused: bool | None = None,
                 stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
            weight_decay=weight_decay, cautious=cautious, maximize=maximize, fused=fused, stochastic_rounding=stochastic_rounding))

    def _check_group(self, group: dict) -> None:
        betas = group.get("betas")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 3):
            raise InvalidHyperparameter("betas", betas, "three numbers (beta1, beta2, beta3)")
        # alpha is the slow average's weight, not RMSprop's alpha in [0, 1]: checked below
        super()._check_group({**{key: value for key, value in group.items() if key != "alpha"},
                              "betas": tuple(betas[:2])})
        if not (isinstance(betas[2], (int, float)) and 0 <= betas[2] < 1):
            raise InvalidHyperparameter("betas[2]", betas[2], "in [0, 1)")
        alpha = group.get("alpha")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < float("inf"):
            raise InvalidHyperparameter("alpha", alpha, "a finite number >= 0")
        for name in ("t_alpha", "t_beta3"):
            value = group.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidHyperparameter(name, value, "a whole number of steps >= 1, or None (no warmup)")

    def _compiles(self, group: dict) -> bool:
        # The warmup's exp of a number that changes each step trips torch.compile (2.13) over its
        # own guards on floats: with t_beta3 the GPU takes the simple path.
        return group.get("t_beta3") is None

    def _hyperparameters(self, group: dict) -> dict:
        values = super()._hyperparameters({**group, "betas": tuple(group["betas"][:2])})
        values["beta3"], values["mix"] = float(group["betas"][2]), group["alpha"]  # the paper's alpha is the maths' mix
        return values
