"""Lion: the sign of an interpolation of momentum and gradient, one step size for every coordinate.

    g     = grad                                    (negated when maximizing)
    c     = beta1 * m + (1 - beta1) * g             the direction's interpolation
    theta = theta * (1 - lr * weight_decay)         decoupled weight decay
    theta = theta - lr * sign(c)                   (cautious: lr * cautious(sign(c), g), adamlab.maths.cautious)
    m     = beta2 * m + (1 - beta2) * g             momentum, updated after the step

Chen et al., "Symbolic Discovery of Optimization Algorithms" (NeurIPS 2023). Every
coordinate moves by exactly lr (or not at all where c is 0), so Lion wants a learning
rate 3-10x smaller than AdamW's and a weight decay as much larger, to keep lr * weight_decay.
It keeps one state tensor to Adam's two. beta2 > beta1 makes the momentum remember
longer than the interpolation that sets the direction.
"""

from typing import Any, NamedTuple

import numpy as np

from .cautious import masked
from .ops import sign
from .step import Step


class State(NamedTuple):
    m: Any  # momentum, moving average of gradients (state key "exp_avg", as lion-pytorch names it)


def init(param) -> State:
    return State(np.zeros_like(param, dtype=np.float64))


def update(grad, state: State, param, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0, cautious=False,
           maximize=False) -> Step:
    g = -grad if maximize else grad
    c = beta1 * state.m + (1 - beta1) * g
    direction = sign(c)
    decayed = param * (1 - lr * weight_decay)
    if cautious:
        direction = masked(direction, g)
    update = lr * direction
    m = beta2 * state.m + (1 - beta2) * g
    quantities = {"g": g, "c": c, "sign": sign(c), "update": update, "m": m}
    return Step(decayed - update, State(m), quantities)
