"""MARS: AdamW on a variance-reduced gradient, the gradient plus a multiple of its change.

    t     = t + 1
    g     = grad                                       (negated when maximizing)
    c     = g + gamma * beta1 / (1 - beta1) * (g - g_prev)
    c     = c / max(1, ||c||)                          per tensor
    m     = m + (1 - beta1) * (c - m)
    v     = beta2 * v + (1 - beta2) * c^2
    theta = theta - lr * weight_decay * theta          decoupled weight decay
    theta = theta - lr * m_hat / (sqrt(v_hat) + eps)   m_hat, v_hat: Adam's bias corrections
                                                       (cautious: m_hat masked by g, adamlab.maths.cautious)
    g_prev = g

Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large Models"
(2024), the AdamW form (MARS-AdamW) with the authors' approximation: the change of the
gradient is taken between two batches (g_prev is the last step's gradient, not this batch's
gradient at the last parameters), which costs no second backward pass. gamma scales that
correction; gamma = 0 is AdamW on gradients clipped to norm 1. The first step's g_prev is zero,
as in the authors' code and the oracle, so c starts at (1 + gamma beta1 / (1 - beta1)) g.

The oracle (pytorch-optimizer's MARS, ``mars_type='adamw'``) divides by
(sqrt(v + 1e-15) + eps) / sqrt(1 - beta2^t): its eps sits before the bias correction and
grows with it. adamlab adds eps to sqrt(v_hat), as the paper and the authors' code write it.
The authors' code and the oracle also send 1-D parameters to plain AdamW by default
(``optimize_1d=False``); here MARS steps every parameter it is given, and
:class:`adamlab.Hybrid` with :func:`adamlab.hidden_matrices` gives a model's hidden matrices to MARS
and the rest to AdamW.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction, with_weight_decay
from .cautious import masked
from .ops import at_least, norm, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment of the corrected gradients (state key "exp_avg")
    v: Any  # second moment of the corrected gradients ("exp_avg_sq")
    g_prev: Any  # the last step's gradient ("last_grad")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy(), zeros.copy())


def update(grad, state: State, param, *, lr=3e-3, beta1=0.95, beta2=0.99, eps=1e-8, gamma=0.025,
           weight_decay=0.0, cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    corrected = (g - state.g_prev) * (gamma * (beta1 / (1 - beta1))) + g
    corrected_norm = norm(corrected)
    c = corrected / at_least(corrected_norm, 1.0)  # dividing by 1 leaves c exactly as it is
    m = state.m + (1 - beta1) * (c - state.m)
    v = beta2 * state.v + (1 - beta2) * c * c
    _, decayed, decay = with_weight_decay(g, param, lr=lr, weight_decay=weight_decay, decoupled=True)
    m_hat = m / bias_correction(beta1, t)
    v_hat = v / bias_correction(beta2, t)
    direction = masked(m_hat, g) if cautious else m_hat  # against g, as the oracle: not against c
    update = lr * direction / (sqrt(v_hat) + eps)
    quantities = {"g": g, "corrected": corrected, "norm": corrected_norm, "c": c, "m": m, "v": v,
                  "m_hat": m_hat, "v_hat": v_hat, "update": update}
    if decay is not None:
        quantities["decay"] = decay
    return Step(decayed - update, State(t, m, v, g), quantities)
