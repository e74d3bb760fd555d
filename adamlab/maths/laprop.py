"""LaProp: RMSprop's normalised gradient, averaged with momentum, so the two betas act apart.

    t     = t + 1
    g     = grad                                      (negated when maximizing)
    g     = g + weight_decay * theta                  (L2 penalty; decoupled, the default: see below)
    v     = beta2 * v + (1 - beta2) * g^2
    n     = g / ((sqrt(v) + eps) / sqrt(1 - beta2^t)) the gradient over its bias-corrected RMS
    m     = beta1 * m + (1 - beta1) * lr * n          momentum of the normalised steps
    l     = beta1 * l + (1 - beta1) * lr              the same average of the learning rates
    theta = theta - (lr / l) * m                      m's bias correction: l / lr = 1 - beta1^t
    theta = theta * (1 - lr * weight_decay)           (decoupled only)
    (cautious: m masked by g in the step, adamlab.maths.cautious)

Ziyin, Wang & Ueda, "LaProp: Separating Momentum and Adaptivity in Adam" (2020). Adam divides
the momentum of the gradients by the RMS; LaProp takes the momentum of gradients already
divided by it, so that momentum and adaptivity no longer interact: any beta1 < 1 and beta2 < 1
work together, where Adam needs beta1 < sqrt(beta2). As the authors' code, the learning rate
goes into m and the correction divides by the running average of the rates (``l``), which is
the paper's 1 - beta1^t while lr is constant and stays right when a schedule changes it.

Where adamlab differs from the oracle (pytorch-optimizer's LaProp): it divides by sqrt(v) +
eps, as the paper does, where the oracle takes sqrt(v + 1e-15) + eps; and its L2 penalty
(``decoupled_weight_decay=False``) is added to the gradient before the step, where the
oracle's is added after this step has used the gradient and so changes nothing.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .cautious import masked
from .ops import sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    lr_average: Any  # one number: beta1's average of the learning rates so far ("exp_avg_lr_1")
    m: Any  # momentum of the lr-scaled normalised gradients ("exp_avg")
    v: Any  # second moment, moving average of squared gradients ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, 0.0, zeros, zeros.copy())


def update(grad, state: State, param, *, lr=4e-4, beta1=0.9, beta2=0.999, eps=1e-15, weight_decay=0.0,
           decoupled_weight_decay=True, cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    if weight_decay and not decoupled_weight_decay:
        g = g + weight_decay * param
    v = beta2 * state.v + (1 - beta2) * g * g
    bias_correction2 = bias_correction(beta2, t)
    normalised = g / ((sqrt(v) + eps) / bias_correction2 ** 0.5)
    m = beta1 * state.m + (1 - beta1) * lr * normalised
    lr_average = beta1 * state.lr_average + (1 - beta1) * lr
    # lr over the average of the rates: 1 / (1 - beta1^t) at a constant lr; 1 when lr is 0 (no step)
    step_size = lr / lr_average if lr > 0 else 1.0
    update = step_size * (masked(m, g) if cautious else m)
    new = param - update
    quantities = {"g": g, "v": v, "bias_correction2": bias_correction2, "normalised": normalised, "m": m,
                  "lr_average": lr_average, "step_size": step_size, "update": update}
    if weight_decay and decoupled_weight_decay:
        new = new * (1 - lr * weight_decay)
    return Step(new, State(t, lr_average, m, v), quantities)
