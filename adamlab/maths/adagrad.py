"""AdaGrad: each coordinate's step divided by the root of its summed squared gradients.

    t     = t + 1
    g     = grad                        (negated when maximizing)
    g     = g + weight_decay * theta    (L2 penalty)
    lr_t  = lr / (1 + (t - 1) * lr_decay)
    sum   = sum + g^2                   (starts at initial_accumulator_value)
    theta = theta - lr_t * g / (sqrt(sum) + eps)

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (JMLR 2011). The sum only grows, so the effective step
lr_t / sqrt(sum) shrinks towards zero over a long run.
"""

from typing import Any, NamedTuple

import numpy as np

from .ops import sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    sum_sq: Any  # running sum of squared gradients (torch.optim: "sum")


def init(param, *, initial_accumulator_value=0.0) -> State:
    return State(0, np.full_like(param, initial_accumulator_value, dtype=np.float64))


def update(grad, state: State, param, *, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
           eps=1e-10, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    lr_t = lr / (1 + (t - 1) * lr_decay)
    sum_sq = state.sum_sq + g * g
    update = lr_t * g / (sqrt(sum_sq) + eps)
    quantities = {"g": g, "lr_t": lr_t, "sum": sum_sq, "update": update}
    return Step(param - update, State(t, sum_sq), quantities)
