"""StableAdamW: AdamW whose learning rate steps back where the gradient outruns its second moment.

    t     = t + 1
    g     = grad
    m     = m + (1 - b1) * (g - m)                 b1 = beta1 (1 - beta1^(t-1)) / (1 - beta1^t)
    v     = b2 * v + (1 - b2) * g^2                b2 = beta2 (1 - beta2^(t-1)) / (1 - beta2^t)
    rms   = sqrt(mean(g^2 / max(v, eps^2)))        over the whole tensor
    lr_t  = lr / max(1, rms)
    theta = theta * (1 - lr_t * weight_decay)      decoupled weight decay
    theta = theta - lr_t * m / (sqrt(v) + eps)      (cautious: m masked by g, adamlab.maths.cautious)

Wortsman et al., "Stable and low-precision training for large-scale vision-language models"
(NeurIPS 2023): Adam's update spikes where a rare large gradient meets a v that has not seen
it (v lags g^2); dividing lr by the RMS of g^2 / v, per tensor, when it exceeds 1 is AdaFactor's
update clipping, and removes the loss spikes without a clip threshold to tune. As the oracle
(optimi's StableAdamW), the betas are debiased instead of m and v: m and v are Adam's m_hat and
v_hat themselves, the same numbers by another recurrence.
"""

from typing import Any, NamedTuple

import numpy as np

from .cautious import masked
from .ops import at_least, average, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment, already debiased (state key "exp_avg")
    v: Any  # second moment, already debiased ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def debiased(beta, t):
    """The beta of step t that makes a moving average from zero its own bias correction."""
    return (beta**t - beta) / (beta**t - 1)


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.99, eps=1e-6, weight_decay=0.01,
           cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    beta1_t, beta2_t = debiased(beta1, t), debiased(beta2, t)
    m = state.m + (1 - beta1_t) * (g - state.m)
    v = beta2_t * state.v + (1 - beta2_t) * g * g
    rms = sqrt(average(g * g / at_least(v, eps * eps)))
    lr_t = lr / at_least(rms, 1.0)
    decayed = param * (1 - lr_t * weight_decay) if weight_decay else param
    update = lr_t * ((masked(m, g) if cautious else m) / (sqrt(v) + eps))
    quantities = {"g": g, "m": m, "v": v, "rms": rms, "lr_t": lr_t, "update": update}
    return Step(decayed - update, State(t, m, v), quantities)
