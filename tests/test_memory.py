"""``adamlab memory``: its measurement against the optimizers' real state, sizes by hand, and the command."""

import json
import math

import pytest
import torch

from adamlab import memory, registry
from adamlab.cli import main

#: Matrices, vectors, a 3-D tensor, 8-bit Adam's smallest quantized size and one cut mid-block.
SHAPES = [(8, 5), (8,), (3, 8), (3,), (2, 3, 4), (4096,), (5000,)]


def real_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(value.nbytes for state in optimizer.state.values() for value in state.values()
               if isinstance(value, torch.Tensor))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("optimizer", registry.OPTIMIZERS)
def test_the_measurement_is_the_state_of_a_real_step(optimizer, dtype):
    """What the meta device measures is what the optimizer keeps after a real step on the CPU:
    for every optimizer (8-bit Adam's laid-out state included), shape by shape."""
    generator = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        param = torch.nn.Parameter(torch.randn(shape, generator=generator).to(dtype))
        built = registry.get(optimizer).build([param])
        param.grad = torch.randn(shape, generator=generator).to(dtype)
        built.step()
        assert memory.state_bytes(optimizer, [shape], dtype) == real_state_bytes(built), shape


STEP = 4  # the step counter: a float32 number per tensor


@pytest.mark.parametrize("optimizer, shape, expected", [
    ("adam", (1000,), 2 * 1000 * 4 + STEP),  # m and v
    ("adamw", (30, 40), 2 * 1200 * 4 + STEP),
    ("amsgrad", (1000,), 3 * 1000 * 4 + STEP),  # and the largest v so far
    ("nadam", (1000,), 2 * 1000 * 4 + STEP + 4),  # and the product of its momentum coefficients
    ("momentum", (1000,), 1000 * 4),  # the velocity, no step counter
    ("sgd", (1000,), 0),
    ("lion", (1000,), 1000 * 4),  # m, no step counter
    # one byte a code for m and v, and a float32 scale per block of 256 for each (5000: 20 blocks)
    ("adamw8bit", (5000,), 2 * 5000 + 2 * math.ceil(5000 / 256) * 4 + STEP),
    ("adamw8bit", (64, 64), 2 * 4096 + 2 * 16 * 4 + STEP),
    ("adamw8bit", (64, 63), 2 * 64 * 63 * 4 + STEP),  # under 4096 elements: kept as Adam keeps them
    # a row and a column of the second moment; a 3-D tensor's per matrix; a vector's whole
    ("adafactor", (300, 200), (300 + 200) * 4 + STEP),
    ("adafactor", (2, 3, 4), (2 * 3 + 2 * 4) * 4 + STEP),
    ("adafactor", (8,), 8 * 4 + STEP),
])
def test_sizes_worked_by_hand(optimizer, shape, expected):
    assert memory.state_bytes(optimizer, [shape]) == expected


def test_eight_bit_state_is_a_quarter_of_adams_and_bf16_halves_the_moments():
    large = [(1024, 1024)]
    ratio = memory.state_bytes("adamw8bit", large) / memory.state_bytes("adam", large)
    assert 0.25 < ratio <= 0.27
    assert memory.state_bytes("adam", large, torch.bfloat16) == 2 * 1024 * 1024 * 2 + STEP
    # codes are bytes and scales float32 whatever the parameters' dtype
    assert memory.state_bytes("adamw8bit", large, torch.bfloat16) == memory.state_bytes("adamw8bit", large)


def test_shapes_repeat_without_being_measured_again():
    memory.state_bytes_by_shape.cache_clear()
    assert memory.state_bytes("adam", [(10,)] * 1000 + [(3, 3)]) == 1000 * (80 + STEP) + 72 + STEP
    assert memory.state_bytes_by_shape.cache_info().misses == 1  # one optimizer stepped, over two shapes
    with pytest.raises(ValueError, match="unknown optimizer 'adamz'; choose from sgd, momentum"):
        memory.state_bytes("adamz", [(3,)])


def test_seven_billion_parameters(capsys):
    assert main(["memory", "--params", "7e9", "--json"]) == 0
    rows = {(row["optimizer"], row["precision"]): row for row in json.loads(capsys.readouterr().out)}
    assert rows[("adam", "float32")]["total_bytes"] == pytest.approx(112e9, rel=1e-6)
    assert rows[("adam", "bf16-mixed")]["total_bytes"] == pytest.approx(84e9, rel=1e-6)
    assert rows[("sgd", "float32")]["state_bytes"] == 0
    assert list(dict.fromkeys(optimizer for optimizer, _ in rows)) == list(registry.OPTIMIZERS)


def test_sharding_divides_state_then_gradients_then_weights():
    row = memory.table([(1000,)], optimizers=("adam",), precisions=("float32",), ranks=4)[0]
    weights, gradients, state = 4000, 4000, 8004
    assert (row.weights_bytes, row.gradients_bytes, row.state_bytes) == (weights, gradients, state)
    assert row.per_device_bytes == {"zero1": weights + gradients + state // 4,
                                    "zero2": weights + (gradients + state) // 4,
                                    "zero3": (weights + gradients + state) // 4}


def test_known_models_have_their_real_sizes():
    count = lambda name: sum(torch.Size(shape).numel() for shape in memory.model_shapes(name))  # noqa: E731
    assert count("names-default") == 103_104  # what adamlab train reports for its default model
    assert 124e6 < count("gpt2-small") < 125e6 and 6.7e9 < count("llama-7b") < 6.8e9


def test_the_table(capsys):
    assert main(["memory", "--model", "gpt2-small", "--ranks", "8"]) == 0
    out = capsys.readouterr().out
    assert "gpt2-small: 124,439,808 parameters in 148 tensors, over 8 ranks" in out
    assert "adamw8bit" in out and "nadam" in out and "ZeRO-3" in out and "bf16-mixed" in out


@pytest.mark.parametrize("argv, message", [
    (["--params", "0"], "the parameter count must be a number >= 1, got 0.0"),
    (["--params", "nan"], "the parameter count must be a number >= 1"),
    (["--ranks", "0"], "ranks must be a whole number >= 1, got 0"),
    (["--model", "gpt5"], "invalid choice: 'gpt5'"),
    (["--model", "llama-7b", "--params", "7e9"], "not allowed with argument"),
])
def test_bad_options(capsys, argv, message):
    try:
        status = main(["memory", *argv])
    except SystemExit as exit:  # argparse's own checks
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err
