"""RAdam: Adam that takes plain momentum steps until v has seen enough gradients to trust.

    t     = t + 1
    g     = grad                                   (negated when maximizing)
    g     = g + weight_decay * theta               (L2 penalty; decoupled: see below)
    m     = beta1 * m + (1 - beta1) * g
    v     = beta2 * v + (1 - beta2) * g^2
    m_hat = m / (1 - beta1^t)
    rho_inf = 2 / (1 - beta2) - 1                  the longest simple average v stands for
    rho_t   = rho_inf - 2 * t * beta2^t / (1 - beta2^t)
    theta = theta - lr * weight_decay * theta      (decoupled only: RAdamW)
    rho_t > 5:  r     = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))
                theta = theta - lr * m_hat * r * sqrt(1 - beta2^t) / (sqrt(v) + eps)
    otherwise:  theta = theta - lr * m_hat

Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020).
rho_t is the length of the simple moving average that v stands for after t steps;
while it is short, the variance of the adaptive step 1 / sqrt(v_hat) is too large
(unbounded for rho_t <= 4), so the step is SGD with momentum; after, r shrinks the
adaptive step by the root of its variance's limit over its variance now. The
paper switches at rho_t > 4, torch.optim (and adamlab) at rho_t > 5; the paper
has no eps. Decoupled decay follows Loshchilov & Hutter, "Decoupled Weight Decay
Regularization" (ICLR 2019).
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction, with_weight_decay
from .ops import sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment, moving average of gradients (torch.optim: "exp_avg")
    v: Any  # second moment, moving average of squared gradients ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy())


def rectification(rho_t, rho_inf):
    """r = sqrt(Var[limit] / Var[now]) of the adaptive step, in [0, 1): what scales its variance
    down to that of the long average's."""
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, decoupled_weight_decay=False, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    g, param, decay = with_weight_decay(g, param, lr=lr, weight_decay=weight_decay,
                                        decoupled=decoupled_weight_decay)  # decoupled: RAdamW
    m = beta1 * state.m + (1 - beta1) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    bias_correction1 = bias_correction(beta1, t)
    bias_correction2 = bias_correction(beta2, t)
    m_hat = m / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
    quantities = {"g": g, "m": m, "v": v, "bias_correction1": bias_correction1,
                  "bias_correction2": bias_correction2, "m_hat": m_hat, "rho_inf": rho_inf, "rho_t": rho_t}
    if rho_t > 5:
        r = rectification(rho_t, rho_inf)
        # 1 / sqrt(v_hat), with eps added to sqrt(v) before the correction, as torch.optim adds it
        adaptive_lr = bias_correction2**0.5 / (sqrt(v) + eps)
        update = m_hat * lr * adaptive_lr * r
        quantities.update({"r": r, "adaptive_lr": adaptive_lr})
    else:
        update = m_hat * lr
    quantities["update"] = update
    if decay is not None:
        quantities["decay"] = decay
    return Step(param - update, State(t, m, v), quantities)
