"""Adam-atan2: Adam's step as the angle atan2(m_hat, b sqrt(v_hat)), which needs no epsilon.

    t     = t + 1
    g     = grad                                       (negated when maximizing)
    m     = m + (1 - beta1) * (g - m)
    v     = v + (1 - beta2) * (g^2 - v)
    u     = atan2(m_hat, b * sqrt(v_hat))              m_hat, v_hat: Adam's bias corrections
    theta = theta * (1 - lr * weight_decay)            decoupled weight decay
    theta = theta - lr * a * u

Everett et al., "Scaling Exponents Across Parameterizations and Optimizers" (ICML 2024). Adam's
m_hat / (sqrt(v_hat) + eps) has an eps whose right size depends on the width of the model and
the scale of its gradients; atan2(m_hat, b sqrt(v_hat)) is m_hat / (b sqrt(v_hat)) where that is
small, bounded by pi/2 where v_hat is 0, and invariant to rescaling the gradients: the eps is
gone. a = 1.27 and b = 1 are the oracle's defaults (adam-atan2-pytorch's ``AdamAtan2``), which
make the update's scale about Adam's.

The angle is ``ops.atan2``, a polynomial within 3e-16 of the exact angle, made of arithmetic
that every backend rounds alike; torch's atan2 and C's differ in the last bit of 1 in 10 float32
values, and a fused kernel must step as the simple path does.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .cautious import masked
from .ops import atan2, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far (the oracle's "steps")
    m: Any  # first moment (state key "exp_avg")
    v: Any  # second moment ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def update(grad, state: State, param, *, lr=1e-4, beta1=0.9, beta2=0.99, a=1.27, b=1.0, weight_decay=0.0,
           cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    m = state.m + (1 - beta1) * (g - state.m)
    v = state.v + (1 - beta2) * (g * g - state.v)
    m_hat = m / bias_correction(beta1, t)
    v_hat = v / bias_correction(beta2, t)
    angle = atan2(m_hat, b * sqrt(v_hat))
    direction = masked(angle, g) if cautious else angle
    decayed = param * (1 - lr * weight_decay) if weight_decay else param
    update = (lr * a) * direction
    quantities = {"g": g, "m": m, "v": v, "m_hat": m_hat, "v_hat": v_hat, "angle": angle, "update": update}
    return Step(decayed - update, State(t, m, v), quantities)
