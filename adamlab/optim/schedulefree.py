"""AdamWScheduleFree: the drop-in for the authors' ``schedulefree.AdamWScheduleFree``."""

import math

import torch

from ..maths import schedulefree
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer, StepRefused


class AdamWScheduleFree(Optimizer):
    r"""Schedule-Free AdamW: AdamW without a learning-rate schedule, its weights an average of its iterates.

    .. code-block:: text

        z = z - lr_t n                        n: g / (sqrt(v_hat) + eps) + weight_decay y
        x = the average of the z's, weighted by t^r lr_max^weight_lr_power
        y = (1 - beta1) z + beta1 x           the parameters while training; x while evaluating

    Call ``optimizer.train()`` with ``model.train()`` and ``optimizer.eval()`` with
    ``model.eval()``: the parameters hold y for training and x, the weights to evaluate and
    to keep, for evaluating. Save checkpoints in either mode: the mode is saved with the
    optimizer's groups and comes back with them, matching the parameters saved beside it.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, constant after warmup (default 0.0025).
        betas: (beta1, beta2): beta1 sets where y lies between z and x, beta2 decays v
            (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) (default 1e-8).
        weight_decay: decay rate, taken at y (default 0).
        warmup_steps: steps of linear warmup of lr (default 0).
        r: the average weights iterate t by t^r (default 0).
        weight_lr_power: ... and by lr_max^weight_lr_power (default 2).
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.AdamWScheduleFree(model.parameters(), lr=2.5e-3, warmup_steps=100)
        model.train(); optimizer.train()
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()
        model.eval(); optimizer.eval()            # evaluate, or save, x

    Defazio et al., "The Road Less Scheduled" (NeurIPS 2024). The same steps as the authors'
    ``AdamWScheduleFree``, with two differences: it starts in train mode (the authors' starts
    in eval mode and refuses to step until ``train()``; here ``train()`` first changes nothing,
    and registry code that never calls it trains y), and the step count, the weights' sum and
    lr_max are kept per parameter, as every adamlab optimizer keeps its step, where the
    authors' keep them per group (the same numbers while every parameter has a gradient at
    every step). State: ``step``, ``weight_sum``, ``lr_max``, ``z``, ``exp_avg_sq`` (v).
    """

    maths = schedulefree
    state_fields = {"step": "step", "weight_sum": "weight_sum", "lr_max": "lr_max", "z": "z", "exp_avg_sq": "v"}
    scalar_state = ("step", "weight_sum", "lr_max")

    def __init__(self, params, lr: float | torch.Tensor = 0.0025, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, maximize: bool = False, fused: bool | None = None,
                 stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
            weight_lr_power=weight_lr_power, train_mode=True, maximize=maximize, fused=fused,
            stochastic_rounding=stochastic_rounding))

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group["betas"][0] == 0:  # x = (y - z) / beta1 + z
            raise InvalidHyperparameter("betas[0]", group["betas"][0], "in (0, 1): x is found from y by dividing by it")
        steps = group["warmup_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise InvalidHyperparameter("warmup_steps", steps, "a whole number >= 0")
        for name in ("r", "weight_lr_power"):
            value = group[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise InvalidHyperparameter(name, value, "a finite number >= 0")
        if not isinstance(group["train_mode"], bool):
            raise TypeError(f"train_mode must be True or False, got {group['train_mode']!r}")

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        state = super()._init_state(param, group)
        state["z"] = param.detach().clone(memory_format=torch.preserve_format)  # z starts where theta is
        return state

    @torch.no_grad()
    def step(self, closure=None):
        """Take one step from y; refused, changing nothing, while a group is in eval mode."""
        for index, group in enumerate(self.param_groups):
            if not group["train_mode"]:
                raise StepRefused(f"parameter group {index} is in eval mode (its parameters hold x, the average): "
                                  f"call optimizer.train() before stepping")
        return super().step(closure)

    @torch.no_grad()
    def train(self) -> None:
        """Put the parameters at y, where the gradient is taken (from x, after :meth:`eval`)."""
        self._move(True, schedulefree.to_y)

    @torch.no_grad()
    def eval(self) -> None:
        """Put the parameters at x, the average: the weights to evaluate and to keep."""
        self._move(False, schedulefree.to_x)

    def _move(self, train_mode: bool, move) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train_mode:
                continue
            for param in group["params"]:
                z = self.state.get(param, {}).get("z")
                if z is not None:  # a parameter that never stepped is at x = y = z
                    param.copy_(move(param, z, group["betas"][0]))
            group["train_mode"] = train_mode
