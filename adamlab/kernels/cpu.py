"""Building, caching, checking and calling the fused CPU kernels, each printed from the maths
(:func:`generated`), and the library of ``cpu.c`` (the memory floor the benchmarks measure).

A library is compiled once per machine with the system C compiler (``$CC`` or ``cc``) and
OpenMP, in a second or a few, into ``$ADAMLAB_CACHE`` (default ``~/.cache/adamlab``); every
later process loads the cached library at once. A cached build is a folder named after a digest
of all it depends on (the sources, the flags, the compiler, the CPU), holding the library and
the SHA-256 digest of its bytes (which also names the file, so that a library built again is a
new file to the loader), written after the build and renamed into place whole; a library that
does not match its digest (a build cut short, a damaged disk) is built again rather than
loaded, and so is one that lacks a kernel. The library takes raw data pointers through ctypes,
so building it needs no torch headers.

Raw pointers trust their sizes, so nothing reaches C unchecked: every tensor of a call is
held against the kernel's columns (:func:`columns`) — on the CPU, of the dtype and element
count the kernel reads and writes, laid out as it walks them — before the call is made, and
:class:`Call` keeps that promise from step to step.
"""

import array
import ctypes
import functools
import hashlib
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..files import sha256_of
from ..maths import quantize
from . import factored, generate, symbolic

# -ffp-contract=off: a multiply and an add stay two roundings, as in the maths (a fused
# multiply-add would round once, and the kernels would no longer match the simple path).
# -fno-builtin-pow: pow(x, 2.0) stays pow, as Python's x ** 2 is (GCC would make it x * x,
# which rounds differently in about 1 double in 1,200).
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off",
         "-fno-builtin-pow")
#: The option bits a kernel call may set (C's OPTION_*, from this table): a step counter in
#: float64 rather than float32, a seed for stochastic rounding after the hyperparameters.
OPTIONS = {"step_f64": 4, "stochastic": 8}
_SUFFIXES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16", torch.float16: "f16"}
#: What every kernel includes: the loop skeleton, the constants, and each storage type's macros.
_HEADERS = ("skeleton.h", "constants.h", "each_storage.h", "storage.h")
_SOURCES = ("cpu.c",) + _HEADERS
_DIGEST = "kernels.sha256"


class KernelsUnavailable(RuntimeError):
    """The fused kernels could not be built or loaded here; the message says why."""


class KernelInputError(RuntimeError, ValueError):
    """Tensors a kernel cannot take as they are (a size, dtype, device or layout other than it
    reads and writes); raised before any memory is touched. A ``RuntimeError``, as torch's own
    size mismatches, and a ``ValueError``, as adamlab's other refusals."""


def fusable_dtype(dtype: torch.dtype) -> bool:
    """Whether the kernels of this machine's library take parameters of ``dtype``."""
    try:
        return dtype in _dtypes(library())
    except KernelsUnavailable:
        return False


# --- building and caching -----------------------------------------------------------------------

def cache_directory() -> Path:
    if os.environ.get("ADAMLAB_CACHE"):
        return Path(os.environ["ADAMLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adamlab"


def _fingerprint(compiler: str, sources: list[bytes]) -> str:
    """What the built library depends on: the sources, the flags, the compiler and this CPU."""
    digest = hashlib.sha256()
    for part in sources:
        digest.update(part)
    digest.update(" ".join(FLAGS).encode())
    try:
        digest.update(subprocess.run([compiler, "--version"], capture_output=True, timeout=30).stdout)
    except (OSError, subprocess.SubprocessError) as error:
        raise KernelsUnavailable(f"no C compiler: {compiler} --version failed ({error})") from None
    try:  # -march=native builds for this CPU: its feature flags are part of the key
        digest.update(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("flags")).encode())
    except (OSError, StopIteration):
        digest.update(os.uname().machine.encode())
    return digest.hexdigest()[:20]


def _library_name(digest: str) -> str:
    return f"kernels-{digest[:16]}.so"


def _verified(folder: Path) -> Path | None:
    """The library in a cached build ``folder`` if its bytes match the digest written beside
    them, else None (a missing, cut short or damaged build is never handed to the loader: a
    truncated shared object can kill the process inside ``dlopen``)."""
    try:
        expected = (folder / _DIGEST).read_text().strip()
        path = folder / _library_name(expected)
        return path if sha256_of(path) == expected else None
    except OSError:
        return None


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (a build folder's suffix) still runs: its build is its own."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's, and alive
        return True
    return True


def _compile(compiler: str, sources: dict[str, bytes], folder: Path, what: str) -> None:
    """Build the library of ``sources`` (the first is compiled, the others it includes) into the
    cache ``folder``: built and digested in a scratch folder beside it, then renamed into place
    whole, so no process ever sees half of one."""
    cache = folder.parent
    print(f"adamlab: compiling {what} (once on this machine; cached in {cache})", file=sys.stderr, flush=True)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for stray in cache.glob(f".{folder.name}.*.partial"):  # left by a build that was killed
            if not _alive(stray.name.rsplit(".", 2)[-2]):
                shutil.rmtree(stray, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(dir=cache, prefix=f".{folder.name}.", suffix=f".{os.getpid()}.partial"))
    except OSError as error:
        raise KernelsUnavailable(f"cannot write the kernel cache {cache} ({error.strerror or error})") from None
    try:
        for name, text in sources.items():
            (partial / name).write_bytes(text)
        built = partial / "kernels.so"
        result = subprocess.run([compiler, *FLAGS, "-o", str(built), str(partial / next(iter(sources)))],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise KernelsUnavailable(f"{compiler} failed to build the fused kernels:\n{result.stderr}")
        digest = sha256_of(built)
        built.rename(partial / _library_name(digest))
        (partial / _DIGEST).write_text(digest + "\n")
        if folder.exists():  # a build that did not verify, or lacks a kernel: ours replaces it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(partial, folder)
        except OSError:
            pass  # another process has just put its own build there: use that one
    except OSError as error:
        raise KernelsUnavailable(f"cannot write the kernel cache {cache} ({error.strerror or error})") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _load(path: Path, kernels: Sequence[str], functions: dict) -> ctypes.CDLL:
    """Load a verified library and declare its kernels (each once per storage suffix) and its
    other ``functions`` (name -> argument types, result type); KernelsUnavailable if it lacks one."""
    try:
        library = ctypes.CDLL(str(path))
        for name, (arguments, result) in functions.items():
            function = getattr(library, name)
            function.argtypes, function.restype = arguments, result
        for kernel in kernels:
            for suffix in _SUFFIXES.values():
                if suffix == "f16" and not hasattr(library, f"{kernel}_f16"):
                    continue  # a compiler without _Float16: float16 takes the simple path
                function = getattr(library, f"{kernel}_{suffix}")
                function.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                                     ctypes.c_int64, ctypes.c_int]
                function.restype = None
    except (OSError, AttributeError) as error:
        raise KernelsUnavailable(f"the fused kernels in {path.parent} could not be loaded ({error})") from None
    return library


def build(sources: dict[str, bytes], kernels: Sequence[str], what: str, prefix: str = "cpu-kernels",
          functions: dict | None = None) -> ctypes.CDLL:
    """The library of ``sources`` (the first compiled, the others included) with ``kernels``
    and ``functions`` (see :func:`_load`), from the cache (a folder named ``prefix`` and a digest of all it depends on) or built into
    it; raises :class:`KernelsUnavailable` if it cannot be."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise KernelsUnavailable("no C compiler found (set CC, or install gcc)")
    folder = cache_directory() / f"{prefix}-{_fingerprint(compiler, list(sources.values()))}"
    path = _verified(folder)
    if path is not None:
        try:
            return _load(path, kernels, functions or {})
        except KernelsUnavailable:
            pass  # verified yet unusable (an older or foreign build): build it afresh
    _compile(compiler, sources, folder, what)
    path = _verified(folder)
    if path is None:
        raise KernelsUnavailable(f"the kernels built into {folder} do not match their digest")
    return _load(path, kernels, functions or {})


def _source(name: str) -> bytes:
    if name == "constants.h":  # C's constants, from the tables above: written once
        lines = [f"#define OPTION_{option.upper()} {bit}" for option, bit in OPTIONS.items()]
        lines += [f"#define BLOCK {quantize.BLOCK}"]
        return ("/* Written by adamlab/kernels/cpu.py from its tables. */\n" + "\n".join(lines) + "\n").encode()
    return resources.files(__package__).joinpath(name).read_bytes()


def _build() -> ctypes.CDLL:
    stream = [ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    return build({name: _source(name) for name in _SOURCES}, [], "the fused CPU kernels' library",
                 functions={"adamlab_stream_f32": (stream, None), "adamlab_has_float16": ([], ctypes.c_int)})


_loaded: ctypes.CDLL | None = None
_failure: KernelsUnavailable | None = None
_lock = threading.Lock()


def library() -> ctypes.CDLL:
    """The kernels, built on first use; raises :class:`KernelsUnavailable` if they cannot be."""
    global _loaded, _failure
    with _lock:
        if _loaded is None and _failure is None:
            try:
                _loaded = _build()
            except KernelsUnavailable as error:
                _failure = error
            except OSError as error:
                _failure = KernelsUnavailable(f"the fused kernels could not be loaded ({error})")
        if _failure is not None:
            raise _failure
        return _loaded


@functools.cache
def _dtypes(loaded: ctypes.CDLL) -> frozenset:
    """The storage types every kernel has: float16 too where the compiler has _Float16."""
    return frozenset(dtype for dtype in _SUFFIXES if dtype != torch.float16 or loaded.adamlab_has_float16())


# --- what each kernel reads and writes ----------------------------------------------------------

PARAM = None  # a column's dtype: the parameter's, the kernel's storage type
STEP = "step"  # a column's dtype: the step counter's, float32 or float64 (one per call)


class Column(NamedTuple):
    """One tensor of a kernel's row: what it is, its dtype, how many elements the kernel reads
    and writes from its data pointer, and whether it may take any dense layout the parameter
    shares (elementwise columns walk memory in the parameter's own order) or must be contiguous."""

    name: str
    dtype: torch.dtype | str | None
    elements: Callable[[int, list], int]  # from the parameter's element count and the row
    elementwise: bool = False


def _like(name: str, elementwise: bool = True) -> Column:
    return Column(name, PARAM, lambda count, row: count, elementwise)


def _factored(index: int) -> Callable[[int, list], int]:
    """Elements of a factored kernel's state column ``index`` (0: a row's or a vector's, 1: a
    column's or a vector's), from the shape column (its matrices' width and height; width 0 for
    a vector)."""
    def elements(count: int, row: list) -> int:
        width, height = row[4].tolist()
        if width == 0:
            return count
        return count // width if index == 0 else count // height
    return elements


_GRAD = _like("grad")
_STEP = Column("step", STEP, lambda count, row: 1)
_SCALES = lambda count, row: quantize.blocks(count)  # noqa: E731


def columns(kernel: generate.Kernel) -> list[Column]:
    """The columns of ``kernel``'s rows, as it reads them."""
    if kernel.template == "adam8bit":  # blocks run over the flat order
        return [_like("param", False), _like("grad", False),
                Column("exp_avg", torch.uint8, lambda count, row: count),
                Column("exp_avg_sq", torch.uint8, lambda count, row: count),
                Column("exp_avg_absmax", torch.float32, _SCALES), Column("exp_avg_sq_absmax", torch.float32, _SCALES),
                Column("code tables", torch.uint8, lambda count, row: code_tables().numel()), _STEP]
    if kernel.template == "factored":  # rows and columns of matrices: every tensor contiguous
        row, column = kernel.state[:2]
        return ([_like("param", False), _like("grad", False), Column(f"{row} (a vector's state)", PARAM, _factored(0)),
                 Column(f"{column} (a vector's state)", PARAM, _factored(1)),
                 Column("shape", torch.int64, lambda count, row: 2)]
                + [Column(field, STEP, _STEP.elements) for field in kernel.numbers])
    return ([_like("param"), _GRAD] + [_like(field) for field in kernel.state if field not in kernel.numbers]
            + [Column(field, STEP, _STEP.elements) for field in kernel.numbers])


def dense(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s elements fill one block of memory, without gaps or overlaps, in some
    order of its dimensions (contiguous, transposed, channels-last ...): then a kernel may walk
    that block from the data pointer as if it were flat.

    >>> dense(torch.ones(3, 4).t()), dense(torch.ones(3, 4)[:, ::2]), dense(torch.ones(4).expand(3, 4))
    (True, False, False)
    """
    if tensor.is_contiguous():
        return True
    expected = 1
    for size, stride in sorted(zip(tensor.shape, tensor.stride()), key=operator.itemgetter(1)):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _describe(tensor) -> str:
    if not isinstance(tensor, torch.Tensor):
        return f"a {type(tensor).__name__}"
    return (f"a {str(tensor.dtype).removeprefix('torch.')} tensor of {tensor.numel()} elements "
            f"on {tensor.device}")


def unfit(kernel: generate.Kernel, dtype: torch.dtype, row: Sequence) -> str | None:
    """Why ``kernel`` cannot take ``row`` (one parameter's tensors in its column order) with
    parameters of ``dtype``, or None when it can: every tensor on the CPU, of its column's dtype,
    holding the elements the kernel reads and writes, laid out as the kernel walks them."""
    wanted = columns(kernel)
    if len(row) != len(wanted):
        return f"its rows have {len(wanted)} tensors ({', '.join(column.name for column in wanted)}), got {len(row)}"
    param = row[0]
    if not isinstance(param, torch.Tensor) or param.dtype != dtype or not param.is_cpu:
        return f"param must be a {str(dtype).removeprefix('torch.')} CPU tensor, got {_describe(param)}"
    count = param.numel()
    for column, tensor in zip(wanted, row):
        if not isinstance(tensor, torch.Tensor) or not tensor.is_cpu:
            return f"{column.name} must be a CPU tensor, got {_describe(tensor)}"
        if column.name == "shape":  # Adafactor's: the other columns' counts follow from it, so it goes first
            width, height = tensor.tolist() if tensor.numel() == 2 and tensor.dtype == torch.int64 else (-1, -1)
            if not (tensor.is_contiguous() and (width == height == 0
                                                or (width > 0 and height > 0 and count % (width * height) == 0))):
                return f"shape must be a matrix's width and height dividing the parameter, got {_describe(tensor)}"
    for column, tensor in zip(wanted, row):
        expected_dtype = dtype if column.dtype is PARAM else column.dtype
        if column.dtype == STEP:
            if tensor.dtype not in (torch.float32, torch.float64):
                return f"step must be a float32 or float64 counter, got {_describe(tensor)}"
        elif tensor.dtype != expected_dtype:
            return (f"{column.name} must be {str(expected_dtype).removeprefix('torch.')}, "
                    f"got {_describe(tensor)}")
        if column.elementwise:
            if tensor.shape != param.shape:
                return f"{column.name} has shape {tuple(tensor.shape)}, the parameter {tuple(param.shape)}"
            if not (dense(tensor) and (tensor.stride() == param.stride() or count <= 1)):
                return f"{column.name} must be laid out in memory as the (dense) parameter is"
        elif tensor.numel() != column.elements(count, row) or not tensor.is_contiguous():
            return (f"{column.name} must be a contiguous tensor of {column.elements(count, row)} elements, "
                    f"got {_describe(tensor)}{'' if tensor.is_contiguous() else ', not contiguous'}")
    return None


# --- calling ------------------------------------------------------------------------------------

_data_ptr, _numel, _shape_of = torch.Tensor.data_ptr, torch.Tensor.numel, operator.attrgetter("shape")
_dtype_of, _on_cpu = operator.attrgetter("dtype"), operator.attrgetter("is_cpu")


class Call:
    """One kernel over rows of tensors (one row per parameter, in the kernel's column order:
    param, grad, state ..., step), every tensor checked against the kernel's columns first.

    The checked call is kept between steps: :meth:`refresh` takes the step's new gradients and
    confirms, cheaply, that the other tensors still lie where they were checked, with the sizes
    (and the parameters with the shapes) they had. It holds their memory (their storages), so no
    other tensor can take an address it checked; a tensor moved (``param.data = ...``), resized
    or reshaped makes ``refresh`` say no, and the caller checks afresh.
    """

    def __init__(self, kernel: generate.Kernel, dtype: torch.dtype, rows: list[list[torch.Tensor]]):
        if dtype not in _dtypes(library()):
            raise KernelInputError(f"the {kernel.name} kernel takes {', '.join(str(d) for d in _dtypes(library()))}, "
                                   f"not {dtype}")
        for index, row in enumerate(rows):
            why = unfit(kernel, dtype, row)
            if why is not None:
                raise KernelInputError(f"the {kernel.name} kernel cannot take row {index}: {why}")
        wanted = columns(kernel)
        steps = {tensor.dtype for row in rows for column, tensor in zip(wanted, row) if column.dtype == STEP}
        if len(steps) > 1:
            raise KernelInputError(f"the {kernel.name} kernel takes one dtype of step counter a call, got {steps}")
        self.kernel, self.dtype, self.width = kernel, dtype, len(wanted)
        self.options = ("step_f64",) if steps == {torch.float64} else ()
        self.function = getattr(_generated_libraries[kernel.name], f"{kernel.name}_{_SUFFIXES[dtype]}")
        self.scalar_count = len(kernel.hyperparameters)
        self.rows = len(rows)
        self._fixed = [tensor for row in rows for tensor in row[:1] + row[2:]]
        self._storages = [tensor.untyped_storage() for tensor in self._fixed]  # see the class docstring
        self._fixed_pointers = list(map(_data_ptr, self._fixed))
        self._fixed_counts = list(map(_numel, self._fixed))
        self._counts = [row[0].numel() for row in rows]
        self._shapes = [row[0].shape for row in rows]
        self._contiguous = [row[0].is_contiguous() for row in rows]
        self._all_contiguous = all(self._contiguous)
        self._strides = [row[0].stride() for row in rows]
        self._pointers = array.array("Q", [tensor.data_ptr() for row in rows for tensor in row] or [0])
        self._sizes = array.array("q", self._counts or [0])

    def refresh(self, grads: list[torch.Tensor], fixed: list[torch.Tensor] | None = None) -> bool:
        """Take new gradients (one per row); False, changing nothing, if one does not fit its row
        or if the other tensors (``fixed``: as they are now, in the rows' order without the
        gradients; by default those checked) no longer lie where they were checked."""
        fixed = self._fixed if fixed is None else fixed
        if (len(grads) != self.rows or list(map(_data_ptr, fixed)) != self._fixed_pointers
                or list(map(_numel, fixed)) != self._fixed_counts
                or list(map(_shape_of, fixed[::self.width - 1])) != self._shapes):
            return False
        if (not all(map(_on_cpu, grads)) or list(map(_numel, grads)) != self._counts
                or any(dtype != self.dtype for dtype in map(_dtype_of, grads))):
            return False
        if self._all_contiguous:
            if not all(map(torch.Tensor.is_contiguous, grads)):
                return False
        elif any(not grad.is_contiguous() if contiguous else (grad.shape != shape or grad.stride() != stride)
                 for grad, contiguous, shape, stride in zip(grads, self._contiguous, self._shapes, self._strides)):
            return False  # a gradient must be laid out as its (dense) parameter is, or the elements pair wrongly
        if self.rows:
            self._pointers[1::self.width] = array.array("Q", map(_data_ptr, grads))
        return True

    def run(self, scalars: Sequence[float], seed: int | None = None) -> None:
        """The kernel over the rows with these hyperparameters (in the kernel's order). With a
        ``seed`` (below 2^32), bfloat16 parameters are stored with stochastic rounding from it."""
        scalars = [float(value) for value in scalars]
        if len(scalars) != self.scalar_count:  # C reads exactly so many (and the seed after them)
            raise KernelInputError(f"the {self.kernel.name} kernel takes {self.scalar_count} hyperparameters, "
                                   f"got {len(scalars)}")
        options = self.options
        if seed is not None:
            scalars.append(float(seed))
            options += ("stochastic",)
        values = (ctypes.c_double * len(scalars))(*scalars)
        pointers = ctypes.cast(self._pointers.buffer_info()[0], ctypes.POINTER(ctypes.c_void_p))
        sizes = ctypes.cast(self._sizes.buffer_info()[0], ctypes.POINTER(ctypes.c_int64))
        self.function(self.rows, pointers, sizes, values, sum(OPTIONS[name] for name in options),
                      torch.get_num_threads())


def run(kernel: generate.Kernel, dtype: torch.dtype, rows: list[list[torch.Tensor]], scalars,
        seed: int | None = None) -> None:
    """Check ``rows`` against ``kernel``'s columns and run it once (see :class:`Call`)."""
    Call(kernel, dtype, rows).run(scalars, seed)


def stream(rows: list[list[torch.Tensor]]) -> None:
    """The memory floor of a step: read four float32 arrays, write three in place."""
    for index, row in enumerate(rows):
        count = row[0].numel() if row else 0
        if len(row) != 4 or not all(isinstance(tensor, torch.Tensor) and tensor.is_cpu and tensor.is_contiguous()
                                    and tensor.dtype == torch.float32 and tensor.numel() == count for tensor in row):
            raise KernelInputError(f"the stream takes rows of four contiguous float32 CPU tensors of one size; "
                                   f"row {index} is not one")
    flat = array.array("Q", [tensor.data_ptr() for row in rows for tensor in row] or [0])
    sizes = array.array("q", [row[0].numel() for row in rows] or [0])
    library().adamlab_stream_f32(len(rows), ctypes.cast(flat.buffer_info()[0], ctypes.POINTER(ctypes.c_void_p)),
                                 ctypes.cast(sizes.buffer_info()[0], ctypes.POINTER(ctypes.c_int64)),
                                 torch.get_num_threads())


def scalars(kernel: generate.Kernel, hyperparameters: dict) -> tuple:
    """A kernel's scalars, taken from ``hyperparameters`` by name in its order
    (:attr:`generate.Kernel.hyperparameters`)."""
    return tuple(hyperparameters[name] for name in kernel.hyperparameters)


# --- kernels generated from the maths ------------------------------------------------------------

_generated: dict[tuple, list] = {}  # (maths, update, flags, state) -> [(guards, kernel)]
_untraceable: dict[tuple, list] = {}  # the same -> [(guards, the TraceError)]
_generated_libraries: dict[str, ctypes.CDLL] = {}
_unbuildable: dict[str, KernelsUnavailable] = {}  # a kernel's name -> why it could not be built


def _is_number(value) -> bool:
    if type(value) is float or type(value) is int:  # the common case, first: this runs every step
        return True
    if isinstance(value, torch.Tensor):
        return not value.dtype == torch.bool
    return symbolic.is_number(value)


def _functions(maths) -> tuple:
    """The functions of a maths module as they are now (by identity)."""
    return tuple(value for value in vars(maths).values() if type(value) is types.FunctionType)


def generated(maths, hyperparameters: dict, present: dict[str, str], template: str | None = None,
              vectors: dict[str, str] | None = None) -> generate.Kernel:
    """The kernel generated from ``maths.update`` for these hyperparameters and this state (see
    :func:`symbolic.trace`), traced, printed and built on first use; raises
    :class:`symbolic.TraceError` where the update cannot be traced. A kernel serves every value
    of the numbers but those that change a branch the maths takes (weight decay switched on),
    which find or make another. ``template``: a hand-written kernel's loops (``"adam8bit"``) to
    print the maths into (:func:`generate.templated`), or ``"factored"``: ``present`` is the
    state of a matrix (a row and a column state) and ``vectors`` that of a vector
    (:func:`factored.kernel`); else the maths is the whole kernel. Raises
    :class:`KernelsUnavailable` where the kernel cannot be built."""
    numbers, flags = {}, []
    for name, value in hyperparameters.items():
        if _is_number(value):
            numbers[name] = float(value)
        else:
            flags.append((name, value))
    flags = tuple(sorted(flags))
    # The module's functions themselves are part of the key: a patched or reloaded update, or a
    # helper it calls (adam.bias_correction), is traced anew.
    key = (maths, _functions(maths), flags, tuple(sorted(present.items())), template,
           tuple(sorted((vectors or {}).items())))
    with _lock:
        for guards, kernel in _generated.get(key, ()):
            if symbolic.satisfied(guards, numbers):
                return kernel
        for guards, error in _untraceable.get(key, ()):
            if symbolic.satisfied(guards, numbers):
                raise error
        guards = None
        try:
            trace = symbolic.trace(maths, {**dict(flags), **numbers}, present)
            guards = trace.guards
            if template == "factored":
                vector_trace = symbolic.trace(maths, {**dict(flags), **numbers}, vectors)
                guards += vector_trace.guards
                kernel = factored.kernel(maths, trace, vector_trace)
            elif template is not None:
                kernel = generate.templated(maths, trace, template)
            else:
                kernel = generate.kernel(maths, trace)
        except symbolic.TraceError as error:  # remembered for the branches it took
            _untraceable.setdefault(key, []).append((error.guards if guards is None else guards, error))
            raise
        if kernel.name in _unbuildable:
            raise _unbuildable[kernel.name]
        if kernel.name not in _generated_libraries:
            settings = [f"{name}={value}" for name, value in flags]
            settings += sorted({f"{guard.condition!r}: {guard.holds}" for guard in guards})  # weight_decay: True
            try:
                _generated_libraries[kernel.name] = build(
                    {"kernel.c": kernel.source.encode(),
                     f"{kernel.template}.h": kernel.body.encode() if kernel.body else _source(f"{kernel.template}.h"),
                     **{name: _source(name) for name in _HEADERS}},
                    [kernel.name], f"the fused {kernel.family} kernel for {', '.join(settings) or 'its defaults'}",
                    prefix=f"cpu-{kernel.family}")
            except KernelsUnavailable as error:  # not built again on every step
                _unbuildable[kernel.name] = error
                raise
        _generated.setdefault(key, []).append((guards, kernel))
        return kernel


@functools.cache
def code_tables() -> torch.Tensor:
    """The 8-bit kernel's tables, laid out as ``code_tables_t`` in adam8bit.h, in one byte tensor."""
    bound = [np.append(quantize.midpoints(signed), np.inf) for signed in (True, False)]
    floats = np.concatenate([quantize.code(True), quantize.code(False), *bound]).astype(np.float32)
    cells = np.concatenate([quantize.cell_table(True), quantize.cell_table(False)]).astype(np.int32)
    return torch.from_numpy(np.concatenate([floats.view(np.uint8), cells.view(np.uint8)]))
