"""Muon: momentum, orthogonalised by a Newton-Schulz iteration, for the weight matrices.

    b     = b + (1 - momentum) * (g - b)                  momentum buffer (torch.optim: "momentum_buffer")
    u     = g + momentum * (b - g)   if nesterov, else b
    o     = NS(u)                                         ~ U V^T of u = U S V^T, by five matrix polynomials
    theta = theta - lr * weight_decay * theta             decoupled weight decay
    theta = theta - lr * sqrt(max(1, rows / columns)) * o

Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024). An update
whose singular values are all about one moves every direction of the matrix alike: the rare
directions that a gradient's few large singular values would drown out learn too. NS(u) scales u
to spectral norm at most one (by its Frobenius norm) and applies five times the odd polynomial
x -> a x + b x^3 + c x^5 (a, b, c = 3.4445, -4.775, 2.0315), which pushes every singular value
towards 1 fast; the values end in about [0.7, 1.2], not exactly 1, which trains as well. On torch
the iteration runs in bfloat16, as torch.optim.Muon and the authors' code run it; the float64
reference runs it exactly. The scale sqrt(max(1, rows / columns)) is torch.optim.Muon's
default ("original"); "match_rms_adamw" scales by 0.2 sqrt(max(rows, columns)), so the update's
RMS matches AdamW's and AdamW's lr and decay carry over (Liu et al. 2025, Moonlight).
"""

import math
from typing import Any, NamedTuple

import numpy as np

from .ops import at_least, bfloat16, in_precision_of, matmul_add, norm
from .step import Step

#: The quintic's coefficients: the slope at zero as steep as they keep the iteration bounded.
COEFFICIENTS = (3.4445, -4.7750, 2.0315)
#: How the learning rate scales with the matrix's shape (torch.optim.Muon's ``adjust_lr_fn``).
LR_SCALES = ("original", "match_rms_adamw")


class State(NamedTuple):
    buffer: Any  # the momentum buffer (state key "momentum_buffer")


def init(param) -> State:
    return State(np.zeros_like(param, dtype=np.float64))


def orthogonalise(u, coefficients=COEFFICIENTS, steps=5, eps=1e-7):
    """Newton-Schulz: u's nearest semi-orthogonal matrix, roughly (its singular values near 1)."""
    a, b, c = coefficients
    tall = u.shape[0] > u.shape[1]
    x = bfloat16(u).T if tall else bfloat16(u)  # the Gram matrix x x^T of the shorter side
    x = x / at_least(norm(x), eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = matmul_add(x, matmul_add(gram, gram, gram, beta=b, alpha=c), x, beta=a, alpha=1)
    return x.T if tall else x


def lr_scale(shape, adjust_lr_fn=None) -> float:
    """The factor on lr for a matrix of ``shape``: the same RMS of update for any aspect ratio."""
    rows, columns = shape[:2]
    if adjust_lr_fn in (None, "original"):
        return math.sqrt(max(1, rows / columns))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, columns))
    raise ValueError(f"adjust_lr_fn must be one of {', '.join(LR_SCALES)} or None, got {adjust_lr_fn!r}")


def update(grad, state: State, param, *, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
           ns_coefficients=COEFFICIENTS, eps=1e-7, ns_steps=5, adjust_lr_fn=None, maximize=False) -> Step:
    g = -grad if maximize else grad
    buffer = state.buffer + (1 - momentum) * (g - state.buffer)
    u = g + momentum * (buffer - g) if nesterov else buffer
    o = in_precision_of(orthogonalise(u, ns_coefficients, ns_steps, eps), param)
    decayed = param * (1 - lr * weight_decay) if weight_decay else param
    update = (lr * lr_scale(param.shape, adjust_lr_fn)) * o
    return Step(decayed - update, State(buffer), {"g": g, "buffer": buffer, "u": u, "o": o, "update": update})
