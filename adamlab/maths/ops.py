"""The element-wise functions the maths needs beyond arithmetic operators.

Every update rule in ``adamlab.maths`` is written with ``+ - * /`` and these, so
one statement of the maths runs on Python floats and NumPy arrays (the float64
reference) and on torch tensors (the optimizers), in the caller's own precision.
"""

import math
from numbers import Real

import numpy as np
import torch


def sqrt(x):
    """Element-wise square root, returned in the type of ``x``: the float nearest the exact root.

    torch's CPU square root of a large tensor (MKL's) is within an ulp but not always the nearest
    (about 1 in 160 float32 values differ), so on the CPU NumPy takes it, on the same memory:
    the simple path then rounds as the fused kernels and the float64 reference do. (Under
    torch.compile, which generates its own root, torch's.)"""
    if isinstance(x, torch.Tensor):
        if (x.is_cpu and x.dtype in _NUMPY_SQRT and type(x) is torch.Tensor and not x.requires_grad
                and not torch.compiler.is_compiling()):
            return torch.from_numpy(np.asarray(np.sqrt(x.numpy())))  # a 0-d root comes back a NumPy scalar
        return x.sqrt()
    return np.sqrt(x)


_NUMPY_SQRT = (torch.float32, torch.float64)


def exp(x):
    """Element-wise e^x."""
    return x.exp() if isinstance(x, torch.Tensor) else np.exp(x)


def maximum(a, b):
    """Element-wise maximum of two arrays of one kind."""
    return torch.maximum(a, b) if isinstance(a, torch.Tensor) else np.maximum(a, b)


def minimum(a, b):
    """Element-wise minimum of two arrays of one kind."""
    return torch.minimum(a, b) if isinstance(a, torch.Tensor) else np.minimum(a, b)


#: atan(z) = z + z^3 q(z^2) for |z| <= tan(pi/8), q's coefficients from the lowest power: a
#: least-squares fit at Chebyshev nodes to atan's series, within 3e-16 of atan (relative), which
#: a test holds.
ATAN_COEFFICIENTS = (-0.33333333333333265, 0.1999999999989944, -0.1428571426629509, 0.11111109649154835,
                     -0.09090852932838993, 0.07691061217957375, -0.06649669817900414, 0.057366298856064146,
                     -0.04484172918443962, 0.02276020009667742)
_TAN_PI_8 = math.sqrt(2) - 1


def atan2(y, x):
    """Element-wise angle of the point (x, y), in [-pi, pi]: arctan(y / x) for x > 0, and pi/2
    times the sign of y where x is 0, so it never divides by zero.

    Computed from + - * /, comparisons and choices alone, not by a library's atan2: torch's,
    C's and JavaScript's each round their last bit their own way, and this way the simple path,
    the fused kernel, the page and the float64 reference (within 3e-16 of the exact angle)
    compute the same numbers. The ratio of the smaller to the larger of |y| and |x| is taken
    into [0, tan(pi/8)] (atan(r) = pi/4 + atan((r - 1) / (r + 1))), where the polynomial holds,
    and the angle is put back in its octant."""
    ay, ax = abs(y), abs(x)
    big, small = maximum(ay, ax), minimum(ay, ax)
    r = small / where(big > 0, big, 1.0)  # 0 at the origin
    far = r > _TAN_PI_8
    z = where(far, (r - 1) / (r + 1), r)
    s = z * z
    q = ATAN_COEFFICIENTS[-1]
    for coefficient in reversed(ATAN_COEFFICIENTS[:-1]):
        q = q * s + coefficient
    angle = z + z * s * q  # atan(z)
    angle = where(far, math.pi / 4 + angle, angle)  # atan(r)
    angle = where(ay > ax, math.pi / 2 - angle, angle)  # the angle from the x axis
    angle = where(x < 0, math.pi - angle, angle)
    return where(y < 0, -angle, angle)


def sign(x):
    """Element-wise sign: -1, 0 or 1, in the type of ``x``; NaN stays NaN (NumPy's sign; torch's
    alone would make it 0, and an optimizer stepping on sign(NaN) = 0 hides a broken gradient)."""
    if isinstance(x, torch.Tensor):
        return torch.where(x.isnan(), x, x.sign())
    return np.sign(x)


def norm(x):
    """The Euclidean norm of all of ``x``'s elements, as a 0-d value of its type."""
    return torch.linalg.vector_norm(x) if isinstance(x, torch.Tensor) else np.sqrt(np.sum(np.square(x)))


def total(x):
    """The sum of all of ``x``'s elements, as a 0-d value of its type."""
    return x.sum() if isinstance(x, torch.Tensor) else np.sum(x)


def average(x):
    """The mean of all of ``x``'s elements, as a 0-d value of its type."""
    return x.mean() if isinstance(x, torch.Tensor) else np.sum(x) / np.size(x)


def where(condition, a, b):
    """Element-wise choice: ``a`` where ``condition`` holds, else ``b`` (of numbers, a number)."""
    if isinstance(condition, torch.Tensor):
        return torch.where(condition, a, b)
    if isinstance(condition, (bool, np.bool_)):
        return a if condition else b
    return np.where(condition, a, b)


def at_least(x, low):
    """Element-wise max(x, low) for a number ``low``; NaN stays NaN (torch's clamp)."""
    if isinstance(x, torch.Tensor):
        return torch.maximum(x, _filled(x, low)) if _symbolic(low) else x.clamp(min=low)
    return np.maximum(x, low)


def at_most(x, high):
    """min(x, high) for a number ``high``; NaN stays NaN (torch's clamp)."""
    if isinstance(x, torch.Tensor):
        return torch.minimum(x, _filled(x, high)) if _symbolic(high) else x.clamp(max=high)
    if isinstance(high, torch.Tensor):  # a tensor learning rate: min(x, lr) as a tensor
        return high.clamp(max=x)
    if isinstance(x, Real) and isinstance(high, Real):  # Python's min, which torch.compile takes as it is
        return min(high, x)  # high first: a NaN bound stays NaN, as min(lr, ...) in torch.optim
    return np.minimum(x, high)  # the kernels' tracer takes it through NumPy's protocol


def _symbolic(bound) -> bool:
    """Whether ``bound`` is a number torch.compile traces symbolically (a step's clip, t^0.25):
    a clamp by one compiles a graph for each of its values, where a maximum with a tensor of it,
    the same numbers, compiles once."""
    return torch.compiler.is_compiling() and not isinstance(bound, torch.Tensor)


def _filled(x: torch.Tensor, number) -> torch.Tensor:
    return torch.zeros_like(x) + number  # exactly number, in x's dtype


def at_least_ignoring_nan(x, low):
    """max(x, low) for a number ``low``, but ``low`` where x is NaN: Python's max(low, x), which
    torch.optim.Adafactor takes of its two per-tensor scalars."""
    if isinstance(x, torch.Tensor):
        return torch.fmax(x, torch.tensor(low, dtype=x.dtype, device=x.device))
    return np.fmax(x, low)


def mean(x, axis: int):
    """The mean along ``axis``, keeping it as a dimension of size 1."""
    return x.mean(dim=axis, keepdim=True) if isinstance(x, torch.Tensor) else np.mean(x, axis=axis, keepdims=True)


def count(condition, like):
    """How many elements of ``condition`` hold, as a 0-d value in ``like``'s precision (exact
    up to 2^24 elements in float32, 2^53 in float64)."""
    if isinstance(condition, torch.Tensor):
        return condition.sum(dtype=like.dtype)
    return np.sum(np.where(condition, 1.0, 0.0))


def size(x):
    """The number of elements of ``x``."""
    return x.numel() if isinstance(x, torch.Tensor) else np.size(x)


def bfloat16(x):
    """``x`` rounded to bfloat16, where Muon's orthogonalisation runs on torch (as torch.optim's
    and the authors' do: the iteration needs no more); NumPy has no bfloat16 and keeps ``x``, so
    the float64 reference runs the iteration exactly."""
    return x.bfloat16() if isinstance(x, torch.Tensor) else x


def in_precision_of(x, like):
    """``x`` in the dtype of ``like`` (a bfloat16 update taken to its float32 parameter)."""
    return x.to(like.dtype) if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.asarray(like).dtype)


def matmul_add(c, a, b, *, beta, alpha):
    """beta * c + alpha * (a @ b), as one BLAS call on torch (rounded once, as torch.optim.Muon's)."""
    if isinstance(c, torch.Tensor):
        return torch.addmm(c, a, b, beta=beta, alpha=alpha)
    return beta * c + alpha * (a @ b)


def machine_epsilon(x) -> float:
    """The gap between 1 and the next number in ``x``'s precision."""
    return torch.finfo(x.dtype).eps if isinstance(x, torch.Tensor) else float(np.finfo(np.asarray(x).dtype).eps)
