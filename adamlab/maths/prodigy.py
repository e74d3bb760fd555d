"""Prodigy: Adam whose step size d is estimated from the run itself; lr stays 1.

    for every tensor (the sums run over all of them):
        g   = grad (+ weight_decay * theta unless decoupled)         (negated when maximizing)
        numerator   += (d / d0) * dlr * <g, theta_0 - theta>         dlr = d * lr (* Adam's bias
        m   = beta1 * m + d * (1 - beta1) * g                         correction if asked)
        v   = beta2 * v + d^2 * (1 - beta2) * g^2
        s   = beta3 * s + (d / d0) * dlr * g                          (safeguard_warmup: d, not dlr)
        denominator += sum |s|
    r     = beta3 * r + numerator          (the running numerator; r starts at 0)
    d_hat = d_coef * r / denominator
    d     = max(d, d_hat) while d is still d0;   d_max = max(d_max, d_hat);   d = min(d_max, d * growth_rate)
            (growth_rate inf, the default: d = d_max, the largest estimate so far)
    for every tensor:
        theta = theta - weight_decay * dlr * theta                  (decoupled only)
        theta = theta - dlr * m / (sqrt(v) + d * eps)                dlr of the old d, eps of the new

Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner" (ICML
2024). d estimates the distance from the start to the solution, ||theta_0 - theta_*||, from
below: the correlation of the gradients with the distance travelled, over the size of the
gradients' running sum. It only grows, so a d0 far too small catches up within tens of steps,
and lr becomes a multiplier of d (1: trust it). d, d_max and r are one number for the whole
model, the same for every tensor: :func:`accumulate` is each tensor's part of the sums,
:func:`next_d` the new estimate, :func:`apply` each tensor's step; :func:`update` is the three
for one tensor alone (trace, race and the explorer step one).

As the oracle (the authors' ``prodigyopt.Prodigy``): m and v carry d inside them (m is the
average of d g), the step uses dlr from before this step's estimate and eps times the new d,
and when every gradient is zero so far (the sum of |s| is 0) nothing moves. theta_0 is a copy of
the parameters at their first step; the oracle keeps 0 for a tensor that is all zeros then,
which gives the same products.
"""

import math
from typing import Any, NamedTuple

import numpy as np

from .ops import at_least, at_most, sqrt, total, where
from .step import Step


class State(NamedTuple):
    """One tensor's state; ``d``, ``d_max``, ``r`` and ``step`` are the whole model's (kept in each
    parameter group by the class, per tensor by :func:`update`)."""

    step: Any  # steps taken so far (the oracle's "k")
    d: Any  # the step size's estimate
    d_max: Any  # the largest estimate so far
    r: Any  # the running numerator ("d_numerator")
    m: Any  # first moment, of d g ("exp_avg")
    v: Any  # second moment, of d^2 g^2 ("exp_avg_sq")
    s: Any  # running sum of the weighted gradients ("s")
    theta0: Any  # the parameters at their first step ("p0")


def init(param, *, d0=1e-6) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, d0, d0, 0.0, zeros, zeros.copy(), zeros.copy(), np.array(param, dtype=np.float64))


def step_size(d, step, *, lr=1.0, beta1=0.9, beta2=0.999, use_bias_correction=False):
    """dlr: the step's size, d * lr, times Adam's bias correction sqrt(1 - beta2^t) / (1 - beta1^t) if asked."""
    t = step + 1
    return d * lr * (sqrt(1 - beta2**t) / (1 - beta1**t) if use_bias_correction else 1.0)


def accumulate(grad, m, v, s, theta0, param, *, d, dlr, d0=1e-6, beta1=0.9, beta2=0.999, beta3=None,
               weight_decay=0.0, decouple=True, safeguard_warmup=False, maximize=False):
    """One tensor's moments and s, and its parts of the numerator and denominator: (m, v, s, numerator, denominator)."""
    beta3 = sqrt(beta2) if beta3 is None else beta3
    g = -grad if maximize else grad
    if weight_decay and not decouple:
        g = g + weight_decay * param
    numerator = (d / d0) * dlr * total(g * (theta0 - param))
    m = beta1 * m + (d * (1 - beta1)) * g
    v = beta2 * v + (d * d * (1 - beta2)) * (g * g)
    s = beta3 * s + ((d / d0) * (d if safeguard_warmup else dlr)) * g
    return m, v, s, numerator, total(abs(s))


def next_d(d, d_max, r, numerator, denominator, *, d0=1e-6, d_coef=1.0, growth_rate=math.inf, beta2=0.999,
           beta3=None):
    """The whole model's new (d, d_max, r) from its sums; unchanged where the denominator is 0."""
    beta3 = sqrt(beta2) if beta3 is None else beta3
    moving = denominator > 0
    r = where(moving, beta3 * r + numerator, r)
    d_hat = d_coef * r / where(moving, denominator, 1.0)
    grown = where(d <= d0, at_least(d_hat, d), d)  # d is d0 until it first grows: it never shrinks
    new_max = at_least(d_hat, d_max)
    new_d = at_most(grown * growth_rate, new_max) if growth_rate < math.inf else new_max
    return where(moving, new_d, d), where(moving, new_max, d_max), r


def apply(param, m, v, *, d, dlr, eps=1e-8, weight_decay=0.0, decouple=True):
    """One tensor's step: (the new parameter, the update)."""
    if weight_decay and decouple:
        param = param - (weight_decay * dlr) * param
    update = dlr * (m / (sqrt(v) + d * eps))
    return param - update, update


def update(grad, state: State, param, *, lr=1.0, beta1=0.9, beta2=0.999, beta3=None, eps=1e-8, weight_decay=0.0,
           decouple=True, use_bias_correction=False, safeguard_warmup=False, d0=1e-6, d_coef=1.0,
           growth_rate=math.inf, maximize=False) -> Step:
    """Prodigy's step for a model of one tensor."""
    dlr = step_size(state.d, state.step, lr=lr, beta1=beta1, beta2=beta2, use_bias_correction=use_bias_correction)
    m, v, s, numerator, denominator = accumulate(
        grad, state.m, state.v, state.s, state.theta0, param, d=state.d, dlr=dlr, d0=d0, beta1=beta1, beta2=beta2,
        beta3=beta3, weight_decay=weight_decay, decouple=decouple, safeguard_warmup=safeguard_warmup,
        maximize=maximize)
    d, d_max, r = next_d(state.d, state.d_max, state.r, numerator, denominator, d0=d0, d_coef=d_coef,
                         growth_rate=growth_rate, beta2=beta2, beta3=beta3)
    moved, update = apply(param, m, v, d=d, dlr=dlr, eps=eps, weight_decay=weight_decay, decouple=decouple)
    moving = denominator > 0  # else the moments change, and nothing else: the step does not count
    quantities = {"dlr": dlr, "m": m, "v": v, "s": s, "d": d, "update": where(moving, update, 0 * update)}
    return Step(where(moving, moved, param),
                State(where(moving, state.step + 1, state.step), d, d_max, r, m, v, s, state.theta0), quantities)
