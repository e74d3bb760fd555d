"""Block-wise 8-bit storage of optimizer state with the "dynamic" code of Dettmers et al.

A tensor is cut into blocks of ``BLOCK`` elements (its flat order; the last block may be
short). Each block keeps one float32 scale, its largest magnitude, and each element one byte:
the index of the code value nearest to element / scale.

The code spends its 256 values where Adam's moments need them. Every value is a decade
10^-d (d = 0 .. 6) times a fraction in [0.1, 1] taken from an even grid of that decade, and
the larger decades get the finer grids: the signed code (for m) gives decade 10^-d 2^(6-d)
values of each sign, the unsigned one (for v, never negative) 2^(7-d); both add 0 and 1. So
relative precision stays ~1-2% across the top decades and the code still reaches 10^-6 of
the block's largest value, where a linear code would have flushed everything below 1/127
to zero.

Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise Quantization"
(ICLR 2022). The codes are bitsandbytes' ``create_dynamic_map`` and the blocks its
optimizers' 256 (theirs are computed in float32, so the last bit may differ).

>>> import numpy as np
>>> codes, scales = quantize(np.array([0.5, -0.25, 1e-3, 0.0]), signed=True)
>>> dequantize(codes, scales, signed=True, like=np.float64(0)).round(4).tolist()
[0.5, -0.2504, 0.0009, 0.0]
"""

import functools

import numpy as np
import torch

#: Elements per block sharing one float32 scale.
BLOCK = 256


@functools.cache
def code(signed: bool) -> np.ndarray:
    """The 256 code values in ascending order, as float32."""
    values = [0.0, 1.0]
    for d in range(7):
        count = 2 ** (6 - d) if signed else 2 ** (7 - d)
        edges = np.linspace(0.1, 1.0, count + 1)
        magnitudes = 10.0 ** -d * (edges[:-1] + edges[1:]) / 2  # the middle of each step of the grid
        values += list(magnitudes) + (list(-magnitudes) if signed else [])
    return np.array(sorted(values), dtype=np.float32)


@functools.cache
def midpoints(signed: bool) -> np.ndarray:
    """The 255 boundaries between neighbouring codes: a value rounds to the code below the
    first boundary at or above it (boundaries are float32, as the codes)."""
    values = code(signed)
    return ((values[:-1] + values[1:]) / 2).astype(np.float32)


def quantize(x, *, signed: bool, start: int = 0, scales=None):
    """``x`` (NumPy array or torch tensor) as 8-bit codes of its shape and float32 block scales.

    A block of zeros gets scale 0 and the code of 0. x / scale is computed as x * (1 / scale) in
    ``x``'s own precision, the scale rounded to float32 first, exactly as the fused kernel does.
    A block holding a NaN or an infinity, or whose largest magnitude overflows float32, cannot be
    coded: it gets scale NaN and codes 0, so it reads back as NaN and stays so.

    A shard of a larger tensor follows that tensor's grid of blocks: ``start`` is the flat index
    of its first element there, so its first and last blocks may be short, and ``scales`` gives
    the scales to code with where a block's other elements live elsewhere (by default each
    block's own largest magnitude, as returned).
    """
    if isinstance(x, torch.Tensor):
        grid = _grid(x, start)
        scales = _maxima(grid) if scales is None else scales
        finite = scales.isfinite() & grid.isfinite().all(dim=1)
        scales = scales if finite.all() else torch.where(finite, scales, torch.nan)
        inverse = 1 / torch.where(scales > 0, scales, 1).to(x.dtype)
        bounds = torch.as_tensor(midpoints(signed), device=x.device).to(x.dtype)
        codes = torch.searchsorted(bounds, (grid * inverse[:, None]).contiguous())
        codes = torch.where(finite[:, None], codes, 0)
        return _ungrid(codes, start, x.shape).to(torch.uint8), scales
    grid = _grid(np.asarray(x), start)
    scales = _maxima(grid) if scales is None else scales
    finite = np.isfinite(scales) & np.isfinite(grid).all(axis=1)
    scales = scales if finite.all() else np.where(finite, scales, np.float32(np.nan)).astype(np.float32)
    inverse = 1 / np.where(scales > 0, scales, 1).astype(grid.dtype)
    with np.errstate(invalid="ignore"):  # NaN blocks: their codes are set below
        codes = np.searchsorted(midpoints(signed).astype(grid.dtype), grid * inverse[:, None])
    codes = np.where(finite[:, None], codes, 0)
    return _ungrid(codes, start, np.shape(x)).astype(np.uint8), scales


def block_maxima(x, *, start: int = 0):
    """Each block's largest magnitude as float32: the scales ``quantize`` codes with."""
    return _maxima(_grid(x if isinstance(x, torch.Tensor) else np.asarray(x), start))


def _maxima(grid):
    if isinstance(grid, torch.Tensor):
        return grid.abs().amax(dim=1).to(torch.float32)
    return np.abs(grid).max(axis=1).astype(np.float32)


def dequantize(codes, scales, *, signed: bool, like, start: int = 0):
    """The values that ``codes`` and block ``scales`` stand for, shaped as ``codes``, in
    ``like``'s precision but at least float32 (bfloat16 would lose what the codes keep)."""
    if isinstance(codes, torch.Tensor):
        values = torch.as_tensor(code(signed), device=codes.device)[codes.long()]
        values = values.to(torch.promote_types(like.dtype, torch.float32))
        return _ungrid(_grid(values, start) * scales.to(values.dtype)[:, None], start, codes.shape)
    values = code(signed)[np.asarray(codes)].astype(np.result_type(like, np.float32))
    return _ungrid(_grid(values, start) * np.asarray(scales).astype(values.dtype)[:, None], start, np.shape(codes))


def _grid(x, start: int):
    """x's flat elements in rows of BLOCK, padded with zeros where its blocks are short."""
    before = start % BLOCK if _size(x) else 0  # nothing has no blocks, wherever it starts
    after = -(before + _size(x)) % BLOCK
    if isinstance(x, torch.Tensor):
        return torch.nn.functional.pad(x.reshape(-1), (before, after)).reshape(-1, BLOCK)
    return np.pad(x.reshape(-1), (before, after)).reshape(-1, BLOCK)


def _ungrid(grid, start: int, shape):
    """The inverse of ``_grid``: the elements of x, in x's shape."""
    before, count = start % BLOCK, int(np.prod(shape))
    return grid.reshape(-1)[before:before + count].reshape(shape)


def _size(x) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else x.size


def blocks(count: int, start: int = 0) -> int:
    """The number of blocks (and scales) of a tensor of ``count`` elements, or of a shard of
    ``count`` elements from flat index ``start`` of a larger tensor."""
    return -(-(start % BLOCK + count) // BLOCK) if count else 0


# --- The fused kernel's shortcut to the nearest code ------------------------------------------
#
# The kernel finds a value's code without a binary search over the 255 boundaries. The
# magnitudes from 2^-24 to 1 are cut into cells by a float32's exponent and top
# CELL_BITS mantissa bits; every cell holds at most one boundary (checked below), so the code
# of y is the number of boundaries below the cell, plus one if that next boundary is below y.
# Magnitudes under 2^-24 share a cell, as do those of 1 and above, one of each per sign.

CELL_BITS = 7
LOWEST_EXPONENT = -24


def cell_of(y: float) -> int:
    """The kernel's cell of a float32 value (mirrored in ``adam8bit.h``)."""
    bits = int(np.array(y, dtype=np.float32).view(np.uint32))
    binades = -LOWEST_EXPONENT
    per_sign = binades * 2**CELL_BITS + 2
    exponent = (bits >> 23) & 0xFF
    if exponent < 127 + LOWEST_EXPONENT:
        cell = 0
    elif exponent >= 127:
        cell = per_sign - 1
    else:
        cell = 1 + ((exponent - 127 - LOWEST_EXPONENT) << CELL_BITS) + ((bits >> (23 - CELL_BITS)) & (2**CELL_BITS - 1))
    return cell + (per_sign if bits >> 31 else 0)


@functools.cache
def cell_table(signed: bool) -> np.ndarray:
    """For each cell, the number of boundaries below all of its values (uint8)."""
    bounds = midpoints(signed).astype(np.float64)
    per_sign = -LOWEST_EXPONENT * 2**CELL_BITS + 2
    lows = np.empty(per_sign)  # each cell's smallest magnitude
    lows[0], lows[-1] = 0.0, 1.0
    steps = np.arange(-LOWEST_EXPONENT * 2**CELL_BITS)
    lows[1:-1] = 2.0 ** (LOWEST_EXPONENT + steps // 2**CELL_BITS) * (1 + (steps % 2**CELL_BITS) / 2**CELL_BITS)
    highs = np.append(lows[1:], np.inf)
    positive = np.searchsorted(bounds, lows, side="left")
    negative = np.searchsorted(bounds, -highs, side="left")  # below -high: below every value of the cell
    for low, high in zip(lows, highs):  # the shortcut's premise
        assert np.count_nonzero((bounds >= low) & (bounds < high)) <= 1
        assert np.count_nonzero((bounds >= -high) & (bounds <= -low)) <= 1
    return np.concatenate([positive, negative]).astype(np.uint8)
