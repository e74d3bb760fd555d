"""Adamax: Adam with the root mean square of past gradients replaced by their decayed maximum.

    t     = t + 1
    g     = grad                                   (negated when maximizing)
    g     = g + weight_decay * theta               (L2 penalty)
    m     = beta1 * m + (1 - beta1) * g
    u     = max(beta2 * u, |g| + eps)              infinity norm, decayed
    theta = theta - lr / (1 - beta1^t) * m / u

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015), section 7.1.
Adam's sqrt(v) is a decayed L2 norm of past gradients; taken to the L-infinity norm it
becomes this decayed maximum, which starts at the first |g| and so needs no bias
correction. The paper has no eps; torch.optim's, kept here, is added to |g|, so
u >= eps and the division is never by zero.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .ops import maximum
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment, moving average of gradients (torch.optim: "exp_avg")
    u: Any  # decayed maximum of past |g| ("exp_inf")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def update(grad, state: State, param, *, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    m = beta1 * state.m + (1 - beta1) * g
    u = maximum(beta2 * state.u, abs(g) + eps)
    bias_correction1 = bias_correction(beta1, t)
    step_size = lr / bias_correction1
    update = step_size * (m / u)
    quantities = {"g": g, "m": m, "u": u, "bias_correction1": bias_correction1,
                  "step_size": step_size, "update": update}
    return Step(param - update, State(t, m, u), quantities)
