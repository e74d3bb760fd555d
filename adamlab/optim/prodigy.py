"""Prodigy: the drop-in for the authors' ``prodigyopt.Prodigy`` (torch.optim has none)."""

import math

import torch

from ..maths import prodigy
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer, StepRefused, evaluate

#: The whole model's numbers, kept in every parameter group as the oracle keeps them.
_MODEL_NUMBERS = ("d", "d_max", "d_numerator", "k")


class Prodigy(Optimizer):
    r"""Prodigy: Adam whose step size d is estimated as it trains, from d0 up; leave lr at 1.

    .. code-block:: text

        d_hat = d_coef * (running sum of (d / d0) dlr <g, theta_0 - theta>) / sum |s|
        d     = min(max(d, d_hat) so far, d growth_rate)      never shrinks
        theta = theta - dlr m / (sqrt(v) + d eps)             dlr = d lr; m, v: Adam's of d g

    Args:
        params: parameters or parameter groups to optimize.
        lr: a multiplier of d, 1 to trust the estimate (default 1). Groups may set 0 to freeze
            their parameters; every other group's lr must be the same, as one d serves them all.
        betas: (beta1, beta2) of m and v (default (0.9, 0.999)).
        beta3: decay of s and of the numerator; None (default) is sqrt(beta2).
        eps: added to sqrt(v), times d (default 1e-8).
        weight_decay: decay rate (default 0): of theta, times dlr, with ``decouple`` (default
            True), else an L2 penalty added to the gradient.
        use_bias_correction: multiply dlr by Adam's sqrt(1 - beta2^t) / (1 - beta1^t) (default False).
        safeguard_warmup: leave lr out of s, for a schedule's warmup (default False).
        d0: the first estimate, > 0 (default 1e-6): far below any real distance, which d reaches
            in tens of steps.
        d_coef: scales the estimate (default 1; the knob to turn, 0.5 to 2).
        growth_rate: the most d may grow by in a step, >= 1 (default inf).
        {maximize}
        fused: None (default) or False: the step is torch operations (its sums run over every
            tensor at once); True is refused.

    Example::

        optimizer = adamlab.Prodigy(model.parameters(), lr=1.0, weight_decay=0.01)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()
        optimizer.param_groups[0]["d"]              # the step size it has found

    Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner" (ICML
    2024). The same steps, state and group numbers (``d``, ``d_max``, ``d_numerator``, ``k``) as
    the authors' ``Prodigy``; not offered: its ``slice_p`` (statistics on every p-th element)
    and ``fsdp_in_use``. As there, the betas, beta3, d_coef and growth_rate of the first group
    serve the whole model. A group at lr 0 does not move at all here, where the oracle still
    applies its decoupled decay with the others' step. State: ``step``, ``s``, ``p0``,
    ``exp_avg``, ``exp_avg_sq``; ``s`` and ``p0`` have the parameter's shape (the oracle's are
    flat).
    """

    maths = prodigy
    state_fields = {"step": "step", "s": "s", "p0": "theta0", "exp_avg": "m", "exp_avg_sq": "v"}
    elementwise = False
    fused_step = False
    kernel_limits = "Prodigy's step sums over every tensor of the model: it has no fused kernel"

    def __init__(self, params, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999), beta3: float | None = None,
                 eps: float = 1e-8, weight_decay: float = 0.0, decouple: bool = True, use_bias_correction: bool = False,
                 safeguard_warmup: bool = False, d0: float = 1e-6, d_coef: float = 1.0,
                 growth_rate: float = math.inf, *, maximize: bool = False, fused: bool | None = None):
        super().__init__(params, dict(
            lr=lr, betas=betas, beta3=beta3, eps=eps, weight_decay=weight_decay, d=d0, d0=d0, d_max=d0,
            d_numerator=0.0, d_coef=d_coef, k=0, growth_rate=growth_rate, use_bias_correction=use_bias_correction,
            decouple=decouple, safeguard_warmup=safeguard_warmup, maximize=maximize, fused=fused))

    def _check_group(self, group: dict) -> None:
        # the model's numbers are the estimate's, not settings (Adafactor's threshold d is another d)
        super()._check_group({key: value for key, value in group.items() if key not in _MODEL_NUMBERS})
        if group.get("fused"):
            raise ValueError("adamlab.Prodigy has no fused step (its sums run over the whole model); leave fused=None")
        beta3 = group["beta3"]
        if beta3 is not None and (isinstance(beta3, bool) or not isinstance(beta3, (int, float)) or not 0 <= beta3 < 1):
            raise InvalidHyperparameter("beta3", beta3, "in [0, 1), or None (sqrt(beta2))")
        for name, low, inclusive in (("d0", 0.0, False), ("d_coef", 0.0, False), ("growth_rate", 1.0, True)):
            value = group[name]
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
                    or not (value >= low if inclusive else value > low) or (name != "growth_rate" and math.isinf(value))):
                raise InvalidHyperparameter(name, value, f"{'>=' if inclusive else '>'} {low:g}"
                                                         + (" (inf: no limit)" if name == "growth_rate" else ", finite"))

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        state = super()._init_state(param, group)
        state["p0"] = param.detach().clone(memory_format=torch.preserve_format)
        return state

    @torch.no_grad()
    def step(self, closure=None):
        """One step of the whole model. Checked first: a gradient that does not fit, or groups
        whose learning rates differ (but for 0), leave everything as it was."""
        loss = evaluate(closure)
        first = self.param_groups[0]
        lr = max(group["lr"] for group in self.param_groups)
        stepping = []
        for index, group in enumerate(self.param_groups):
            if group["lr"] not in (lr, 0.0):
                raise StepRefused(f"parameter group {index} has lr {group['lr']!r}, another {lr!r}: Prodigy's one "
                                  f"step size serves every group, whose lr must be the same (or 0, frozen)")
            for param in group["params"]:
                if param.grad is not None:
                    self._check_inputs(param, group)
                    if group["lr"] > 0:
                        stepping.append((param, group))
        beta1, beta2 = first["betas"]
        d, k = first["d"], first["k"]
        dlr = prodigy.step_size(d, k, lr=lr, beta1=beta1, beta2=beta2, use_bias_correction=first["use_bias_correction"])
        numerator = denominator = 0.0  # summed in double, over every tensor
        for param, group in stepping:
            state = self.state[param] if self.state.get(param) else self._init_state(param, group)
            self.state[param] = state
            m, v, s, its_numerator, its_denominator = prodigy.accumulate(
                param.grad, state["exp_avg"], state["exp_avg_sq"], state["s"], state["p0"], param, d=d, dlr=dlr,
                d0=group["d0"], beta1=beta1, beta2=beta2, beta3=first["beta3"], weight_decay=group["weight_decay"],
                decouple=group["decouple"], safeguard_warmup=group["safeguard_warmup"], maximize=group["maximize"])
            for key, value in (("exp_avg", m), ("exp_avg_sq", v), ("s", s)):
                state[key].copy_(value)
            numerator, denominator = numerator + float(its_numerator), denominator + float(its_denominator)
        if denominator == 0:  # every gradient zero so far: nothing to estimate d from, no step
            return loss
        d, d_max, r = (float(value) for value in prodigy.next_d(
            d, first["d_max"], first["d_numerator"], numerator, denominator, d0=first["d0"], d_coef=first["d_coef"],
            growth_rate=first["growth_rate"], beta2=beta2, beta3=first["beta3"]))
        for group in self.param_groups:
            group.update(d=d, d_max=d_max, d_numerator=r, k=group["k"] + 1)
        for param, group in stepping:
            state = self.state[param]
            state["step"] += 1
            new, _ = prodigy.apply(param, state["exp_avg"], state["exp_avg_sq"], d=d, dlr=dlr, eps=group["eps"],
                                   weight_decay=group["weight_decay"], decouple=group["decouple"])
            param.copy_(new)
        return loss
