"""Allowed values of every hyperparameter, checked in one place.

The optimizers, the trace and every later command call :func:`check`, so a bad
value gets the same message wherever it comes from.
"""

import inspect
import math
from collections.abc import Mapping
from numbers import Real

import torch


def keyword_arguments(update) -> dict:
    """The hyperparameters an update rule takes (its keyword-only arguments), with their defaults,
    in the order of its signature."""
    return {name: parameter.default for name, parameter in inspect.signature(update).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


class InvalidHyperparameter(ValueError):
    """A hyperparameter outside its allowed range; ``name`` says which one."""

    def __init__(self, name: str, value, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name} must be {allowed}, got {value!r}")


# name -> (lowest, highest, whether the highest itself is allowed)
_RANGES = {
    "lr": (0.0, math.inf, False),
    "eps": (0.0, math.inf, False),
    "eps1": (0.0, math.inf, False),
    "eps2": (0.0, math.inf, False),
    "weight_decay": (0.0, math.inf, False),
    "momentum": (0.0, math.inf, False),
    "momentum_decay": (0.0, math.inf, False),  # NAdam's schedule 0.96^(t * momentum_decay)
    "dampening": (0.0, 1.0, True),
    "alpha": (0.0, 1.0, True),
    "lr_decay": (0.0, math.inf, False),
    "initial_accumulator_value": (0.0, math.inf, False),
    "beta1": (0.0, 1.0, False),
    "beta2": (0.0, 1.0, False),
    "beta2_decay": (-math.inf, 0.0, True),  # Adafactor's 1 - beta2_t = t^beta2_decay
    "d": (1.0, math.inf, False),  # Adafactor's clipping threshold
    "gamma": (0.0, math.inf, False),  # MARS's weight of the gradient's change
}
#: Hyperparameters that may be None: off, or left to a default that depends on the parameter.
_OPTIONAL = {"beta1", "eps1"}


def _scalar(name: str, value) -> float:
    """The number inside ``value``: a real number or a one-element tensor."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InvalidHyperparameter(name, f"tensor of shape {tuple(value.shape)}",
                                        "a number or a one-element tensor")
        if value.is_complex():
            raise TypeError(f"{name} must be a real number or a one-element tensor, got a complex tensor")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def _describe(low: float, high: float, high_allowed: bool) -> str:
    if math.isinf(low):
        return f"<= {high:g}" if high_allowed else f"< {high:g}"
    if math.isinf(high):
        return f">= {low:g}"
    return f"in [{low:g}, {high:g}{']' if high_allowed else ')'}"


def check(**hyperparameters) -> None:
    """Raise if any hyperparameter is outside its allowed range.

    ``betas`` may be given as a pair and is checked as ``betas[0]`` and ``betas[1]``.

    >>> check(lr=1e-3, betas=(0.9, 0.999))
    >>> check(lr=-1.0)
    Traceback (most recent call last):
    ...
    adamlab.maths.hyperparameters.InvalidHyperparameter: lr must be >= 0, got -1.0
    """
    for name, value in hyperparameters.items():
        if value is None and name in _OPTIONAL:
            continue
        if name == "eps" and isinstance(value, (tuple, list)):  # Adafactor's (eps1, eps2)
            if len(value) != 2:
                raise InvalidHyperparameter("eps", value, "a pair (eps1, eps2)")
            check(eps1=value[0], eps2=value[1])
        elif name == "betas":
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise InvalidHyperparameter("betas", value, "a pair (beta1, beta2)")
            for index, beta in enumerate(value):
                _check_one(f"betas[{index}]", beta, *_RANGES[f"beta{index + 1}"])
        else:
            _check_one(name, value, *_RANGES[name])


def check_known(settings: Mapping) -> None:
    """Check every entry of ``settings`` (a parameter group, say) that has an allowed range."""
    check(**{name: value for name, value in settings.items() if name in _RANGES or name == "betas"})


def _check_one(name: str, value, low: float, high: float, high_allowed: bool) -> None:
    number = _scalar(name, value)
    shown = number if isinstance(value, torch.Tensor) else value
    if not math.isfinite(number):  # NaN, or an infinity that no bound excludes by itself
        raise InvalidHyperparameter(name, shown, f"a finite number {_describe(low, high, high_allowed)}")
    below_high = number <= high if high_allowed else number < high
    if not (number >= low and below_high):
        raise InvalidHyperparameter(name, shown, _describe(low, high, high_allowed))
