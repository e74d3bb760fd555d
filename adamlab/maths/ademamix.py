"""AdEMAMix: Adam's step with a second, much slower average of the gradients mixed in.

    t     = t + 1
    g     = grad                                            (negated when maximizing)
    m1    = beta1 * m1 + (1 - beta1) * g                    Adam's fast average
    m2    = beta3_t * m2 + (1 - beta3_t) * g                a slow one, beta3 ~ 0.9999
    v     = beta2 * v + (1 - beta2) * g^2
    theta = theta * (1 - lr * weight_decay)                 decoupled weight decay, as AdamW
    theta = theta - lr * (m1 / (1 - beta1^t) + mix_t * m2) / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    mix_t   = min(t * mix / t_alpha, mix)                   (t_alpha given: the mix warms up)
    beta3_t = min(exp(ln(beta1) ln(beta3) / ((1 - t/t_beta3) ln(beta3) + (t/t_beta3) ln(beta1))), beta3)
                                                            (t_beta3 given: beta3 warms up from beta1)
    (cautious: the mixed average masked by g, adamlab.maths.cautious)

Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster, Older" (2024). A
single average must choose between following the recent gradients and remembering old ones;
AdEMAMix keeps both, and the slow one (half-life of thousands of steps) keeps gradients from long
ago useful. m2 has no bias correction, as in the paper: it starts at zero and grows into its
weight, the paper's alpha, here ``mix`` (RMSprop's alpha, a decay, has the name). The warmups
keep the slow average from dominating early, when it is mostly zero.
As the oracle (bitsandbytes' 32-bit AdEMAMix): the decay multiplies theta before the step.
"""

import math
from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .cautious import masked
from .ops import at_most, exp, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m1: Any  # fast average of gradients (state key "exp_avg")
    m2: Any  # slow average of gradients ("exp_avg_slow")
    v: Any  # second moment ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy(), zeros.copy())


def warmed_up_beta3(t, beta1, beta3, t_beta3):
    """beta3 at step t of a warmup of t_beta3 steps: from beta1 up to beta3, so that the slow
    average's half-life grows linearly with t (the paper's scheduler)."""
    log1, log3 = math.log(beta1), math.log(beta3)  # numbers: the fused kernel has no logarithm
    share = t / t_beta3
    return at_most(exp(log1 * log3 / ((1 - share) * log3 + share * log1)), beta3)


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, beta3=0.9999, mix=5.0,
           t_alpha=None, t_beta3=None, eps=1e-8, weight_decay=0.01, cautious=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    mix_t = mix if t_alpha is None else at_most(t * mix / t_alpha, mix)
    beta3_t = beta3 if t_beta3 is None else warmed_up_beta3(t, beta1, beta3, t_beta3)
    m1 = beta1 * state.m1 + (1 - beta1) * g
    m2 = beta3_t * state.m2 + (1 - beta3_t) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    bias_correction1 = bias_correction(beta1, t)
    bias_correction2 = bias_correction(beta2, t)
    mixed = m1 / bias_correction1 + mix_t * m2
    denominator = sqrt(v) / bias_correction2 ** 0.5 + eps
    update = lr * ((masked(mixed, g) if cautious else mixed) / denominator)
    quantities = {"g": g, "m1": m1, "m2": m2, "v": v, "mix_t": mix_t, "beta3_t": beta3_t,
                  "mixed": mixed, "update": update}
    decayed = param
    if weight_decay:
        decayed = param * (1 - lr * weight_decay)
        quantities["decay"] = param - decayed
    return Step(decayed - update, State(t, m1, m2, v), quantities)
