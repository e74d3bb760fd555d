"""ADOPT: Adam whose gradient is divided by the second moment of the steps before it, then averaged.

    t     = t + 1
    g     = grad                                      (negated when maximizing)
    g     = g + weight_decay * theta                  (L2 penalty; decoupled: see below)
    theta = theta - lr * weight_decay * theta         (decoupled only)
    t = 1:  v = v + g^2                               the first step only sees g: no move
    t > 1:  n = g / max(sqrt(v), eps)                 v from the steps before, not this one's g
            n = clip(n, -t^c, t^c)                    c = clip_exponent (0.25); None: no clip
            m = m + (1 - beta1) * (n - m)
            theta = theta - lr * m                    (cautious: m masked by g, adamlab.maths.cautious)
            v = beta2 * v + (1 - beta2) * g^2

Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal Rate"
(NeurIPS 2024). Adam's v includes the gradient it divides, so m and 1/sqrt(v) are correlated
and Adam can diverge for some beta2; ADOPT divides by the v of earlier steps and normalises
before the momentum, which removes that correlation. The clip t^(1/4) is the authors' later
schedule, for the near-zero v of the first steps; it keeps the convergence guarantee.

As the oracle (pytorch-optimizer's ADOPT, which the authors' code agrees with): the step
counts from 1, so the first clip is 2^(1/4); m has no bias correction; weight decay, L2 or
decoupled, applies at the first step too, where the parameter otherwise does not move.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import with_weight_decay
from .cautious import masked
from .ops import at_least, at_most, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # the average of the normalised gradients (state key "exp_avg")
    v: Any  # second moment of the gradients of earlier steps ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.9999, eps=1e-6, weight_decay=0.0,
           decoupled_weight_decay=False, clip_exponent=0.25, cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    g, param, decay = with_weight_decay(g, param, lr=lr, weight_decay=weight_decay,
                                        decoupled=decoupled_weight_decay)
    quantities = {"g": g} if decay is None else {"g": g, "decay": decay}
    if t < 2:  # the first gradient only starts v: nothing to divide it by yet
        v = state.v + g * g
        return Step(param, State(t, state.m, v), {**quantities, "v": v, "update": 0.0})
    normalised = g / at_least(sqrt(state.v), eps)
    if clip_exponent is not None:
        clip = t ** clip_exponent
        normalised = at_most(at_least(normalised, -clip), clip)
        quantities["clip"] = clip
    m = state.m + (1 - beta1) * (normalised - state.m)
    update = lr * (masked(m, g) if cautious else m)
    v = beta2 * state.v + (1 - beta2) * g * g
    quantities.update({"normalised": normalised, "m": m, "update": update, "v": v})
    return Step(param - update, State(t, m, v), quantities)
