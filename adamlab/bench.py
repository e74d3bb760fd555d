"""Timing optimizer steps against torch.optim and against the memory floor, in one process.

Every figure is the median of repeated steps after warm-up, reported as ratios to peers
measured in the same run: the machine is shared and noisy, so absolute milliseconds from
different runs do not compare.
"""

import functools
import gc
import importlib
import inspect
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from . import kernels, memory, registry

#: torch.optim's class to compare with, where its name differs from adamlab's: the 8-bit
#: optimizers' target is to beat torch's float32 ones by moving fewer bytes.
TORCH_CLASSES = {"adam8bit": "Adam", "adamw8bit": "AdamW"}

#: Bytes the floor's stream moves per parameter: it reads 4 float32 arrays and writes 3, as Adam.
FLOOR_BYTES = 4 * 7


@functools.cache
def bytes_per_parameter(optimizer: str) -> int:
    """Bytes a float32 step of ``optimizer`` moves per parameter, in the best case of one pass:
    it reads the parameter and the gradient and writes the parameter back (12), and reads and
    writes its state, as ``adamlab memory`` measures it on a large matrix (where the step
    counters, Adafactor's row and column and 8-bit Adam's block scales round away): Adam's 28,
    SGD with momentum's 20, 8-bit AdamW's 16, Adafactor's 12.

    >>> bytes_per_parameter("amsgrad")
    36
    """
    width = memory.ASSUMED_WIDTH
    state = memory.state_bytes(optimizer, [(width, width)]) / width ** 2
    return round(4 * 3 + 2 * state)

#: Optional peers, measured where installed: (module, class name) for each optimizer.
PEERS = {
    "pytorch-optimizer": ("pytorch_optimizer", {"adamw": "AdamW", "adam": "Adam", "lamb": "Lamb", "adopt": "ADOPT", "laprop": "LaProp",
                                              "ademamix": "AdEMAMix", "mars": "MARS"}),
    "heavyball": ("heavyball", {"adamw": "ForeachAdamW"}),
    "bitsandbytes": ("bitsandbytes.optim", {"adamw": "AdamW32bit", "adam": "Adam32bit", "adamw8bit": "AdamW8bit",
                                            "ademamix": "AdEMAMix"}),
    "lion-pytorch": ("lion_pytorch", {"lion": "Lion"}),
    "optimi": ("optimi", {"stableadamw": "StableAdamW"}),
    "adam-atan2-pytorch": ("adam_atan2_pytorch", {"adamatan2": "AdamAtan2"}),
    "schedulefree": ("schedulefree", {"schedulefree": "AdamWScheduleFree"}),
    "prodigyopt": ("prodigyopt", {"prodigy": "Prodigy"}),
    "adam-mini": ("adam_mini", {"adammini": "Adam_mini"}),
}

#: What a peer's constructor needs beyond the parameters, by (peer, optimizer): optimi's
#: StableAdamW has no default lr; pytorch-optimizer's MARS gives vectors to AdamW unless told.
PEER_SETTINGS = {("optimi", "stableadamw"): {"lr": 1e-3, "kahan_sum": False},
                 ("pytorch-optimizer", "mars"): {"optimize_1d": True},
                 ("adam-mini", "adammini"): {"verbose": False}}

#: Peers --quick leaves out where another peer gives the ratio its divisor: they take seconds to
#: import, or step slowly on the CPU.
SLOW_PEERS = ("bitsandbytes", "heavyball")

#: Untimed rounds of turns before the timed ones: the first step lays out an optimizer's state.
WARMUP = 3


def gpt2_shapes(n_embd: int = 768, n_layer: int = 12, vocab: int = 50257, context: int = 1024) -> list[tuple]:
    """The parameter shapes of GPT-2 small (~124 M parameters in 148 tensors) or a scaled copy."""
    shapes = [(vocab, n_embd), (context, n_embd)]
    for _ in range(n_layer):
        shapes += [(n_embd,), (n_embd,), (n_embd, 3 * n_embd), (3 * n_embd,), (n_embd, n_embd), (n_embd,),
                   (n_embd,), (n_embd,), (n_embd, 4 * n_embd), (4 * n_embd,), (4 * n_embd, n_embd), (n_embd,)]
    return shapes + [(n_embd,), (n_embd,)]


def gpt2_names(n_layer: int = 12) -> list[str]:
    """The names of :func:`gpt2_shapes`' tensors, in order, as Hugging Face's GPT-2 names them."""
    layer = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
             "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
             "mlp.c_proj.weight", "mlp.c_proj.bias"]
    return ["wte.weight", "wpe.weight", *(f"h.{index}.{name}" for index in range(n_layer) for name in layer),
            "ln_f.weight", "ln_f.bias"]


def parameter_names(layout: str, shapes) -> list[str]:
    """Names for a layout's tensors, which Adam-mini cuts its blocks by: GPT-2's on the GPT-2
    layouts, else w0, w1, ... (each tensor a block of its own)."""
    if layout.startswith("gpt2"):
        return gpt2_names(n_layer=(len(shapes) - 4) // 12)
    return [f"w{index}" for index in range(len(shapes))]


def stepped(optimizer: str, layout: str, shapes) -> tuple[int, ...]:
    """The indices of the tensors of a layout that ``optimizer`` steps: every one, but for an
    optimizer of matrices (Muon) the hidden matrices, the 2-D tensors but the embeddings."""
    if not registry.get(optimizer).matrices_only:
        return tuple(range(len(shapes)))
    names = parameter_names(layout, shapes)
    return tuple(index for index, shape in enumerate(shapes)
                 if len(shape) == 2 and not names[index].startswith(("wte.", "wpe.")))


def layouts(quick: bool = False) -> dict[str, list[tuple]]:
    """The layouts timed, by name; ``quick``'s are smaller, so that ``--quick`` takes about a minute."""
    if quick:  # large tensors of half the size, GPT-2 at a quarter of its width
        return {"10-large": [(1_000_000,)] * 10, "gpt2-quarter": gpt2_shapes(n_embd=192),
                "1000-small": [(2_000,)] * 1000}
    return {"10-large": [(2_000_000,)] * 10, "gpt2-small": gpt2_shapes(), "1000-small": [(2_000,)] * 1000}


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
    gb_per_s: float | None = None  # the step's bytes (bytes_per_parameter) over its time
    reference: str | None = None  # what ratio_vs_torch_fused divides by, as label() names it


@dataclass(frozen=True)
class Series:
    """The floor and the contenders of one optimizer, timed in turns on one layout."""

    layout: str
    shapes: tuple[tuple[int, ...], ...]  # the layout's
    optimizer: str
    contenders: tuple[str, ...]  # implementation names, the floor not among them
    settling: bool = False  # timed and thrown away (see plan)

    @property
    def stepped(self) -> tuple[int, ...]:
        """The indices of the layout's tensors the optimizer steps (Muon's: the hidden matrices)."""
        return stepped(self.optimizer, self.layout, self.shapes)

    @property
    def params(self) -> int:
        return sum(math.prod(self.shapes[index]) for index in self.stepped)


def interleaved_medians(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = WARMUP,
                        synchronize: Callable[[], None] = lambda: None,
                        on_round: Callable[[int, int], None] = lambda done, rounds: None,
                        before: dict[str, Callable[[], None]] | None = None) -> dict[str, float]:
    """Median milliseconds of each step, timed in turns: one step of each, ``warmup`` rounds
    untimed, then ``repeats`` timed; ``on_round(done, rounds)`` after each round; ``before[name]``
    runs untimed before each of that step's turns (what a training loop does between steps).

    Taking turns spreads the machine's noisy moments over every contender alike, so their
    ratios hold even when the absolute times wander. ``synchronize`` waits for a GPU's queued
    work, so a step's time includes its kernels and not just their launch.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    before = before or {}
    rounds = warmup + repeats
    for done in range(1, rounds + 1):
        for name, step in steps.items():
            if name in before:
                before[name]()
                synchronize()
            started = time.perf_counter()
            step()
            synchronize()
            if done > warmup:
                times[name].append(time.perf_counter() - started)
        on_round(done, rounds)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def implementations(optimizer: str) -> dict[str, Callable]:
    """Every way of building ``optimizer`` that is installed here, by implementation name."""
    entry = registry.get(optimizer)
    settings = entry.settings  # what the name fixes (momentum's 0.9), for torch's class as for ours
    theirs = getattr(torch.optim, TORCH_CLASSES.get(optimizer, entry.make.__name__), None)
    built = {"adamlab": lambda params: entry.build(params)}
    if entry.make.fused_step:  # else the simple step is adamlab's only one
        built["adamlab-simple"] = lambda params: entry.build(params, fused=False)
    if theirs is not None and "foreach" not in inspect.signature(theirs).parameters:  # Muon: one tensor at a time
        built["torch-single"] = lambda params: theirs(params, **settings)
    elif theirs is not None:  # torch.optim has no Lion
        built["torch-single"] = lambda params: theirs(params, foreach=False, **settings)
        built["torch-foreach"] = lambda params: theirs(params, foreach=True, **settings)
        if "fused" in theirs.__init__.__code__.co_varnames:
            built["torch-fused"] = lambda params: theirs(params, fused=True, **settings)
    for peer, (module_name, classes) in PEERS.items():
        if optimizer in classes and importlib.util.find_spec(module_name.split(".")[0]) is not None:
            # Imported when built, not when listed: some peers take seconds to import.
            built[peer] = lambda params, module_name=module_name, class_name=classes[optimizer], peer=peer: \
                _in_train_mode(getattr(importlib.import_module(module_name), class_name)(
                    params, **PEER_SETTINGS.get((peer, optimizer), {})))
    return built


def _in_train_mode(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer, switched to train mode if it has modes (a schedule-free one steps only there)."""
    if callable(getattr(optimizer, "train", None)):
        optimizer.train()
    return optimizer


def contenders(optimizer: str, quick: bool = False) -> list[str]:
    """The implementations of ``optimizer`` to time: every installed one; or, ``quick``,
    adamlab's fused step and what its ratio divides by (torch.optim's steps, or the peers'
    where torch.optim lacks the optimizer), leaving out the slow rows: adamlab's simple path
    and the other peers."""
    names = list(implementations(optimizer))
    if not quick:
        return names
    torch_has_it = any(name.startswith("torch-") for name in names)
    peers = [name for name in names if not (torch_has_it or name.startswith(("adamlab", "torch-")))]
    quick_peers = [name for name in peers if name not in SLOW_PEERS] or peers
    return [name for name in names if name == "adamlab" or name.startswith("torch-") or name in quick_peers]


def label(optimizer: str, impl: str) -> str:
    """An implementation as the tables name it: torch's rows for an optimizer torch.optim has
    no class for say which class they run (8-bit AdamW's are torch's float32 AdamW)."""
    if impl.startswith("torch-") and optimizer in TORCH_CLASSES:
        return f"{impl} (float32 {TORCH_CLASSES[optimizer]})"
    return impl


def reference(times: dict[str, float]) -> str | None:
    """The implementation "vs torch fused" divides by: torch's fused step where it has one, else
    torch's fastest, else (an optimizer torch lacks) the fastest installed peer's; None if none ran."""
    if "torch-fused" in times:
        return "torch-fused"
    peers = [impl for impl in times if impl.startswith("torch")] or \
            [impl for impl in times if not impl.startswith("adamlab")]
    return min(peers, key=times.__getitem__, default=None)


def plan(optimizers=tuple(registry.OPTIMIZERS), quick: bool = False, only_layouts=None) -> list[Series]:
    """The series a run times, in order: on every layout (or those in ``only_layouts``), one
    for each optimizer, after a first one timed and thrown away."""
    series = []
    for layout, shapes in layouts(quick).items():
        if only_layouts is not None and layout not in only_layouts:
            continue
        shapes = tuple(tuple(shape) for shape in shapes)
        timed = [Series(layout, shapes, optimizer, tuple(contenders(optimizer, quick))) for optimizer in optimizers
                 if stepped(optimizer, layout, shapes)]  # Muon has nothing to step among vectors
        # The first series on a fresh layout runs slow for whichever optimizer comes first
        # (its adamlab step ~15% slower on GPT-2 small, whichever optimizer that is): one
        # series, timed and thrown away, absorbs it; not Muon's, seconds a step, if another will do.
        if timed:
            settling = next((each for each in timed if not registry.get(each.optimizer).matrices_only), timed[0])
            series += [replace(settling, settling=True), *timed]
    return series


#: What one step typically costs, for the time estimate only: floor steps over the same
#: parameters, and microseconds of Python per tensor. Rough figures from CPU runs (the simple
#: path allocates every intermediate; torch's unfused steps pass over memory once per
#: operation); a peer not named here costs as "peer".
TYPICAL_COST = {
    "floor": (1, 2), "adamlab": (2, 4), "torch-fused": (1.5, 6), "torch-single": (5, 20),
    "torch-foreach": (5, 15), "adamlab-simple": (25, 40), "peer": (8, 20),
}
#: Beyond the steps, for the estimate: each contender's copy of the parameters and its state,
#: and a layout's random parameters and gradients, in floor steps; in seconds, a series'
#: Python, a peer's first import, and off the CPU torch.compile building adamlab's step for a
#: series (a guess).
SETUP_FLOORS, LAYOUT_FLOORS, SERIES_S, IMPORT_S, COMPILE_S = 2, 30, 0.1, 1, 20
#: Matrix products a second, for Muon's Newton-Schulz iterations (bfloat16): about 1.9e11 measured
#: on this project's 2-core CPU (GPT-2 small's hidden matrices), a guess off the CPU.
MATMUL_FLOPS = {"cpu": 2e11, "other": 1e14}


def newton_schulz_flops(shape: tuple, steps: int = 5) -> float:
    """The multiply-adds (times two) of Muon's iteration on a matrix: each step x x^T, its square
    and the product with x, the shorter side s and the longer l: 4 s^2 l + 2 s^3."""
    short, long = sorted(shape[:2])
    return steps * (4 * short * short * long + 2 * short ** 3)


def estimate_seconds(series_list: list[Series], repeats: int, seconds_per_byte: float,
                     device: str = "cpu") -> list[float]:
    """Roughly how long each series of a plan takes to time, from the bytes of its steps at
    ``seconds_per_byte`` (as :func:`calibrate` measures it) and :data:`TYPICAL_COST`."""
    estimates, imported = [], set()
    for series in series_list:
        floor = FLOOR_BYTES * series.params * seconds_per_byte
        step = 0.0
        for impl in ("floor", *series.contenders):
            floors, microseconds_per_tensor = TYPICAL_COST.get(impl, TYPICAL_COST["peer"])
            step += floors * floor + microseconds_per_tensor * 1e-6 * len(series.stepped)
        if registry.get(series.optimizer).matrices_only:  # its matrix products, for every contender
            rate = MATMUL_FLOPS["cpu" if torch.device(device).type == "cpu" else "other"]
            step += len(series.contenders) * sum(newton_schulz_flops(series.shapes[index])
                                                 for index in series.stepped) / rate
        setup = SERIES_S + SETUP_FLOORS * (len(series.contenders) + 1) * floor
        if series.settling:  # the first series on its layout, which draws the parameters
            setup += LAYOUT_FLOORS * floor
        peers = set(series.contenders) & set(PEERS) - imported
        imported |= peers
        setup += IMPORT_S * len(peers)
        if torch.device(device).type != "cpu" and "adamlab" in series.contenders:
            setup += COMPILE_S
        estimates.append(setup + (WARMUP + repeats) * step)
    return estimates


def calibrate(device: str = "cpu", elements: int = 1 << 23) -> float:
    """Seconds a byte of a floor step takes here now: on the CPU the floor's own stream, timed
    a few times; elsewhere an eager in-place add (the floor's stream would first compile)."""
    device = torch.device(device)
    if device.type == "cpu":
        step, moved = floor_step([torch.zeros(elements)]), FLOOR_BYTES * elements
    else:
        total, addend = torch.zeros(elements, device=device), torch.ones(elements, device=device)
        step, moved = (lambda: total.add_(addend)), 3 * 4 * elements  # reads two arrays, writes one
    milliseconds = interleaved_medians({"calibration": step}, repeats=5, warmup=1,
                                       synchronize=_synchronizer(device))["calibration"]
    return milliseconds * 1e-3 / moved


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


def _time_series(series: Series, params: list[torch.nn.Parameter], repeats: int,
                 synchronize: Callable[[], None], on_round: Callable[[int, int], None]) -> dict[str, float]:
    """Median milliseconds of the floor and of every contender of ``series``, in turns."""
    # Each implementation steps its own copy of the parameters, so none starts from
    # another's result.
    names = parameter_names(series.layout, series.shapes)
    params, names = [params[index] for index in series.stepped], [names[index] for index in series.stepped]
    named = registry.get(series.optimizer).takes_names
    steps = {"floor": floor_step([param.detach() for param in params])}
    fresh = {}
    built = implementations(series.optimizer)
    for impl in series.contenders:
        copies = [torch.nn.Parameter(param.detach().clone()) for param in params]
        fresh[impl] = _fresh_gradients(copies, params)
        fresh[impl]()
        steps[impl] = built[impl](list(zip(names, copies)) if named else copies).step
    times = interleaved_medians(steps, repeats, synchronize=synchronize, on_round=on_round, before=fresh)
    del steps
    gc.collect()
    return times


def _fresh_gradients(copies: list[torch.nn.Parameter], params: list[torch.nn.Parameter]) -> Callable[[], None]:
    """Give ``copies`` new gradient tensors, just written, as a training loop's backward does
    before each step: a step handed the same gradients every time (the same tensors at the same
    addresses) would be timed without the work a real step does to take new ones."""
    def give() -> None:
        for copy, param in zip(copies, params):
            copy.grad = param.grad.clone()
    return give


def run(series_list: list[Series], repeats: int = 10, device: str = "cpu",
        on_series: Callable[[Series], None] = lambda series: None,
        on_round: Callable[[int, int], None] = lambda done, rounds: None,
        on_rows: Callable[[Series, list[Result]], None] = lambda series, rows: None) -> list[Result]:
    """Time every series of a :func:`plan`, in order; return the rows, each also handed to
    ``on_rows`` as soon as its series is done. ``on_series`` is told of each series as it
    starts (the thrown-away ones included) and ``on_round`` of each round of turns."""
    device = torch.device(device)
    # Objects alive now are not the run's garbage: set aside, so that collecting what each
    # series leaves (once a series, to free its memory) takes microseconds, not ~0.2 s.
    gc.freeze()
    try:
        return _run(series_list, repeats, device, on_series, on_round, on_rows)
    finally:
        gc.unfreeze()


def _run(series_list, repeats, device, on_series, on_round, on_rows) -> list[Result]:
    results = []
    synchronize = _synchronizer(device)
    generator = torch.Generator().manual_seed(0)
    params, layout = [], None
    for series in series_list:
        on_series(series)
        if series.layout != layout:
            del params
            gc.collect()
            params = [torch.nn.Parameter(torch.randn(shape, generator=generator).to(device)) for shape in series.shapes]
            for param in params:
                param.grad = (torch.randn(param.shape, generator=generator) * 1e-2).to(device)
            layout, floor_reported = series.layout, False
        times = _time_series(series, params, repeats, synchronize, on_round)
        if not series.settling:
            rows = _rows(series, times, device, with_floor=not floor_reported)
            floor_reported = True
            results += rows
            on_rows(series, rows)
    del params
    gc.collect()
    return results


def _rows(series: Series, times: dict[str, float], device: torch.device, with_floor: bool) -> list[Result]:
    """A timed series as rows: the floor's (``with_floor``), then each contender's, with ratios."""
    times = dict(times)
    floor = times.pop("floor")
    baseline = reference(times)
    named = None if baseline is None else label(series.optimizer, baseline)

    def row(optimizer: str, impl: str, ms: float, vs_reference: float | None, divided_by: str | None) -> Result:
        per_parameter = FLOOR_BYTES if optimizer == "floor" else bytes_per_parameter(optimizer)
        gb_per_s = per_parameter * series.params / (ms * 1e-3) / 1e9
        return Result(optimizer, impl, series.layout, series.params, ms, vs_reference, ms / floor, str(device),
                      gb_per_s, divided_by)

    rows = [row("floor", "stream", floor, None, None)] if with_floor else []
    for impl, ms in times.items():
        rows.append(row(series.optimizer, impl, ms, None if baseline is None else ms / times[baseline], named))
    return rows
