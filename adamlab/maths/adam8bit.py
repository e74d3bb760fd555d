"""8-bit Adam and AdamW: Adam's step, with m and v stored block-wise in 8 bits between steps.

    m, v  = dequantize(codes, scales)            m with the signed code, v with the unsigned one
    step  = Adam's update (adamlab.maths.adam) from m and v, as in full precision
    codes, scales = quantize(m), quantize(v)     for the next step

The step itself uses the new m and v before they are rounded to 8 bits; only what is kept
between steps is rounded. Dettmers et al., "8-bit Optimizers via Block-wise Quantization"
(ICLR 2022); see :mod:`adamlab.maths.quantize` for the codes.
"""

from typing import Any, NamedTuple

import numpy as np

from . import adam
from .quantize import blocks, dequantize, quantize
from .step import Step


class State(NamedTuple):
    step: Any  # steps taken so far
    m: Any  # 8-bit codes of the first moment (torch.optim's key: "exp_avg")
    m_scales: Any  # float32, one per block ("exp_avg_absmax")
    v: Any  # 8-bit codes of the second moment ("exp_avg_sq")
    v_scales: Any  # ("exp_avg_sq_absmax")


def init(param) -> State:
    zeros = np.zeros(np.shape(param), dtype=np.uint8)
    scales = np.zeros(blocks(np.size(param)), dtype=np.float32)
    return State(0, zeros, scales, zeros.copy(), scales.copy())


def update(grad, state: State, param, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, decoupled_weight_decay=False, maximize=False, start=0) -> Step:
    """One step; ``start`` places a shard in the block grid of its whole tensor (see quantize)."""
    step = full_precision_update(grad, state, param, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                 weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                                 maximize=maximize, start=start)
    return quantized(step, start=start)


def full_precision_update(grad, state: State, param, *, start=0, **hyperparameters) -> Step:
    """Adam's step on the dequantized moments: the new parameter, and m and v unrounded."""
    m = dequantize(state.m, state.m_scales, signed=True, like=param, start=start)
    v = dequantize(state.v, state.v_scales, signed=False, like=param, start=start)
    return adam.update(grad, adam.State(state.step, m, v, None), param, **hyperparameters)


def quantized(step: Step, *, start=0, m_scales=None, v_scales=None) -> Step:
    """The step with its m and v quantized for keeping; given scales override the blocks' own."""
    m_codes, m_scales = quantize(step.state.m, signed=True, start=start, scales=m_scales)
    v_codes, v_scales = quantize(step.state.v, signed=False, start=start, scales=v_scales)
    return Step(step.param, State(step.state.step, m_codes, m_scales, v_codes, v_scales), step.quantities)
