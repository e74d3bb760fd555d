"""One scalar parameter through an optimizer, step by step.

The defaults are the classic worked example of Adam: theta0 = 1.0, gradients
0.5, 0.3, 0.8, 0.6, lr 0.001, betas (0.9, 0.999), eps 1e-8, which gives
theta1 = 0.999 and theta2 ~= 0.99804.

>>> rows = trace("adam")
>>> [round(row["param"], 5) for row in rows[:2]]
[0.999, 0.99804]
"""

import contextlib
import inspect
import math
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from ..maths import adafactor, adagrad, adam, lion, rmsprop, sgd
from ..maths.hyperparameters import InvalidHyperparameter, check, check_known

WORKED_EXAMPLE_GRADS = (0.5, 0.3, 0.8, 0.6)
BIAS_TABLE_STEPS = (1, 5, 10, 50, 100, 1000)

#: The keys every traced step has, null where the optimizer has no such quantity.
STANDARD_KEYS = ("step", "grad", "m", "v", "m_hat", "v_hat", "update", "param")


@dataclass(frozen=True)
class Traceable:
    """How the trace's knobs drive one optimizer's maths."""

    maths: ModuleType
    #: knob (beta1, beta2, eps) -> the maths argument it sets; lr and weight_decay always apply.
    knobs: dict[str, str] = field(default_factory=dict)
    #: maths arguments fixed by the choice of optimizer, or defaults that differ from the maths'.
    settings: dict = field(default_factory=dict)
    summary: str = ""


_ADAM_KNOBS = {"beta1": "beta1", "beta2": "beta2", "eps": "eps"}

OPTIMIZERS = {
    "sgd": Traceable(sgd, summary="plain gradient descent: theta -= lr * g"),
    "momentum": Traceable(sgd, {"beta1": "momentum"}, {"momentum": 0.9},
                          "SGD with heavy-ball momentum (--beta1 is the momentum factor)"),
    "adagrad": Traceable(adagrad, {"eps": "eps"}, summary="AdaGrad: divide by the root of the summed g^2"),
    "rmsprop": Traceable(rmsprop, {"beta2": "alpha", "eps": "eps"},
                         summary="RMSprop: divide by the root of a moving average of g^2 (--beta2 is alpha)"),
    "adam": Traceable(adam, _ADAM_KNOBS, summary="Adam: bias-corrected momentum over bias-corrected RMS"),
    "adamw": Traceable(adam, _ADAM_KNOBS, {"decoupled_weight_decay": True, "weight_decay": 0.01},
                       "AdamW: Adam with decoupled weight decay (default 0.01)"),
    "amsgrad": Traceable(adam, _ADAM_KNOBS, {"amsgrad": True},
                         "AMSGrad: Adam dividing by the largest v so far"),
    "lion": Traceable(lion, {"beta1": "beta1", "beta2": "beta2"},
                      summary="Lion: a step of exactly lr along the sign of an interpolated momentum"),
    "adafactor": Traceable(adafactor, {"beta1": "beta1", "eps": "eps2"},
                           summary="Adafactor: a step of min(lr, 1/sqrt(t)) times max(eps2, |theta|), "
                                   "over a second moment with beta2 = 1 - t^-0.8, clipped at RMS 1 "
                                   "(--eps is eps2; --beta1 adds a first moment)"),
}


def hyperparameters(optimizer: str, *, lr: float = 1e-3, weight_decay: float | None = None,
                    beta1: float | None = None, beta2: float | None = None,
                    eps: float | None = None) -> dict:
    """The maths' keyword arguments for ``optimizer`` from the trace's knobs (None: its default)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    traceable = OPTIMIZERS[optimizer]
    defaults = {name: parameter.default for name, parameter
                in inspect.signature(traceable.maths.update).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    arguments = {**defaults, **traceable.settings, "lr": lr}
    if weight_decay is not None:
        arguments["weight_decay"] = weight_decay
    for knob, value in {"beta1": beta1, "beta2": beta2, "eps": eps}.items():
        if value is None:
            continue
        if knob not in traceable.knobs:
            raise ValueError(f"{knob} does not apply to {optimizer}")
        arguments[traceable.knobs[knob]] = value
    with named_as({argument: knob for knob, argument in traceable.knobs.items()}):
        check_known(arguments)
    return arguments


@contextlib.contextmanager
def named_as(names: dict[str, str]):
    """Re-raise an :class:`InvalidHyperparameter` under the name the person set it by.

    ``names`` maps the optimizer's argument to that name: RMSprop's ``alpha`` is set as beta2, so
    its error must say beta2, not an alpha the person never typed.

    >>> with named_as({"alpha": "beta2"}):
    ...     check(alpha=1.5)
    Traceback (most recent call last):
    ...
    adamlab.maths.hyperparameters.InvalidHyperparameter: beta2 must be in [0, 1], got 1.5
    """
    try:
        yield
    except InvalidHyperparameter as error:
        if error.name not in names:
            raise
        raise InvalidHyperparameter(names[error.name], error.value, error.allowed) from None


def trace(optimizer: str = "adam", grads=WORKED_EXAMPLE_GRADS, theta: float = 1.0,
          **knobs) -> list[dict]:
    """Run ``optimizer``'s maths on one float64 parameter over ``grads``.

    Returns one dict per step: the keys of :data:`STANDARD_KEYS` (None where the
    optimizer has no such quantity) and every other intermediate of its formula.
    ``grad`` is the gradient given; ``g`` the one the formula uses, after
    weight decay.
    """
    arguments = hyperparameters(optimizer, **knobs)
    grads = [float(grad) for grad in grads]
    if not grads:
        raise ValueError("grads must hold at least one gradient")
    if not all(np.isfinite(grads + [theta])):
        raise ValueError("grads and theta must be finite numbers")
    maths = OPTIMIZERS[optimizer].maths
    init_arguments = inspect.signature(maths.init).parameters
    state = maths.init(np.float64(theta), **{name: value for name, value in arguments.items()
                                              if name in init_arguments})
    param = np.float64(theta)
    rows = []
    for t, grad in enumerate(grads, start=1):
        # An overflow is reported by diverged_at, once, rather than as a warning per operation.
        with np.errstate(all="ignore"):
            step = maths.update(np.float64(grad), state, param, **arguments)
        param, state = step.param, step.state
        row = dict.fromkeys(STANDARD_KEYS)
        row.update(step=t, grad=grad, **{name: float(value) for name, value in step.quantities.items()})
        row["param"] = float(param)
        rows.append(row)
    return rows


def diverged_at(rows: list[dict]) -> tuple[int, str, float] | None:
    """The first step at which a quantity of the trace is not finite (it overflowed float64, or
    became NaN), as (step, name, value); None when every number is finite.

    >>> diverged_at(trace("sgd", grads=(1.0, 2.0), lr=1e308))
    (2, 'update', inf)
    """
    for row in rows:
        for name, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                return row["step"], name, value
    return None


def finite(value):
    """``value`` with every NaN and infinity replaced by None, for JSON, which has no such numbers.

    >>> finite({"m": [1.0, float("inf")], "v": float("nan")})
    {'m': [1.0, None], 'v': None}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def bias_table(beta1: float = 0.9, beta2: float = 0.999, steps=BIAS_TABLE_STEPS) -> list[dict]:
    """Adam's bias-correction multipliers 1/(1 - beta^t) for the first and second moment.

    >>> [round(row["m_multiplier"], 3) for row in bias_table(steps=(1, 10))]
    [10.0, 1.535]
    """
    check(beta1=beta1, beta2=beta2)
    return [{"step": t, "m_multiplier": 1 / adam.bias_correction(beta1, t),
             "v_multiplier": 1 / adam.bias_correction(beta2, t)} for t in steps]
