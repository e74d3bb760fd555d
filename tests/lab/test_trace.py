"""The trace's numbers come from the maths; torch's optimizers must take the same steps."""

import math
import warnings

import lion_pytorch
import pytest
import torch

from adamlab.lab.trace import STANDARD_KEYS, bias_table, diverged_at, trace
from adamlab.registry import OPTIMIZERS

GRADS = (0.5, 0.3, 0.8, 0.6, -0.4, 1.2)

#: Where torch.optim has no class of adamlab's name: lion-pytorch's Lion; for the 8-bit optimizers
#: torch's float32 ones, which is what they are on a tensor too small to quantize. torch.optim has
#: no LAMB, and pytorch-optimizer's differs (tests/optim/test_lamb.py pins how): only adamlab's.
STAND_INS = {"Lion": lion_pytorch.Lion, "Adam8bit": torch.optim.Adam, "AdamW8bit": torch.optim.AdamW}
#: How close the trace comes, where not to rounding: the 8-bit maths keeps m and v through a
#: float32 scale each step (one element, one block), where a one-element tensor keeps them whole;
#: NAdam's product of momentum coefficients, LaProp's average of the rates and Schedule-Free's
#: sum of weights and lr_max are float32 numbers in the optimizers' state; Muon's step runs
#: Newton-Schulz in bfloat16, the trace exactly.
CLOSE = {"adam8bit": 1e-7, "adamw8bit": 1e-7, "nadam": 1e-10, "laprop": 1e-9, "schedulefree": 1e-9, "muon": 1e-4}


def torch_class(optimizer: str):
    """torch.optim's class of the registry entry's class name (or its stand-in), None if none."""
    name = OPTIMIZERS[optimizer].make.__name__
    return getattr(torch.optim, name, None) or STAND_INS.get(name)


def adamlab_class(optimizer: str):
    return OPTIMIZERS[optimizer].build  # the class, given the parameters as it takes them (Adam-mini: named)


@pytest.mark.parametrize("optimizer, implementation", [
    pytest.param(optimizer, implementation, id=f"{optimizer}-{implementation.__name__.split('_')[0]}")
    for optimizer in OPTIMIZERS for implementation in (torch_class, adamlab_class)
    if implementation(optimizer) is not None])
def test_trace_takes_the_steps_the_torch_optimizer_takes(optimizer, implementation):
    """With the trace's defaults (lr 0.001) and the settings the name fixes (momentum 0.9, amsgrad)."""
    shape = (1, 1) if OPTIMIZERS[optimizer].matrix_maths else ()  # as the trace steps it
    param = torch.nn.Parameter(torch.ones(shape, dtype=torch.float64))
    torch_optimizer = implementation(optimizer)([param], lr=1e-3, **OPTIMIZERS[optimizer].settings)
    params = []
    for grad in GRADS:
        param.grad = torch.full(shape, grad, dtype=torch.float64)
        torch_optimizer.step()
        params.append(param.item())
    assert [row["param"] for row in trace(optimizer, GRADS)] == pytest.approx(params, rel=CLOSE.get(optimizer, 1e-13))


def test_trace_defaults_reproduce_the_worked_example():
    rows = trace()
    assert [row["grad"] for row in rows] == [0.5, 0.3, 0.8, 0.6]
    assert rows[0]["param"] == pytest.approx(0.999, abs=1e-10)
    assert rows[1]["param"] == pytest.approx(0.99804, abs=5e-6)
    assert rows[0]["m_hat"] == pytest.approx(0.5) and rows[0]["v_hat"] == pytest.approx(0.25)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_row_has_the_standard_keys(optimizer):
    for t, row in enumerate(trace(optimizer), start=1):
        assert set(STANDARD_KEYS) <= row.keys() and row["step"] == t
        assert row["update"] is not None and row["param"] is not None
    if optimizer in ("sgd", "momentum", "adagrad"):
        assert row["m"] is None and row["v_hat"] is None


def test_knobs_reach_the_maths():
    slow, fast = trace("adam", beta1=0.0), trace("adam", beta1=0.99)
    assert slow[1]["m_hat"] == pytest.approx(0.3)  # no momentum: m_hat is the gradient
    assert fast[1]["m_hat"] != pytest.approx(0.3)
    assert trace("rmsprop", beta2=0.5)[0]["v"] == pytest.approx(0.5 * 0.25)  # beta2 is alpha
    assert trace("momentum", beta1=0.5)[1]["momentum_buffer"] == pytest.approx(0.5 * 0.5 + 0.3)
    assert trace("adamw", weight_decay=0.0)[0]["param"] == trace("adam")[0]["param"]


@pytest.mark.parametrize("optimizer, knobs, message", [
    ("sgd", dict(beta1=0.9), "beta1 does not apply to sgd"),
    ("adagrad", dict(beta2=0.9), "beta2 does not apply to adagrad"),
    ("adam", dict(lr=-1.0), r"lr must be >= 0"),
    ("adam", dict(beta1=1.0), r"beta1 must be in \[0, 1\)"),
    # each knob is named as it was set, not as the optimizer's argument it sets (alpha, momentum, eps2)
    ("rmsprop", dict(beta2=2.0), r"^beta2 must be in \[0, 1\], got 2.0$"),
    ("momentum", dict(beta1=-1.0), r"^beta1 must be >= 0, got -1.0$"),
    ("adafactor", dict(eps=-1.0), r"^eps must be >= 0, got -1.0$"),
    ("adafactor", dict(beta1=1.0), r"^beta1 must be in \[0, 1\), got 1.0$"),
    ("nope", {}, "unknown optimizer 'nope'"),
])
def test_bad_knobs_are_rejected(optimizer, knobs, message):
    with pytest.raises(ValueError, match=message):
        trace(optimizer, **knobs)


def test_bad_gradients_are_rejected():
    with pytest.raises(ValueError, match="at least one gradient"):
        trace("adam", grads=())
    with pytest.raises(ValueError, match="finite"):
        trace("adam", grads=(0.5, float("inf")))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_an_overflow_is_found_not_warned(optimizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings would print lines of their own
        rows = trace(optimizer, grads=(1e308, -1e308, 0.5), theta=1e308, lr=1e308)
    step, name, value = diverged_at(rows)
    assert not math.isfinite(value) and rows[step - 1][name] is value
    assert all(math.isfinite(number) for row in rows[:step - 1] for number in row.values()
               if isinstance(number, float))
    assert diverged_at(trace(optimizer)) is None


def test_bias_table_multipliers():
    rows = {row["step"]: row for row in bias_table()}
    assert list(rows) == [1, 5, 10, 50, 100, 1000]
    assert rows[1]["m_multiplier"] == pytest.approx(10.0)
    assert rows[1]["v_multiplier"] == pytest.approx(1000.0)
    assert rows[1000]["m_multiplier"] == pytest.approx(1.0)
    assert rows[100]["v_multiplier"] == pytest.approx(1 / (1 - 0.999**100))
    with pytest.raises(ValueError, match="beta2"):
        bias_table(beta2=1.0)
