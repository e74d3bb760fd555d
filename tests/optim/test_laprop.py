"""LaProp: a step by hand, pytorch-optimizer's LaProp as the oracle (its two departures from the
paper pinned), and the checks every optimizer passes."""

import math

import pytest
import pytorch_optimizer
import torch
from pytorch_optimizer.base.optimizer import BaseOptimizer

import adamlab
from adamlab.kernels import compiled
from adamlab.lab import trace

from ..conftest import (Batches, assert_a_checkpoint_resumes_exactly, assert_the_fused_step_is_the_simple_paths_bit_for_bit,
                        default_dtype, make_mlp, train, train_pair)
from . import test_behaviour as behaviour


def test_two_steps_by_hand():
    # theta 1, lr 0.1, betas (0.5, 0.75), eps 0; gradients 2 then -1.
    # Step 1: v = 0.25 * 4 = 1, n = 2 / (1 / sqrt(0.25)) = 1, m = 0.5 * 0.1 * 1 = 0.05, l = 0.05,
    #         theta = 1 - (0.1 / 0.05) * 0.05 = 0.9.
    # Step 2: v = 0.75 + 0.25 = 1, n = -1 / (1 / sqrt(1 - 0.5625)) = -sqrt(0.4375),
    #         m = 0.025 - 0.05 sqrt(0.4375), l = 0.075, theta = 0.9 - (0.1 / 0.075) m.
    rows = trace.trace("laprop", grads=(2.0, -1.0), lr=0.1, beta1=0.5, beta2=0.75, eps=0.0)
    m2 = 0.025 - 0.05 * math.sqrt(0.4375)
    assert [row["param"] for row in rows] == pytest.approx([0.9, 0.9 - (0.1 / 0.075) * m2], abs=1e-15)
    assert [row["m"] for row in rows] == pytest.approx([0.05, m2], abs=1e-15)




@pytest.fixture
def oracle_as_the_paper(monkeypatch):
    """The oracle dividing by sqrt(v) + eps, as the paper and adamlab do: its own divides by
    sqrt(v + 1e-15) + eps (``exp_avg_sq_eps``). Its step per tensor (``foreach=False``) takes it
    from here."""
    original = BaseOptimizer.apply_ams_bound

    def apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=1e-15):
        return original(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=0.0)

    monkeypatch.setattr(BaseOptimizer, "apply_ams_bound", staticmethod(apply_ams_bound))


SETTINGS = {
    "default": {},
    "decay": {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1, "eps": 1e-8},
}


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_pytorch_optimizers_laprop_after_100_steps(oracle_as_the_paper, setting, dtype, fused):
    kwargs = SETTINGS[setting]
    with default_dtype(dtype):  # the average of the rates is kept as the step is: float64 here
        models = [make_mlp(dtype), make_mlp(dtype)]
        ours = adamlab.LaProp(models[0].parameters(), **kwargs, fused=fused)
        theirs = pytorch_optimizer.LaProp(models[1].parameters(), **kwargs, foreach=False)
        train_pair(ours, theirs, models, 100, dtype)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)
        # a float32 run keeps the average of the rates in float32; the oracle keeps a Python float
        assert ours.state[a]["exp_avg_lr_1"].item() == pytest.approx(
            theirs.state[b]["exp_avg_lr_1"], rel=1e-6 if dtype == torch.float32 else 1e-14)


def test_the_oracles_own_inner_epsilon_moves_it_by_less_than_a_millionth():
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    with default_dtype(torch.float64):
        ours = adamlab.LaProp(models[0].parameters(), **SETTINGS["decay"])
        theirs = pytorch_optimizer.LaProp(models[1].parameters(), **SETTINGS["decay"])
        train_pair(ours, theirs, models, 100, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_the_oracles_l2_penalty_changes_nothing_and_adamlabs_does():
    """pytorch-optimizer adds weight_decay * theta to the gradient after the step has used it."""
    models = [make_mlp(torch.float64) for _ in range(3)]
    runs = [pytorch_optimizer.LaProp(models[0].parameters(), lr=1e-2, weight_decay=0.5, weight_decouple=False),
            pytorch_optimizer.LaProp(models[1].parameters(), lr=1e-2),
            adamlab.LaProp(models[2].parameters(), lr=1e-2, weight_decay=0.5, decoupled_weight_decay=False)]
    for model, optimizer in zip(models, runs):
        train(model, optimizer, 20, Batches(torch.float64))
    for with_l2, without, ours in zip(*(model.parameters() for model in models)):
        assert torch.equal(with_l2, without)
        assert not torch.allclose(ours, without, rtol=1e-3)


def test_the_fused_kernel_runs_by_default_and_equals_the_simple_path_bit_for_bit(kernel_calls):
    assert_the_fused_step_is_the_simple_paths_bit_for_bit(adamlab.LaProp, kernel_calls, "laprop", lr=1e-2,
                                                          weight_decay=0.1)


def test_the_compiled_path_matches_the_oracle(monkeypatch, oracle_as_the_paper):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    with default_dtype(torch.float64):
        models = [make_mlp(torch.float64), make_mlp(torch.float64)]
        ours = adamlab.LaProp(models[0].parameters(), lr=1e-2, weight_decay=0.1)
        theirs = pytorch_optimizer.LaProp(models[1].parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
        train_pair(ours, theirs, models, 20, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_schedule_that_changes_lr_keeps_the_steps_right(oracle_as_the_paper):
    """The correction divides by the average of the rates, which a scheduler changes step by step."""
    with default_dtype(torch.float64):
        models = [make_mlp(torch.float64), make_mlp(torch.float64)]
        ours = adamlab.LaProp(models[0].parameters(), lr=1e-2)
        theirs = pytorch_optimizer.LaProp(models[1].parameters(), lr=1e-2, foreach=False)
        schedules = [torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5) for optimizer in (ours, theirs)]
        batches = [iter(Batches(torch.float64)), iter(Batches(torch.float64))]
        for _ in range(15):
            for model, optimizer, schedule, batch in zip(models, (ours, theirs), schedules, batches):
                inputs, targets = next(batch)
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(inputs), targets).backward()
                optimizer.step()
                schedule.step()
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.LaProp, lr=1e-2, weight_decay=0.1)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("LaProp")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (1.0, 0.9)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"eps": -1.0}, "eps must be >= 0"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.LaProp(make_mlp().parameters(), **kwargs)
