"""One scalar parameter through an optimizer, step by step.

The defaults are the classic worked example of Adam: theta0 = 1.0, gradients
0.5, 0.3, 0.8, 0.6, lr 0.001, betas (0.9, 0.999), eps 1e-8, which gives
theta1 = 0.999 and theta2 ~= 0.99804.

>>> rows = trace("adam")
>>> [round(row["param"], 5) for row in rows[:2]]
[0.999, 0.99804]
"""

import inspect
import math

import numpy as np

from .. import registry
from ..maths import adam
from ..maths.hyperparameters import check

WORKED_EXAMPLE_GRADS = (0.5, 0.3, 0.8, 0.6)
BIAS_TABLE_STEPS = (1, 5, 10, 50, 100, 1000)

#: The keys every traced step has, null where the optimizer has no such quantity.
STANDARD_KEYS = ("step", "grad", "m", "v", "m_hat", "v_hat", "update", "param")
#: The quantities shown as columns, in order, and their headers: in ``adamlab trace``'s table
#: and in the explorer's (which /api/problems sends them to). An optimizer lacking one shows none.
COLUMNS = {"step": "t", "grad": "grad", "g": "g", "m": "m", "v": "v", "v_max": "v_max", "sum": "sum",
           "grad_avg": "grad_avg", "momentum_buffer": "buffer", "buffer": "buffer", "mu": "mu_t", "bias_correction1": "1-beta1^t",
           "bias_correction2": "1-beta2^t", "m_hat": "m_hat", "v_hat": "v_hat", "u": "u", "o": "NS(u)", "rho_t": "rho_t",
           "trust_ratio": "trust ratio", "lr_t": "lr_t", "decay": "decay", "update": "update", "param": "theta"}


def hyperparameters(optimizer: str, *, lr: float = 1e-3, weight_decay: float | None = None,
                    beta1: float | None = None, beta2: float | None = None,
                    eps: float | None = None) -> dict:
    """The maths' keyword arguments for ``optimizer`` from the trace's knobs (None: its default);
    a knob that does not apply to it is a ValueError."""
    knobs = {"beta1": beta1, "beta2": beta2, "eps": eps, "weight_decay": weight_decay}
    return registry.get(optimizer).maths_arguments(knobs, lr=lr)


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
    entry = registry.get(optimizer)
    # one number, or a 1x1 matrix for maths that takes matrices (Muon's, Adam-mini's)
    number = (lambda value: np.full((1, 1), value)) if entry.matrix_maths else np.float64
    init_arguments = inspect.signature(entry.maths.init).parameters
    param = number(theta)
    state = entry.maths.init(param, **{name: value for name, value in arguments.items() if name in init_arguments})
    rows = []
    for t, grad in enumerate(grads, start=1):
        # An overflow is reported by diverged_at, once, rather than as a warning per operation.
        with np.errstate(all="ignore"):
            step = entry.maths.update(number(grad), state, param, **arguments)
        param, state = step.param, step.state
        row = dict.fromkeys(STANDARD_KEYS)
        row.update(step=t, grad=grad, **{name: np.asarray(value).item() for name, value in step.quantities.items()})
        row["param"] = np.asarray(param).item()
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
