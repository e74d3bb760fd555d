"""NAdam: Adam whose momentum looks one step ahead, as Nesterov's momentum does.

    t       = t + 1
    g       = grad                                     (negated when maximizing)
    g       = g + weight_decay * theta                 (L2 penalty; decoupled: see below)
    mu_t    = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))        momentum schedule
    mu_next = beta1 * (1 - 0.5 * 0.96^((t + 1) * momentum_decay))
    prod    = prod * mu_t                              mu_1 * ... * mu_t (starts at 1)
    m       = beta1 * m + (1 - beta1) * g
    v       = beta2 * v + (1 - beta2) * g^2
    m_hat   = mu_next * m / (1 - prod * mu_next) + (1 - mu_t) * g / (1 - prod)
    v_hat   = v / (1 - beta2^t)
    theta   = theta - lr * weight_decay * theta        (decoupled only: NAdamW)
    theta   = theta - lr * m_hat / (sqrt(v_hat) + eps)

Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop). m_hat
weighs the momentum as it will stand after the next step (mu_next) and this
step's gradient apart, which is Nesterov's look-ahead. The paper's schedule is
0.96^(t / 250): momentum_decay = 1/250 = 4e-3. As torch.optim, m itself is
averaged with beta1, not mu_t, and decoupled decay follows Loshchilov & Hutter,
"Decoupled Weight Decay Regularization" (ICLR 2019).
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction, with_weight_decay
from .ops import sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    mu_product: Any  # one number: the product of the momentum coefficients so far ("mu_product")
    m: Any  # first moment, moving average of gradients ("exp_avg")
    v: Any  # second moment, moving average of squared gradients ("exp_avg_sq")


def init(param) -> State:
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, 1.0, zeros, zeros.copy())


def momentum_coefficient(beta1, momentum_decay, t):
    """mu_t: half of beta1 at t = 0, rising towards beta1 as 0.96^(t * momentum_decay) fades."""
    return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))


def update(grad, state: State, param, *, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False,
           maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    g, param, decay = with_weight_decay(g, param, lr=lr, weight_decay=weight_decay,
                                        decoupled=decoupled_weight_decay)  # decoupled: NAdamW
    mu = momentum_coefficient(beta1, momentum_decay, t)
    mu_next = momentum_coefficient(beta1, momentum_decay, t + 1)
    mu_product = state.mu_product * mu
    mu_product_next = mu_product * mu_next
    m = beta1 * state.m + (1 - beta1) * g
    v = beta2 * state.v + (1 - beta2) * g * g
    # Each part corrected by the product of the coefficients it has gathered, as Adam's
    # 1 - beta1^t corrects m when every coefficient is beta1.
    m_hat = mu_next / (1 - mu_product_next) * m + (1 - mu) / (1 - mu_product) * g
    bias_correction2 = bias_correction(beta2, t)
    v_hat = v / bias_correction2
    update = lr * m_hat / (sqrt(v_hat) + eps)
    quantities = {"g": g, "mu": mu, "mu_next": mu_next, "mu_product": mu_product, "m": m, "v": v,
                  "m_hat": m_hat, "bias_correction2": bias_correction2, "v_hat": v_hat, "update": update}
    if decay is not None:
        quantities["decay"] = decay
    return Step(param - update, State(t, mu_product, m, v), quantities)
