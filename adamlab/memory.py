"""What training a model costs in memory: weights, gradients and optimizer state, per optimizer.

The state figures follow each optimizer's real layout, tensor by tensor (a test builds every
adamlab optimizer on a small model, steps it once and counts its state's bytes against these
formulas), so they depend on the parameters' shapes and not only on their number: Adafactor
keeps a row and a column per matrix, 8-bit Adam one scale per block of a large tensor.

>>> row = table(shapes_for_count(7e9), precisions=("float32",), optimizers=("adam",))[0]
>>> round(row.total_bytes / 1e9)
112
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from . import bench

#: Bytes of one weight, one gradient and one optimizer-state element in each precision setup.
PRECISIONS = {
    "float32": (4, 4, 4),
    "bf16-mixed": (2, 2, 4),  # bfloat16 weights and gradients, float32 optimizer state
    "bf16": (2, 2, 2),  # bfloat16 everywhere
}

#: The step counter torch.optim keeps per tensor (a float32 scalar).
STEP_BYTES = 4
#: 8-bit Adam: tensors smaller than this keep their state in full precision.
EIGHT_BIT_MIN_SIZE = 4096
#: 8-bit Adam: elements per block sharing one float32 scale.
EIGHT_BIT_BLOCK = 256
#: With only a parameter count, parameters are taken as square matrices this wide (a 7 B
#: transformer's hidden size), which is what Adafactor's factored state depends on.
ASSUMED_WIDTH = 4096


def _count(shape) -> int:
    return math.prod(shape)


def _adam_like(moments: int):
    return lambda shape, size: moments * _count(shape) * size + STEP_BYTES


def _eight_bit(shape, size):
    count = _count(shape)
    if count < EIGHT_BIT_MIN_SIZE:
        return 2 * count * size + STEP_BYTES
    return 2 * count + 2 * math.ceil(count / EIGHT_BIT_BLOCK) * 4 + STEP_BYTES


def _adafactor(shape, size):
    if len(shape) < 2:  # a vector keeps its whole second moment
        return _count(shape) * size + STEP_BYTES
    rows, columns = _count(shape[:-1]), _count(shape[:-2]) * shape[-1]
    return (rows + columns) * size + STEP_BYTES


#: Optimizer-state bytes of one tensor of ``shape`` with ``size``-byte state elements.
STATE_BYTES = {
    "sgd": lambda shape, size: 0,
    "sgd-momentum": lambda shape, size: _count(shape) * size,
    "adam": _adam_like(2),  # and AdamW: m and v
    "amsgrad": _adam_like(3),  # m, v and the running maximum of v
    "adamw8bit": _eight_bit,  # m and v as one byte each, a float32 scale per block
    "adafactor": _adafactor,  # factored v, no first moment (its default)
    "lion": lambda shape, size: _count(shape) * size,  # m, no step counter
    "lamb": _adam_like(2),
}
OPTIMIZER_NAMES = {"sgd": "SGD", "sgd-momentum": "SGD-momentum", "adam": "Adam / AdamW",
                   "amsgrad": "AMSGrad", "adamw8bit": "8-bit AdamW", "adafactor": "Adafactor",
                   "lion": "Lion", "lamb": "LAMB"}


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
    "gpt2-small": bench.gpt2_shapes,
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


def state_bytes(optimizer: str, shapes: Iterable[tuple], state_size: int) -> int:
    """Bytes of ``optimizer``'s state over tensors of ``shapes``, ``state_size`` bytes an element."""
    if optimizer not in STATE_BYTES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(STATE_BYTES)}")
    return sum(STATE_BYTES[optimizer](tuple(shape), state_size) for shape in shapes)


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


def table(shapes: list[tuple], optimizers=tuple(STATE_BYTES), precisions=tuple(PRECISIONS),
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
            weight_size, gradient_size, state_size = PRECISIONS[precision]
            weights, gradients = count * weight_size, count * gradient_size
            state = state_bytes(optimizer, shapes, state_size)
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
