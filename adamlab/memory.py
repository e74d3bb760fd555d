"""What training a model costs in memory: weights, gradients and optimizer state, per optimizer.

The state is measured, not restated: each of the registry's optimizers is built over parameters
of the model's shapes on the meta device (shapes and dtypes, no memory, no arithmetic), given
gradients, stepped once, and the bytes of every tensor it then keeps are summed, step counters
included. So the figures follow each optimizer's real layout and depend on the parameters'
shapes, not only their number: Adafactor keeps a row and a column per matrix, 8-bit Adam codes
and one scale per block of a large tensor.

>>> row = table(shapes_for_count(7e9), precisions=("float32",), optimizers=("adam",))[0]
>>> round(row.total_bytes / 1e9)
112
"""

import functools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from . import bench, optim, registry

#: Bytes of one weight and one gradient, and the dtype of the optimizer's state, in each
#: precision setup.
PRECISIONS = {
    "float32": (4, 4, torch.float32),
    "bf16-mixed": (2, 2, torch.float32),  # bfloat16 weights and gradients, float32 optimizer state
    "bf16": (2, 2, torch.bfloat16),  # bfloat16 everywhere
}

#: With only a parameter count, parameters are taken as square matrices this wide (a 7 B
#: transformer's hidden size), which is what Adafactor's factored state depends on.
ASSUMED_WIDTH = 4096


def _count(shape) -> int:
    return math.prod(shape)


def _llama_7b_shapes() -> list[tuple]:
    width, hidden, vocab = 4096, 11008, 32000
    layer = [(width, width)] * 4 + [(hidden, width)] * 2 + [(width, hidden)] + [(width,)] * 2
    return [(vocab, width)] + layer * 32 + [(width,), (vocab, width)]


def _names_gpt_shapes(recipe: str) -> list[tuple]:
    from .lab.gpt import GPT, GPTConfig
    from .lab.training import RECIPES

    config = RECIPES[recipe].settled()
    model = GPT(GPTConfig(27, config.block_size, config.n_layer, config.n_embd, config.n_head, config.norm))
    return [tuple(param.shape) for param in model.parameters()]


#: Models whose parameter shapes are known, by name.
MODELS = {
    "gpt2-small": lambda: bench.gpt2_shapes(),  # called late: bench reads the state sizes from here
    "gpt2-xl": lambda: bench.gpt2_shapes(n_embd=1600, n_layer=48),
    "llama-7b": _llama_7b_shapes,
    "names-default": lambda: _names_gpt_shapes("default"),  # adamlab train's default model
    "names-microgpt": lambda: _names_gpt_shapes("microgpt"),
}


def shapes_for_count(count: float) -> list[tuple]:
    """``count`` parameters as square matrices ASSUMED_WIDTH wide, and a vector for the rest."""
    if not (isinstance(count, (int, float)) and math.isfinite(count) and count >= 1):
        raise ValueError(f"the parameter count must be a number >= 1, got {count!r}")
    count = int(count)
    matrix = ASSUMED_WIDTH * ASSUMED_WIDTH
    return [(ASSUMED_WIDTH, ASSUMED_WIDTH)] * (count // matrix) + ([(count % matrix,)] if count % matrix else [])


def model_shapes(name: str) -> list[tuple]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]()


def state_bytes(optimizer: str, shapes: Iterable[tuple], dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the state ``optimizer`` (a registry name) keeps over parameters of ``shapes`` in
    ``dtype``, as measured after one step (each distinct shape measured once)."""
    registry.get(optimizer)  # an unknown name: ValueError listing the known ones
    counts = Counter(tuple(shape) for shape in shapes)
    measured = state_bytes_by_shape(optimizer, tuple(sorted(counts)), dtype)
    return sum(measured[shape] * count for shape, count in counts.items())


@functools.cache
def state_bytes_by_shape(optimizer: str, shapes: tuple[tuple[int, ...], ...], dtype: torch.dtype) -> dict:
    """The bytes of state ``optimizer`` keeps for one parameter of each of ``shapes``: the real
    optimizer (its simple path, which runs anywhere) stepped once on the meta device."""
    params = [torch.nn.Parameter(torch.empty(shape, dtype=dtype, device="meta")) for shape in shapes]
    for param in params:
        param.grad = torch.empty_like(param)
    built = registry.get(optimizer).build(params, fused=False)
    if isinstance(built, (optim.Adam8bit, optim.Prodigy)):
        # The exceptions: steps that cannot run on the meta device, as they read values: 8-bit
        # Adam's quantizer asks whether every block's scale is finite, Prodigy sums its estimate's
        # parts as numbers. What each keeps is what its step lays out before it runs and then
        # fills in place, the class's own _init_state; a test holds this to the state of a real step.
        built.state.update({param: built._init_state(param, built.param_groups[0]) for param in params})
    else:
        built.step()
    return {shape: sum(value.nbytes for value in built.state[param].values() if isinstance(value, torch.Tensor))
            for shape, param in zip(shapes, params)}


@dataclass
class Row:
    optimizer: str
    precision: str
    params: int
    weights_bytes: int
    gradients_bytes: int
    state_bytes: int
    total_bytes: int
    ranks: int
    #: bytes on each of ``ranks`` devices under ZeRO stage 1 (state sharded), 2 (and
    #: gradients), 3 (and weights).
    per_device_bytes: dict[str, int]


def table(shapes: list[tuple], optimizers=tuple(registry.OPTIMIZERS), precisions=tuple(PRECISIONS),
          ranks: int = 1) -> list[Row]:
    """One row per optimizer and precision setup."""
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be a whole number >= 1, got {ranks!r}")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    count = sum(_count(shape) for shape in shapes)
    rows = []
    for optimizer in optimizers:
        for precision in precisions:
            weight_size, gradient_size, state_dtype = PRECISIONS[precision]
            weights, gradients = count * weight_size, count * gradient_size
            state = state_bytes(optimizer, shapes, state_dtype)
            per_device = {f"zero{stage}": sum(part / (ranks if stage >= needed else 1)
                                              for part, needed in ((state, 1), (gradients, 2), (weights, 3)))
                          for stage in (1, 2, 3)}
            rows.append(Row(optimizer, precision, count, weights, gradients, state,
                            weights + gradients + state, ranks,
                            {stage: math.ceil(value) for stage, value in per_device.items()}))
    return rows


def human(count: float) -> str:
    """Bytes in decimal units: 112 GB, 3.4 MB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} B"
