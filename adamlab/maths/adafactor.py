"""Adafactor: Adam's second moment factored into a row and a column per matrix, no first moment.

    t       = t + 1
    g       = grad                                   (negated when maximizing)
    w       = t^beta2_decay                          1 - beta2_t: the schedule beta2_t = 1 - t^-0.8
    rho     = min(lr, 1 / sqrt(t))                   relative step size
    alpha   = max(eps2, RMS(theta)) * rho            steps scale with the weights themselves
    theta   = theta * (1 - lr * weight_decay)
    for a matrix (the last two dimensions):
        R     = (1 - w) * R + w * mean(g^2 over columns)     one number per row
        C     = (1 - w) * C + w * mean(g^2 over rows)        one number per column
        v_hat = R C / max(mean(R), eps1)                    the rank-1 estimate of v
    for a vector:
        v_hat = V = (1 - w) * V + w * g^2
    u       = g / sqrt(max(v_hat, eps1^2))
    u_hat   = u / max(1, RMS(u) / d)                 update clipping
    m       = beta1 * m + (1 - beta1) * u_hat        (only with beta1; u_hat is the step without)
    theta   = theta - alpha * m

Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (ICML
2018). A matrix of r x c keeps r + c numbers instead of r * c. At t = 1, w = 1: v_hat starts
from g^2 itself, so no bias correction is needed. As torch.optim.Adafactor: eps1 defaults to
the parameter dtype's machine epsilon, weight decay is lr-coupled, and tensors of more than
two dimensions are batches of matrices over their last two. The first moment (beta1) is the
paper's option; torch.optim's Adafactor has none.

Non-finite gradients, as torch.optim.Adafactor: a NaN in a matrix's gradient reaches every
element through the row and column means (the whole matrix becomes NaN); in a vector's, only
its own element. The two maxima of per-tensor numbers, max(eps2, RMS(theta)) and max(1, RMS(u)
/ d), drop a NaN (Python's max, as torch.optim takes them), so a NaN element of u does not
stretch to the rest of a vector through the clipping.
"""

from typing import Any, NamedTuple

import numpy as np

from .ops import at_least, at_least_ignoring_nan, at_most, machine_epsilon, mean, norm, size, sqrt
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    row_var: Any  # matrices: R, shape (..., rows, 1) (torch.optim's key: "row_var")
    col_var: Any  # matrices: C, shape (..., 1, columns) ("col_var")
    variance: Any  # vectors: V, the parameter's shape ("variance")
    m: Any  # with beta1 only: first moment of the clipped update ("exp_avg")


def init(param, *, beta1=None) -> State:
    shape = np.shape(param)
    m = np.zeros(shape) if beta1 is not None else None
    if len(shape) >= 2:
        return State(0, np.zeros(shape[:-1] + (1,)), np.zeros(shape[:-2] + (1, shape[-1])), None, m)
    return State(0, None, None, np.zeros(shape), m)


def _rms(x):
    return norm(x) / size(x) ** 0.5  # as torch.optim: an empty tensor's is NaN, which the maxima drop


def _towards(old, new, weight):
    return old + weight * (new - old)


def update(grad, state: State, param, *, lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0,
           weight_decay=0.0, beta1=None, maximize=False) -> Step:
    t = state.step + 1
    g = -grad if maximize else grad
    if eps1 is None:
        eps1 = machine_epsilon(param)
    weight = t**beta2_decay
    rho = at_most(t**-0.5, lr)
    alpha = at_least_ignoring_nan(_rms(param), eps2) * rho
    decayed = param * (1 - lr * weight_decay) if weight_decay else param
    squared = g * g
    row_var, col_var, variance = state.row_var, state.col_var, state.variance
    if state.variance is None:  # a matrix, whose state is factored
        row_var = _towards(row_var, mean(squared, -1), weight)
        col_var = _towards(col_var, mean(squared, -2), weight)
        v_hat = (row_var @ col_var) / at_least(mean(row_var, -2), eps1)
    else:
        v_hat = variance = _towards(variance, squared, weight)
    u = g / sqrt(at_least(v_hat, eps1 * eps1))
    clip = at_least_ignoring_nan(_rms(u) / d, 1.0)
    u_hat = u / clip
    m = state.m
    if beta1 is not None:
        m = beta1 * m + (1 - beta1) * u_hat
    update = alpha * (u_hat if beta1 is None else m)
    quantities = {"g": g, "beta2": 1 - weight, "rho": rho, "alpha": alpha, "v_hat": v_hat, "u": u,
                  "clip": clip, "update": update}
    if beta1 is not None:
        quantities["m"] = m
    return Step(decayed - update, State(t, row_var, col_var, variance, m), quantities)
