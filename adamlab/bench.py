"""Timing optimizer steps against torch.optim and against the memory floor, in one process.

Every figure is the median of repeated steps after warm-up, reported as ratios to peers
measured in the same run: the machine is shared and noisy, so absolute milliseconds from
different runs do not compare.
"""

import functools
import gc
import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import kernels
from . import optim as adamlab_optim

#: adamlab's optimizers as benchmarked: SGD with momentum, the others at their defaults.
OPTIMIZERS = {
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "sgd-momentum": ("SGD", {"momentum": 0.9}),
    "adagrad": ("Adagrad", {}),
    "rmsprop": ("RMSprop", {}),
    "lion": ("Lion", {}),
    "lamb": ("LAMB", {}),
    "adamw8bit": ("AdamW8bit", {}),
    "adafactor": ("Adafactor", {}),
}
#: torch.optim's class to compare with, where its name differs: 8-bit AdamW's target is to
#: beat torch's float32 AdamW by moving fewer bytes.
TORCH_CLASSES = {"adamw8bit": "AdamW"}

#: Bytes a float32 step moves per parameter: the arrays it reads plus those it writes back.
BYTES_PER_PARAMETER = {
    "floor": 4 * 7,  # reads p, g, a, b; writes p, a, b
    "adam": 4 * 7,  # reads p, g, m, v; writes p, m, v
    "adamw": 4 * 7,
    "sgd-momentum": 4 * 5,  # reads p, g, b; writes p, b
    "adagrad": 4 * 5,  # reads p, g, sum; writes p, sum
    "rmsprop": 4 * 5,  # reads p, g, v; writes p, v
    "lion": 4 * 5,  # reads p, g, m; writes p, m
    "lamb": 4 * 7,  # as Adam, in the best case of one pass
    "adamw8bit": 4 * 3 + 1 * 4,  # reads p, g and two bytes of codes; writes p and the codes
    "adafactor": 4 * 3,  # reads p, g; writes p (its factored state is a row and a column)
}

#: Optional peers, measured where installed: (module, class name) for each optimizer.
PEERS = {
    "pytorch-optimizer": ("pytorch_optimizer", {"adamw": "AdamW", "adam": "Adam", "lamb": "Lamb"}),
    "heavyball": ("heavyball", {"adamw": "ForeachAdamW"}),
    "bitsandbytes": ("bitsandbytes.optim", {"adamw": "AdamW32bit", "adam": "Adam32bit", "adamw8bit": "AdamW8bit"}),
    "lion-pytorch": ("lion_pytorch", {"lion": "Lion"}),
}


def gpt2_shapes(n_embd: int = 768, n_layer: int = 12, vocab: int = 50257, context: int = 1024) -> list[tuple]:
    """The parameter shapes of GPT-2 small (~124 M parameters in 148 tensors) or a scaled copy."""
    shapes = [(vocab, n_embd), (context, n_embd)]
    for _ in range(n_layer):
        shapes += [(n_embd,), (n_embd,), (n_embd, 3 * n_embd), (3 * n_embd,), (n_embd, n_embd), (n_embd,),
                   (n_embd,), (n_embd,), (n_embd, 4 * n_embd), (4 * n_embd,), (4 * n_embd, n_embd), (n_embd,)]
    return shapes + [(n_embd,), (n_embd,)]


def layouts(quick: bool = False) -> dict[str, list[tuple]]:
    return {
        "10-large": [(2_000_000,)] * 10,
        "gpt2-small" if not quick else "gpt2-quarter": gpt2_shapes() if not quick else gpt2_shapes(n_embd=192),
        "1000-small": [(2_000,)] * 1000,
    }


@dataclass
class Result:
    optimizer: str
    impl: str
    layout: str
    params: int
    ms_per_step: float
    ratio_vs_torch_fused: float | None = None
    ratio_vs_floor: float | None = None
    device: str = "cpu"
    gb_per_s: float | None = None  # the step's bytes (BYTES_PER_PARAMETER) over its time


def interleaved_medians(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 3,
                        synchronize: Callable[[], None] = lambda: None) -> dict[str, float]:
    """Median milliseconds of each step, timed in turns: one step of each, ``repeats`` rounds.

    Taking turns spreads the machine's noisy moments over every contender alike, so their
    ratios hold even when the absolute times wander. ``synchronize`` waits for a GPU's queued
    work, so a step's time includes its kernels and not just their launch.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    synchronize()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            synchronize()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def implementations(optimizer: str) -> dict[str, Callable]:
    """Every way of building ``optimizer`` that is installed here, by implementation name."""
    class_name, settings = OPTIMIZERS[optimizer]
    ours = getattr(adamlab_optim, class_name)
    theirs = getattr(torch.optim, TORCH_CLASSES.get(optimizer, class_name), None)
    built = {
        "adamlab": lambda params: ours(params, **settings),
        "adamlab-simple": lambda params: ours(params, fused=False, **settings),
    }
    if theirs is not None:  # torch.optim has no Lion
        built["torch-single"] = lambda params: theirs(params, foreach=False, **settings)
        built["torch-foreach"] = lambda params: theirs(params, foreach=True, **settings)
        if "fused" in theirs.__init__.__code__.co_varnames:
            built["torch-fused"] = lambda params: theirs(params, fused=True, **settings)
    for peer, (module_name, classes) in PEERS.items():
        if optimizer in classes and importlib.util.find_spec(module_name.split(".")[0]) is not None:
            peer_class = getattr(importlib.import_module(module_name), classes[optimizer])
            built[peer] = lambda params, peer_class=peer_class: peer_class(params)
    return built


def reference(times: dict[str, float]) -> float | None:
    """What "vs torch fused" divides by: torch's fused step where it has one, else torch's
    fastest, else (an optimizer torch lacks) the fastest installed peer's; None if none ran."""
    if "torch-fused" in times:
        return times["torch-fused"]
    peers = [ms for impl, ms in times.items() if impl.startswith("torch")] or \
            [ms for impl, ms in times.items() if not impl.startswith("adamlab")]
    return min(peers, default=None)


def stream(rows: list[list[torch.Tensor]]) -> None:
    """The floor off the CPU: for each row (p, g, a, b), add g to p, a and b in place, which
    compiled is one pass reading four arrays and writing three (the C stream's arithmetic)."""
    for p, g, a, b in rows:
        p.add_(g)
        a.add_(g)
        b.add_(g)


@functools.cache
def _compiled_stream() -> Callable:
    return torch.compile(stream, dynamic=True, fullgraph=True)


def floor_step(tensors: list[torch.Tensor]) -> Callable[[], None]:
    """An in-place stream over the bytes of a float32 Adam step: read 4 arrays, write 3.

    On the CPU the C kernel's own loop; elsewhere :func:`stream`, compiled by the same
    torch.compile that builds adamlab's GPU steps.
    """
    # Every array written before it is timed: a fresh allocation that is only ever read maps
    # the kernel's shared zero page, which costs no memory traffic, and made this floor ~20%
    # too fast.
    rows = [[tensor, torch.ones_like(tensor), torch.zeros_like(tensor), torch.zeros_like(tensor)]
            for tensor in tensors]
    if tensors and tensors[0].is_cpu:
        return lambda: kernels.cpu.stream(rows)
    return lambda: _compiled_stream()(rows)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cpu":
        return lambda: None
    return getattr(torch, device.type).synchronize


def _series(optimizer: str, params: list[torch.nn.Parameter], repeats: int,
            synchronize: Callable[[], None]) -> dict[str, float]:
    """Median milliseconds of the floor and of every implementation of ``optimizer``, in turns."""
    # Each implementation steps its own copy of the parameters, so none starts from
    # another's result; all copies share the gradients.
    steps = {"floor": floor_step([param.detach() for param in params])}
    for impl, build in implementations(optimizer).items():
        copies = [torch.nn.Parameter(param.detach().clone()) for param in params]
        for copy, param in zip(copies, params):
            copy.grad = param.grad
        steps[impl] = build(copies).step
    times = interleaved_medians(steps, repeats, synchronize=synchronize)
    del steps
    gc.collect()
    return times


def run(optimizers=tuple(OPTIMIZERS), quick: bool = False, repeats: int = 10,
        on_progress: Callable[[str], None] = lambda message: None, device: str = "cpu",
        only_layouts=None) -> list[Result]:
    """Time every installed implementation of every optimizer on every layout (or those named
    in ``only_layouts``), with the floor."""
    results = []
    device = torch.device(device)
    synchronize = _synchronizer(device)
    generator = torch.Generator().manual_seed(0)
    for layout, shapes in layouts(quick).items():
        if only_layouts is not None and layout not in only_layouts:
            continue
        params = [torch.nn.Parameter(torch.randn(shape, generator=generator).to(device)) for shape in shapes]
        for param in params:
            param.grad = (torch.randn(param.shape, generator=generator) * 1e-2).to(device)
        count = sum(param.numel() for param in params)

        def measured(name, impl, ms, *ratios):
            gb_per_s = BYTES_PER_PARAMETER[name] * count / (ms * 1e-3) / 1e9
            return Result(name, impl, layout, count, ms, *ratios, device=str(device), gb_per_s=gb_per_s)

        on_progress(f"{layout}: settling")
        # The first series on a fresh layout runs slow for whichever optimizer comes first
        # (its adamlab step ~15% slower on GPT-2 small, whichever optimizer that is): one
        # series, timed and thrown away, absorbs it.
        _series(optimizers[0], params, repeats, synchronize)
        for optimizer in optimizers:
            on_progress(f"{layout}: {optimizer}")
            times = _series(optimizer, params, repeats, synchronize)
            floor = times.pop("floor")
            if optimizer == optimizers[0]:
                results.append(measured("floor", "stream", floor, None, 1.0))
            baseline = reference(times)
            for impl, ms in times.items():
                results.append(measured(optimizer, impl, ms, None if baseline is None else ms / baseline, ms / floor))
        del params
        gc.collect()
    return results
