"""Stochastic gradient descent with momentum, dampening and Nesterov momentum.

    g     = grad                        (negated when maximizing)
    g     = g + weight_decay * theta    (L2 penalty)
    b     = g                           at the first step with momentum
    b     = momentum * b + (1 - dampening) * g   afterwards
    d     = g + momentum * b  (Nesterov)  or  b  (heavy ball)  or  g  (no momentum)
    theta = theta - lr * d

Sutskever et al., "On the importance of initialization and momentum in deep
learning" (ICML 2013). The buffer starting at the first gradient, undamped, is
torch.optim's convention.
"""

from typing import Any, NamedTuple

from .step import Step


class State(NamedTuple):
    momentum_buffer: Any  # b, the velocity; None until the first step with momentum


def init(param) -> State:
    return State(momentum_buffer=None)


def update(grad, state: State, param, *, lr=1e-3, momentum=0.0, dampening=0.0,
           weight_decay=0.0, nesterov=False, maximize=False) -> Step:
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    quantities = {"g": g}
    buffer, direction = state.momentum_buffer, g
    if momentum:
        buffer = g if buffer is None else momentum * buffer + (1 - dampening) * g
        direction = g + momentum * buffer if nesterov else buffer
        quantities["momentum_buffer"] = buffer
    update = lr * direction
    quantities["update"] = update
    return Step(param - update, State(buffer), quantities)
