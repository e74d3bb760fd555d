"""Adam-mini: Adam with one second moment per block of parameters, not one per parameter.

    on the tensor seen as (blocks, block size):
    t     = t + 1
    g     = grad                                        (negated when maximizing)
    v     = beta2 * v + (1 - beta2) * mean(g^2 over the block)     one number per block
    m     = m + (1 - beta1) * (g - m)                   per element, as Adam's
    theta = theta * (1 - lr * weight_decay)             decoupled weight decay
    theta = theta - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More" (ICLR 2025). A transformer's
Hessian is near block-diagonal, one block per attention head and per output neuron; within a
block one learning rate serves about as well as Adam's one per parameter, so v shrinks from
one number per parameter to one per block and Adam's state nearly halves. The blocks, as the
authors' code (``adam_mini.Adam_mini``) cuts them, by the parameter's name:

- ``head``: the query and key projections, one block per head of dim * dim / n_heads elements;
- ``neuron``: embeddings, the output layer, the value and output projections and the MLP,
  one block per row (an output neuron, or a token's embedding);
- ``element``: biases, one block per element (Adam itself);
- ``tensor``: everything else (the norms), one block for the whole tensor.
"""

from typing import Any, NamedTuple

import numpy as np

from .adam import bias_correction
from .ops import mean, sqrt
from .step import Step

#: The ways to cut a tensor into blocks.
BLOCKS = ("element", "head", "neuron", "tensor")


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # first moment, per element, of the block view (state key "exp_avg")
    v: Any  # second moment, one per block: (blocks, 1) ("exp_avg_sq")


def block_shape(shape: tuple, blocks: str, head_size: int | None = None) -> tuple[int, int]:
    """(blocks, block size) of a tensor of ``shape`` cut by ``blocks`` (``head``: of ``head_size``)."""
    numel = int(np.prod(shape))
    if blocks == "element" or numel == 0:  # an empty tensor: no blocks, no second moment
        return numel, 1
    if blocks == "tensor":
        return 1, numel
    if blocks == "neuron":
        return (shape[0], numel // shape[0]) if len(shape) >= 1 and shape[0] else (numel, 1)
    if blocks == "head":
        if not head_size or numel % head_size:
            raise ValueError(f"a tensor of shape {tuple(shape)} does not cut into heads of {head_size} elements "
                             f"(dim * dim / n_heads)")
        return numel // head_size, head_size
    raise ValueError(f"blocks must be one of {', '.join(BLOCKS)}, got {blocks!r}")


def init(param) -> State:
    """The state of a parameter given as its block view (blocks, block size)."""
    zeros = np.zeros_like(param, dtype=np.float64)
    return State(0, zeros, np.zeros((zeros.shape[0], 1)))


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
           maximize=False) -> Step:
    """One step of a parameter given as its block view: gradient and parameter of shape (blocks, block size)."""
    t = state.step + 1
    g = -grad if maximize else grad
    v = beta2 * state.v + (1 - beta2) * mean(g * g, axis=-1)
    decayed = param * (1 - lr * weight_decay) if weight_decay else param
    m = state.m + (1 - beta1) * (g - state.m)
    update = lr * ((m / bias_correction(beta1, t)) / (sqrt(v / bias_correction(beta2, t)) + eps))
    return Step(decayed - update, State(t, m, v), {"g": g, "m": m, "v": v, "update": update})
