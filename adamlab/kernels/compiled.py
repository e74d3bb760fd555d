"""Fused steps for parameters on a GPU: ``adamlab.maths`` itself, compiled by ``torch.compile``.

The update rules are the same functions the reference and the simple path run; inductor
traces them over every tensor of a group and emits fused kernels (Triton on CUDA), so the
GPU path adds no second statement of the maths. The graph is compiled with ``dynamic=True``:
the learning rate, betas and step counters enter it as symbolic numbers, and a scheduler
changing them never compiles again. What does compile again is a change of the branches
the maths takes (weight decay switched on or off, amsgrad) or of a group's length.
Inductor caches what it builds on disk, so later processes start faster.
"""

import functools
import sys
import threading
from types import FunctionType, ModuleType

import torch

#: Device types whose parameters take this path by default.
DEVICES = frozenset({"cuda"})

# Each configuration of a family (dtype, group length, branches taken) is a separate graph,
# so the default limit of eight graphs per function is too tight for a long-lived process.
_RECOMPILE_LIMIT = 64


class CompilerUnavailable(RuntimeError):
    """torch.compile could not build the step here; the message says why."""


def update_in_place(maths: ModuleType, names: tuple[str, ...], params, grads, states, steps, hyperparameters):
    """One step of ``maths.update`` for each parameter, written back in place.

    ``states[i]`` holds parameter i's state tensors under the maths' field ``names``;
    ``steps[i]`` is its step count before this step (None for families without one).
    """
    for param, grad, tensors, step in zip(params, grads, states, steps):
        fields = dict.fromkeys(maths.State._fields)
        fields.update(zip(names, tensors))
        if step is not None:
            fields["step"] = step
        new = maths.update(grad, maths.State(**fields), param, **hyperparameters)
        param.copy_(new.param)
        for name, tensor in zip(names, tensors):
            tensor.copy_(getattr(new.state, name))


@functools.cache
def _compiled(family: str):
    # torch.compile keeps its graphs, and counts them against the limit, per code object:
    # a copy of the code for each family keeps one family's graphs from using up another's.
    # Made on first use: importing torch.compile's machinery costs more than a second.
    code = update_in_place.__code__.replace(co_name=f"update_{family}_in_place")
    return torch.compile(FunctionType(code, update_in_place.__globals__), dynamic=True, fullgraph=True)


_announced: set[tuple] = set()
_failures: dict[str, CompilerUnavailable] = {}  # by family: one that cannot compile leaves the others be
_lock = threading.Lock()


def update(maths: ModuleType, names, params, grads, states, steps, hyperparameters) -> None:
    """:func:`update_in_place`, compiled; raises :class:`CompilerUnavailable` (having changed
    nothing) where torch.compile cannot build it."""
    family = maths.__name__.rsplit('.', 1)[-1]
    if family in _failures:
        raise _failures[family]
    key = (maths.__name__, params[0].device.type, params[0].dtype)
    with _lock:
        if key not in _announced:
            _announced.add(key)
            print(f"adamlab: compiling the fused {family} step for "
                  f"{key[1]} {str(key[2]).removeprefix('torch.')} with torch.compile (first step only)",
                  file=sys.stderr, flush=True)
    try:
        with torch._dynamo.config.patch(recompile_limit=_RECOMPILE_LIMIT):
            _compiled(family)(maths, tuple(names), params, grads, states, steps, hyperparameters)
    except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.Unsupported) as error:
        # Compilation fails before the graph runs, so no tensor has been written.
        _failures[family] = CompilerUnavailable(f"torch.compile failed ({type(error).__name__}: "
                                                f"{str(error).splitlines()[0]})")
        raise _failures[family] from None
