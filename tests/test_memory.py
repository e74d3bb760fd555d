"""``adamlab memory``: its formulas against the optimizers' real state, and the command."""

import json

import pytest
import torch

import adamlab
from adamlab import memory
from adamlab.cli import main

SHAPES = [(8, 5), (8,), (3, 8), (3,), (2, 3, 4), (5000,)]

#: Each formula's optimizer, as built for real.
BUILT = {
    "sgd": lambda params: adamlab.SGD(params, lr=0.1),
    "sgd-momentum": lambda params: adamlab.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: adamlab.AdamW(params),
    "amsgrad": lambda params: adamlab.Adam(params, amsgrad=True),
    "lion": lambda params: adamlab.Lion(params),
    "lamb": lambda params: adamlab.LAMB(params),
    "adamw8bit": lambda params: adamlab.AdamW8bit(params),
    "adafactor": lambda params: adamlab.Adafactor(params),
}


def counted_state_bytes(optimizer) -> int:
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if isinstance(value, torch.Tensor))


@pytest.mark.parametrize("dtype, precision", [(torch.float32, "float32"), (torch.bfloat16, "bf16")])
@pytest.mark.parametrize("optimizer", BUILT)
def test_the_formula_is_the_real_state_after_a_step(optimizer, dtype, precision):
    params = [torch.nn.Parameter(torch.randn(shape).to(dtype)) for shape in SHAPES]
    built = BUILT[optimizer](params)
    for param in params:
        param.grad = torch.randn(param.shape).to(dtype)
    built.step()
    state_size = memory.PRECISIONS[precision][2]
    assert counted_state_bytes(built) == memory.state_bytes(optimizer, SHAPES, state_size)


def test_eight_bit_state_is_a_quarter_of_adams_and_small_tensors_stay_full():
    large, small = [(1024, 1024)], [(64, 63)]
    ratio = memory.state_bytes("adamw8bit", large, 4) / memory.state_bytes("adam", large, 4)
    assert 0.25 < ratio <= 0.27
    assert memory.state_bytes("adamw8bit", small, 4) == memory.state_bytes("adam", small, 4)


def test_seven_billion_parameters(capsys):
    assert main(["memory", "--params", "7e9", "--json"]) == 0
    rows = {(row["optimizer"], row["precision"]): row for row in json.loads(capsys.readouterr().out)}
    assert rows[("adam", "float32")]["total_bytes"] == pytest.approx(112e9, rel=1e-6)
    assert rows[("adam", "bf16-mixed")]["total_bytes"] == pytest.approx(84e9, rel=1e-6)
    assert rows[("sgd", "float32")]["state_bytes"] == 0
    assert set(memory.OPTIMIZER_NAMES) == {optimizer for optimizer, _ in rows}


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
    assert "8-bit AdamW" in out and "ZeRO-3" in out and "bf16-mixed" in out


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
