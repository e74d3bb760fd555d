"""Schedule-Free AdamW: no learning-rate schedule; the average of the iterates does its work.

    t      = t + 1
    g      = grad, taken at y                       (negated when maximizing)
    lr_t   = lr * min(t / warmup_steps, 1)          (warmup_steps 0: lr)
    w      = t^r * max(lr_1 .. lr_t)^weight_lr_power
    c      = w / (w_1 + ... + w_t)                  the new iterate's weight in the average x
    v      = beta2 * v + (1 - beta2) * g^2
    n      = g / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * y
    y      = y + c * (z - y)                        y moves with x's average of z ...
    y      = y + lr_t * (beta1 * (1 - c) - 1) * n   ... and with z's step
    z      = z - lr_t * n                           plain (Adam-normalised) gradient steps

    x = (y - (1 - beta1) * z) / beta1               the average: the weights to evaluate
    y = (1 - beta1) * z + beta1 * x                 where the gradient is taken

Defazio et al., "The Road Less Scheduled" (NeurIPS 2024; the AlgoPerf 2024 self-tuning
winner). z takes plain steps at a constant lr; x is the weighted average of the z's, which the
theory shows matches the best schedule without knowing the run's length; the gradient is taken
at y, between the two, which keeps momentum's speed. The model's parameters hold y while
training and x while evaluating: :func:`to_x` and :func:`to_y` move between them. Only z and v
are kept, and x is found from y and z, so the state costs what AdamW's does.

As the oracle (the authors' ``schedulefree.AdamWScheduleFree``): the weight uses the largest lr
so far (lr_max), so warmup does not let early iterates dominate; weight decay is taken at y and
goes through z and y alike.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .ops import at_least, at_most, sqrt, where
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far (the oracle's per-group "k")
    weight_sum: Any  # the sum of the averaging weights so far
    lr_max: Any  # the largest scheduled lr so far
    z: Any  # the plain iterate (state key "z")
    v: Any  # second moment ("exp_avg_sq")


def init(param) -> State:
    return State(0, 0.0, 0.0, np.array(param, dtype=np.float64), np.zeros_like(param, dtype=np.float64))


def to_x(y, z, beta1):
    """The average x (to evaluate) from the training point y and the iterate z."""
    return y + (1 - 1 / beta1) * (z - y)


def to_y(x, z, beta1):
    """The training point y from the average x and the iterate z."""
    return x + (1 - beta1) * (z - x)


def update(grad, state: State, param, *, lr=0.0025, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
           warmup_steps=0, r=0.0, weight_lr_power=2.0, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    lr_t = lr * at_most(t / warmup_steps, 1.0) if warmup_steps else lr
    lr_max = at_least(state.lr_max, lr_t)
    weight = t**r * lr_max**weight_lr_power
    weight_sum = state.weight_sum + weight
    has_weight = weight_sum > 0  # else (lr 0 so far) y stays where it is
    c = where(has_weight, weight / where(has_weight, weight_sum, 1.0), 0.0)
    v = beta2 * state.v + (1 - beta2) * g * g
    n = g / (sqrt(v / bias_correction(beta2, t)) + eps)
    if weight_decay:
        n = n + weight_decay * param
    y = param + c * (state.z - param)
    y = y + (lr_t * (beta1 * (1 - c) - 1)) * n
    z = state.z - lr_t * n
    quantities = {"g": g, "lr_t": lr_t, "c": c, "v": v, "n": n, "z": z, "update": param - y}
    return Step(y, State(t, weight_sum, lr_max, z, v), quantities)
