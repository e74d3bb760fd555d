"""Timing optimizer steps against torch.optim and against the memory floor, in one process.

Every figure is the median of repeated steps after warm-up, reported as ratios to peers
measured in the same run: the machine is shared and noisy, so absolute milliseconds from
different runs do not compare.
"""

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
}

#: Optional peers, measured where installed: (module, class name) for each optimizer.
PEERS = {
    "pytorch-optimizer": ("pytorch_optimizer", {"adamw": "AdamW", "adam": "Adam"}),
    "heavyball": ("heavyball", {"adamw": "ForeachAdamW"}),
    "bitsandbytes": ("bitsandbytes.optim", {"adamw": "AdamW32bit", "adam": "Adam32bit"}),
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
        "10 large": [(2_000_000,)] * 10,
        "gpt2-small" if not quick else "gpt2-quarter": gpt2_shapes() if not quick else gpt2_shapes(n_embd=192),
        "1000 small": [(2_000,)] * 1000,
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


def median_ms(step: Callable[[], None], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def implementations(optimizer: str) -> dict[str, Callable]:
    """Every way of building ``optimizer`` that is installed here, by implementation name."""
    class_name, settings = OPTIMIZERS[optimizer]
    ours, theirs = getattr(adamlab_optim, class_name), getattr(torch.optim, class_name)
    built = {
        "adamlab": lambda params: ours(params, **settings),
        "adamlab-simple": lambda params: ours(params, fused=False, **settings),
        "torch-single": lambda params: theirs(params, foreach=False, **settings),
        "torch-foreach": lambda params: theirs(params, foreach=True, **settings),
    }
    if "fused" in theirs.__init__.__code__.co_varnames:
        built["torch-fused"] = lambda params: theirs(params, fused=True, **settings)
    for peer, (module_name, classes) in PEERS.items():
        if optimizer in classes and importlib.util.find_spec(module_name.split(".")[0]) is not None:
            peer_class = getattr(importlib.import_module(module_name), classes[optimizer])
            built[peer] = lambda params, peer_class=peer_class: peer_class(params)
    return built


def floor_ms(tensors: list[torch.Tensor], repeats: int) -> float:
    """An in-place stream over the bytes of a float32 Adam step: read 4 arrays, write 3."""
    rows = [[tensor, torch.empty_like(tensor), torch.zeros_like(tensor), torch.zeros_like(tensor)]
            for tensor in tensors]
    return median_ms(lambda: kernels.cpu.stream(rows), repeats)


def run(optimizers=tuple(OPTIMIZERS), quick: bool = False, repeats: int = 10,
        on_progress: Callable[[str], None] = lambda message: None) -> list[Result]:
    """Time every installed implementation of every optimizer on every layout."""
    results = []
    generator = torch.Generator().manual_seed(0)
    for layout, shapes in layouts(quick).items():
        params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator) * 1e-2
        count = sum(param.numel() for param in params)
        on_progress(f"{layout}: the memory floor")
        floor = floor_ms([param.detach() for param in params], repeats)
        results.append(Result("floor", "stream", layout, count, floor, ratio_vs_floor=1.0))
        for optimizer in optimizers:
            times = {}
            for impl, build in implementations(optimizer).items():
                on_progress(f"{layout}: {optimizer} ({impl})")
                instance = build(params)
                times[impl] = median_ms(instance.step, repeats)
                del instance
                gc.collect()
            # torch's fused step where it has one, else its fastest.
            reference = times.get("torch-fused") or min(times[impl] for impl in times if impl.startswith("torch"))
            for impl, ms in times.items():
                results.append(Result(optimizer, impl, layout, count, ms, ms / reference, ms / floor))
        del params
        gc.collect()
    return results
