"""ADOPT: steps by hand, pytorch-optimizer's ADOPT as the oracle, and the checks every optimizer
passes (convergence, checkpoints, odd parameters, bad hyperparameters)."""

import numpy as np
import pytest
import pytorch_optimizer
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.lab import trace
from adamlab.maths import adopt

from ..conftest import (assert_a_checkpoint_resumes_exactly, assert_the_fused_step_is_the_simple_paths_bit_for_bit,
                        make_mlp, train_pair)
from . import test_behaviour as behaviour

TOLERANCES = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-15)}


def test_three_steps_by_hand():
    # theta 1, lr 0.1, betas (0.5, 0.75), eps 1e-6; gradients 2, 1, -4.
    # Step 1: v = 4; theta stays 1.
    # Step 2: n = 1 / sqrt(4) = 0.5 (clip 2^0.25 > 0.5), m = 0.5 * 0.5 = 0.25, theta = 1 - 0.025 = 0.975,
    #         v = 0.75 * 4 + 0.25 * 1 = 3.25.
    # Step 3: n = -4 / sqrt(3.25) = -2.2188..., clipped to -3^0.25 = -1.3161..., m = 0.125 - 0.6580... ,
    #         theta = 0.975 - 0.1 m.
    rows = trace.trace("adopt", grads=(2.0, 1.0, -4.0), lr=0.1, beta1=0.5, beta2=0.75)
    clip = 3 ** 0.25
    m3 = 0.5 * 0.25 + 0.5 * -clip
    assert [row["param"] for row in rows] == pytest.approx([1.0, 0.975, 0.975 - 0.1 * m3], abs=1e-15)
    assert [row["v"] for row in rows] == pytest.approx([4.0, 3.25, 0.75 * 3.25 + 0.25 * 16], abs=1e-15)
    assert rows[2]["normalised"] == pytest.approx(-clip, abs=1e-15)


def test_without_clipping_the_normalised_gradient_is_left_as_it_is():
    grad, state = np.array([-4.0]), adopt.State(2, np.zeros(1), np.array([3.25]))
    step = adopt.update(grad, state, np.ones(1), clip_exponent=None)
    assert step.quantities["normalised"] == pytest.approx(-4 / 3.25 ** 0.5)




#: adamlab's arguments, and the oracle's for the same run
SETTINGS = {
    "default": ({}, {}),
    "decay": ({"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1},
              {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    "decoupled": ({"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "eps": 1e-8},
                  {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": True, "eps": 1e-8}),
    "no-clip": ({"lr": 1e-2, "clip_exponent": None}, {"lr": 1e-2, "clip_lambda": None}),
    "clip-exponent": ({"lr": 1e-2, "clip_exponent": 0.1}, {"lr": 1e-2, "clip_lambda": lambda step: step ** 0.1}),
}


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_pytorch_optimizers_adopt_after_100_steps(setting, dtype, fused):
    ours_kwargs, theirs_kwargs = SETTINGS[setting]
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.ADOPT(models[0].parameters(), **ours_kwargs, fused=fused)
    theirs = pytorch_optimizer.ADOPT(models[1].parameters(), **theirs_kwargs)
    train_pair(ours, theirs, models, 100, dtype)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **TOLERANCES[dtype])
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **TOLERANCES[dtype])
        assert ours.state[a]["step"].item() == theirs.param_groups[0]["step"] == 100


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_maximize_is_minimizing_the_negated_loss(fused):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.ADOPT(models[0].parameters(), lr=1e-2, maximize=True, fused=fused)
    theirs = pytorch_optimizer.ADOPT(models[1].parameters(), lr=1e-2)
    train_pair(ours, theirs, models, 30, torch.float64, negate_theirs=True)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_the_fused_kernel_runs_by_default_and_equals_the_simple_path_bit_for_bit(kernel_calls):
    assert_the_fused_step_is_the_simple_paths_bit_for_bit(adamlab.ADOPT, kernel_calls, "adopt", lr=1e-2,
                                                          weight_decay=0.1)


def test_the_compiled_path_matches_the_oracle(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.ADOPT(models[0].parameters(), lr=1e-2, weight_decay=0.1)
    theirs = pytorch_optimizer.ADOPT(models[1].parameters(), lr=1e-2, weight_decay=0.1)
    train_pair(ours, theirs, models, 20, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.ADOPT, lr=1e-2, weight_decay=0.1, clip_exponent=0.3)


@pytest.mark.parametrize("check", [check for check in behaviour.WITHOUT_TORCH if check not in (
    behaviour.test_parameter_without_gradient_is_left_alone, behaviour.test_closure_is_evaluated_and_its_loss_returned,
    behaviour.test_add_param_group_trains_the_new_group_with_its_own_settings)], ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("ADOPT")


def test_a_closure_is_evaluated_and_a_new_group_trains_with_its_own_settings():
    # as every optimizer's checks, but over two steps: ADOPT's first only starts v
    point = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = adamlab.ADOPT([point], lr=0.1)
    other = torch.nn.Parameter(torch.ones(2))
    optimizer.add_param_group({"params": [other], "lr": 0.0})

    def closure():
        optimizer.zero_grad()
        loss = (point ** 2).sum() + other.sum()
        loss.backward()
        return loss

    assert [optimizer.step(closure).item() for _ in range(2)] == [6.0, 6.0]
    assert point.item() < 2.0 and torch.equal(other, torch.ones(2)) and optimizer.param_groups[1]["lr"] == 0.0


def test_a_parameter_without_gradient_is_left_alone_and_the_first_step_moves_nothing():
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = adamlab.ADOPT([used, unused], lr=0.1)
    used.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(used, torch.ones(3)) and torch.equal(optimizer.state[used]["exp_avg_sq"], torch.ones(3))
    optimizer.step()
    assert not torch.equal(used, torch.ones(3))
    assert torch.equal(unused, torch.ones(3)) and unused not in optimizer.state


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"eps": -1e-6}, "eps must be >= 0"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"clip_exponent": -0.25}, r"clip_exponent must be a finite number >= 0, or None \(no clipping\), got -0.25"),
    ({"clip_exponent": "quarter"}, "clip_exponent must be"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.ADOPT(make_mlp().parameters(), **kwargs)
