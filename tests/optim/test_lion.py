"""Lion: hand-computed steps, the lion-pytorch package as an independent implementation, and
the same fused-path, checkpoint and bad-input checks as the other optimizers."""

import lion_pytorch
import numpy as np
import pytest
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.lab import trace
from adamlab.maths import lion

from ..conftest import Batches, assert_a_checkpoint_resumes_exactly, make_mlp, train, train_pair

TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=0.0)}


def test_two_steps_by_hand():
    # theta 1, lr 0.1, weight decay 0.1, betas (0.9, 0.99); gradients 0.5 then -0.3.
    # Step 1: c = 0.1 * 0.5 > 0, theta = 1 * (1 - 0.01) - 0.1 = 0.89, m = 0.01 * 0.5 = 0.005.
    # Step 2: c = 0.9 * 0.005 - 0.1 * 0.3 = -0.0255 < 0, theta = 0.89 * 0.99 + 0.1 = 0.9811,
    #         m = 0.99 * 0.005 - 0.01 * 0.3 = 0.00195.
    rows = trace.trace("lion", grads=(0.5, -0.3), lr=0.1, weight_decay=0.1)
    assert [row["param"] for row in rows] == pytest.approx([0.89, 0.9811], abs=1e-15)
    assert [row["m"] for row in rows] == pytest.approx([0.005, 0.00195], abs=1e-15)
    assert [row["c"] for row in rows] == pytest.approx([0.05, -0.0255], abs=1e-15)


def test_every_coordinate_moves_by_exactly_lr():
    grad = np.array([1e-9, -3.0, 0.0, 250.0])
    step = lion.update(grad, lion.init(np.zeros(4)), np.zeros(4), lr=0.01)
    assert np.array_equal(step.param, [-0.01, 0.01, 0.0, -0.01])




@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 1e-3, "betas": (0.95, 0.98), "weight_decay": 0.5}],
                         ids=["default", "decay"])
def test_matches_lion_pytorch_after_100_steps(kwargs, dtype, fused):
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.Lion(models[0].parameters(), **kwargs, fused=fused)
    theirs = lion_pytorch.Lion(models[1].parameters(), **kwargs)
    train_pair(ours, theirs, models, 100, dtype)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **TOLERANCES[dtype])
        torch.testing.assert_close(ours.state[a]["exp_avg"], theirs.state[b]["exp_avg"], **TOLERANCES[dtype])


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_maximize_is_minimizing_the_negated_loss(fused):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.Lion(models[0].parameters(), lr=1e-3, maximize=True, fused=fused)
    theirs = lion_pytorch.Lion(models[1].parameters(), lr=1e-3)
    train_pair(ours, theirs, models, 30, torch.float64, negate_theirs=True)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_the_fused_kernel_runs_by_default(kernel_calls):
    calls = kernel_calls
    model = make_mlp()
    train(model, adamlab.Lion(model.parameters(), lr=1e-3), 5)
    assert calls == ["lion"] * 5


def test_the_compiled_path_matches_lion_pytorch(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.Lion(models[0].parameters(), lr=1e-3, weight_decay=0.1)
    theirs = lion_pytorch.Lion(models[1].parameters(), lr=1e-3, weight_decay=0.1)
    train_pair(ours, theirs, models, 20, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_bfloat16_keeps_its_state_in_bfloat16_and_follows_the_float32_run():
    models = [make_mlp(torch.bfloat16), make_mlp(torch.float32)]
    optimizers = [adamlab.Lion(model.parameters(), lr=1e-3) for model in models]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 10, Batches(next(model.parameters()).dtype))
    for low, high in zip(*(model.parameters() for model in models)):
        assert optimizers[0].state[low]["exp_avg"].dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), high, rtol=0.05, atol=0.02)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.Lion, lr=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"weight_decay": float("nan")}, "weight_decay"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.Lion(make_mlp().parameters(), **kwargs)
