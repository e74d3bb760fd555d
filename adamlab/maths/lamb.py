"""LAMB: Adam's direction, with decoupled decay, rescaled per tensor by a trust ratio.

    t     = t + 1
    g     = grad                                   (negated when maximizing)
    m     = beta1 * m + (1 - beta1) * g
    v     = beta2 * v + (1 - beta2) * g^2
    r     = m_hat / (sqrt(v_hat) + eps)            Adam's step, bias-corrected
    u     = r + weight_decay * theta               decoupled decay joins the direction
    ratio = ||theta|| / ||u||                      per tensor; 1 when either norm is 0
    theta = theta - lr * ratio * u

You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"
(ICLR 2020). The trust ratio makes every tensor's step a fixed fraction (lr) of its own
norm, whatever the scale of its gradients, which is what lets the batch grow large. The
paper allows a function phi of ||theta|| (often a clamp); this is phi = identity.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .ops import norm, sqrt, where
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment (torch-style state key "exp_avg")
    v: Any  # second moment ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def trust_ratio(weight_norm, update_norm):
    """||theta|| / ||u||, or 1 where either is 0 (a fresh zero tensor, or no update at all)."""
    both = weight_norm * update_norm > 0
    return where(both, weight_norm / where(both, update_norm, 1.0), 1.0)


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6,
           weight_decay=0.0, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    m = beta1 * state.m + (1 - beta1) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    m_hat = m / bias_correction(beta1, t)
    v_hat = v / bias_correction(beta2, t)
    r = m_hat / (sqrt(v_hat) + eps)
    u = r + weight_decay * param
    weight_norm, update_norm = norm(param), norm(u)
    ratio = trust_ratio(weight_norm, update_norm)
    update = lr * ratio * u
    quantities = {"g": g, "m": m, "v": v, "m_hat": m_hat, "v_hat": v_hat, "r": r, "u": u,
                  "weight_norm": weight_norm, "update_norm": update_norm, "trust_ratio": ratio,
                  "update": update}
    return Step(param - update, State(t, m, v), quantities)
