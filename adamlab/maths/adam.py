"""Adam, with AMSGrad's running maximum and AdamW's decoupled weight decay.

    t     = t + 1
    g     = grad                                 (negated when maximizing)
    g     = g + weight_decay * theta             (Adam's L2 penalty, not AdamW's)
    m     = beta1 * m + (1 - beta1) * g          first moment
    v     = beta2 * v + (1 - beta2) * g^2        second moment
    v_max = max(v_max, v)                        (AMSGrad only)
    m_hat = m / (1 - beta1^t)                    bias corrections
    v_hat = v / (1 - beta2^t)                    (v_max in place of v for AMSGrad)
    theta = theta - lr * weight_decay * theta    (AdamW only)
    m_hat = cautious(m_hat, g)                   (cautious only: adamlab.maths.cautious)
    theta = theta - lr * m_hat / (sqrt(v_hat) + eps)

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015);
Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond" (ICLR 2018);
Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
AMSGrad here keeps the maximum of the raw v and bias-corrects it, as
torch.optim does; the paper's algorithm has no bias correction at all.
"""

from typing import Any, NamedTuple

import numpy as np

from .cautious import masked
from .ops import maximum, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment, moving average of gradients (torch.optim: "exp_avg")
    v: Any  # second moment, moving average of squared gradients ("exp_avg_sq")
    v_max: Any  # AMSGrad only: the largest v so far ("max_exp_avg_sq")


def init(param, *, amsgrad=False) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, zeros.copy(), zeros.copy() if amsgrad else None)


def bias_correction(beta, t):
    """1 - beta^t: the weight a moving average started at zero has gathered after t steps."""
    return 1 - beta**t


def with_weight_decay(g, param, *, lr, weight_decay, decoupled):
    """Weight decay, as an L2 term of the gradient or (``decoupled``, AdamW's) as a shrink of
    theta itself, untouched by v's scaling: (g, theta, the decay taken off theta or None)."""
    if not weight_decay:
        return g, param, None
    if decoupled:
        decay = lr * weight_decay * param
        return g, param - decay, decay
    return g + weight_decay * param, param, None


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, cautious=False,
           maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    g, param, decay = with_weight_decay(g, param, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay)
    m = beta1 * state.m + (1 - beta1) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    v_max = state.v_max
    if amsgrad:
        v_max = v if v_max is None else maximum(v_max, v)
    bias_correction1 = bias_correction(beta1, t)
    bias_correction2 = bias_correction(beta2, t)
    m_hat = m / bias_correction1
    v_hat = (v_max if amsgrad else v) / bias_correction2
    direction = masked(m_hat, g) if cautious else m_hat
    update = lr * direction / (sqrt(v_hat) + eps)
    quantities = {"g": g, "m": m, "v": v,
                  "bias_correction1": bias_correction1, "bias_correction2": bias_correction2,
                  "m_hat": m_hat, "v_hat": v_hat, "update": update}
    if amsgrad:
        quantities["v_max"] = v_max
    if cautious:
        quantities["masked"] = direction
    if decay is not None:
        quantities["decay"] = decay
    return Step(param - update, State(t, m, v, v_max), quantities)
