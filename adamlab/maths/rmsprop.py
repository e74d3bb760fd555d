"""RMSprop: each coordinate's step divided by the root of a moving average of squared gradients.

    g     = grad                        (negated when maximizing)
    g     = g + weight_decay * theta    (L2 penalty)
    v     = alpha * v + (1 - alpha) * g^2
    centered:  g_avg = alpha * g_avg + (1 - alpha) * g,   s = v - g_avg^2
    otherwise: s = v
    r     = g / (sqrt(s) + eps)
    momentum > 0:  b = momentum * b + r,   theta = theta - lr * b
    otherwise:     theta = theta - lr * r

Tieleman & Hinton, Lecture 6.5 of "Neural Networks for Machine Learning" (2012);
the centered form is Graves, "Generating Sequences With Recurrent Neural
Networks" (2013). Unlike AdaGrad's sum, the average forgets, so the step never
dies; unlike Adam there is no bias correction.
"""

from typing import Any, NamedTuple

import numpy as np

from .ops import sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    v: Any  # moving average of squared gradients (torch.optim: "square_avg")
    grad_avg: Any  # centered only: moving average of gradients
    momentum_buffer: Any  # momentum > 0 only


def init(param, *, momentum=0.0, centered=False) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy() if centered else None,
                        zeros.copy() if momentum > 0 else None)


def update(grad, state: State, param, *, lr=1e-2, alpha=0.99, eps=1e-8,
           weight_decay=0.0, momentum=0.0, centered=False, maximize=False) -> Step:
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    v = alpha * state.v + (1 - alpha) * g * g
    quantities = {"g": g, "v": v}
    grad_avg, buffer = state.grad_avg, state.momentum_buffer
    if centered:
        # Subtracting the squared mean leaves the gradient's variance.
        grad_avg = alpha * grad_avg + (1 - alpha) * g
        denominator = sqrt(v - grad_avg * grad_avg) + eps
        quantities["grad_avg"] = grad_avg
    else:
        denominator = sqrt(v) + eps
    if momentum > 0:
        buffer = momentum * buffer + g / denominator
        update = lr * buffer
        quantities["momentum_buffer"] = buffer
    else:
        update = lr * g / denominator
    quantities["update"] = update
    return Step(param - update, State(state.step + 1, v, grad_avg, buffer), quantities)
