"""Building, caching and calling the fused CPU kernels of ``cpu.c``.

The kernels are compiled once per machine with the system C compiler (``$CC`` or ``cc``)
and OpenMP, in about two seconds, into ``$ADAMLAB_CACHE`` (default ``~/.cache/adamlab``);
every later process loads the cached library at once. The library takes raw data pointers
through ctypes, so building it needs no torch headers.
"""

import array
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..maths import quantize

FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno")
OPTIONS = {"maximize": 1, "decoupled": 2, "amsgrad": 4, "nesterov": 8, "centered": 16,
           "momentum": 32, "first_step": 64, "step_f64": 128, "stochastic": 256}
#: Where a step's random seed goes among the scalars (cpu.c's SEED_SLOT).
SEED_SLOT = 8
_SUFFIXES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
_KERNELS = ("sgd", "adagrad", "rmsprop", "adam", "adam8bit", "lion", "lamb", "adafactor")


class KernelsUnavailable(RuntimeError):
    """The fused kernels could not be built or loaded here; the message says why."""


def fusable_dtype(dtype: torch.dtype) -> bool:
    return dtype in _SUFFIXES


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


def _build() -> ctypes.CDLL:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise KernelsUnavailable("no C compiler found (set CC, or install gcc)")
    folder = resources.files(__package__)
    sources = [folder.joinpath(name).read_bytes() for name in ("cpu.c", "cpu_body.h")]
    cache = cache_directory()
    path = cache / f"cpu-kernels-{_fingerprint(compiler, sources)}.so"
    if not path.exists():
        print(f"adamlab: compiling the fused CPU kernels (once on this machine, a few seconds; "
              f"cached in {cache})", file=sys.stderr, flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            for name, text in zip(("cpu.c", "cpu_body.h"), sources):
                Path(scratch, name).write_bytes(text)
            built = Path(scratch, "kernels.so")
            result = subprocess.run([compiler, *FLAGS, "-o", str(built), str(Path(scratch, "cpu.c"))],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise KernelsUnavailable(f"{compiler} failed to build the fused kernels:\n{result.stderr}")
            # Another process may build the same file at the same moment: each renames its own copy.
            partial = cache / f".{path.name}.{os.getpid()}.partial"
            shutil.copyfile(built, partial)
            os.replace(partial, path)
    library = ctypes.CDLL(str(path))
    for kernel in _KERNELS:
        for suffix in _SUFFIXES.values():
            function = getattr(library, f"adamlab_{kernel}_{suffix}")
            function.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_double),
                                 ctypes.c_int64, ctypes.c_int]
            function.restype = None
    library.adamlab_stream_f32.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p),
                                           ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    library.adamlab_stream_f32.restype = None
    return library


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


def _pointers(rows: list[list[torch.Tensor]]):
    """The rows' data pointers and sizes as C arrays (array.array fills them fastest)."""
    flat = array.array("Q", [tensor.data_ptr() for row in rows for tensor in row] or [0])
    sizes = array.array("q", [row[0].numel() for row in rows] or [0])
    # The arrays must outlive the call: they are returned with the pointers into them.
    return ((flat, ctypes.cast(flat.buffer_info()[0], ctypes.POINTER(ctypes.c_void_p))),
            (sizes, ctypes.cast(sizes.buffer_info()[0], ctypes.POINTER(ctypes.c_int64))))


def run(kernel: str, dtype: torch.dtype, rows: list[list[torch.Tensor]], scalars, options=(),
        seed: int | None = None) -> None:
    """Run ``kernel`` over ``rows``: one row of contiguous CPU tensors per parameter, in the
    kernel's column order (param, grad, state..., step). With a ``seed`` (below 2^32), bfloat16
    parameters are stored with stochastic rounding drawn from it."""
    (_, pointers), (_, sizes) = keep = _pointers(rows)
    scalars = [float(value) for value in scalars]
    if seed is not None:
        scalars += [0.0] * (SEED_SLOT - len(scalars)) + [float(seed)]
        options = (*options, "stochastic")
    values = (ctypes.c_double * len(scalars))(*scalars)
    bits = sum(OPTIONS[name] for name in options)
    function = getattr(library(), f"adamlab_{kernel}_{_SUFFIXES[dtype]}")
    function(len(rows), pointers, sizes, values, bits, torch.get_num_threads())
    del keep


def stream(rows: list[list[torch.Tensor]]) -> None:
    """The memory floor of a step: read four float32 arrays, write three in place."""
    (_, pointers), (_, sizes) = keep = _pointers(rows)
    library().adamlab_stream_f32(len(rows), pointers, sizes, torch.get_num_threads())
    del keep


@functools.cache
def code_tables() -> torch.Tensor:
    """The 8-bit kernel's tables, laid out as ``code_tables_t`` in cpu.c, in one byte tensor."""
    bound = [np.append(quantize.midpoints(signed), np.inf) for signed in (True, False)]
    floats = np.concatenate([quantize.code(True), quantize.code(False), *bound]).astype(np.float32)
    cells = np.concatenate([quantize.cell_table(True), quantize.cell_table(False)]).astype(np.int32)
    return torch.from_numpy(np.concatenate([floats.view(np.uint8), cells.view(np.uint8)]))
