"""AdEMAMix: a step by hand, two oracles (bitsandbytes' 32-bit AdEMAMix, which computes in
float32, and pytorch-optimizer's, in float64), and the checks every optimizer passes."""

import math

import bitsandbytes
import numpy as np
import pytest
import pytorch_optimizer
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import ademamix

from ..conftest import (assert_a_checkpoint_resumes_exactly, assert_the_fused_step_is_the_simple_paths_bit_for_bit,
                        make_mlp, train, train_pair)
from . import test_behaviour as behaviour


def test_two_steps_by_hand():
    # theta 1, lr 0.1, betas (0.5, 0.75, 0.9), alpha 2, eps 0, no decay; gradients 2 then -1.
    # Step 1: m1 = 1, m2 = 0.2, v = 1; (1 / 0.5 + 2 * 0.2) / (1 / 0.5) = 1.2; theta = 0.88.
    # Step 2: m1 = 0, m2 = 0.08, v = 1; (0 + 0.16) / (1 / sqrt(0.4375)) = 0.16 sqrt(0.4375).
    settings = dict(lr=0.1, beta1=0.5, beta2=0.75, beta3=0.9, mix=2.0, eps=0.0, weight_decay=0.0)
    state, theta = ademamix.init(np.ones(1)), np.ones(1)
    for grad, expected in ((2.0, 0.88), (-1.0, 0.88 - 0.016 * math.sqrt(0.4375))):
        step = ademamix.update(np.array([grad]), state, theta, **settings)
        state, theta = step.state, step.param
        assert theta[0] == pytest.approx(expected, abs=1e-15)


def test_the_warmups_start_small_and_reach_alpha_and_beta3():
    beta3 = [float(ademamix.warmed_up_beta3(t, 0.9, 0.9999, 100)) for t in (0, 1, 50, 100, 200)]
    assert beta3[0] == pytest.approx(0.9) and beta3[3] == pytest.approx(0.9999) and beta3[4] == 0.9999
    assert beta3 == sorted(beta3)
    half_lives = [math.log(0.5) / math.log(b) for b in beta3[:4]]  # grow linearly with t
    assert half_lives[2] == pytest.approx((half_lives[0] + half_lives[3]) / 2, rel=1e-9)




WARMUP = {"lr": 1e-2, "t_alpha": 60, "t_beta3": 60}


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("kwargs", [{}, {"lr": 1e-2, "betas": (0.8, 0.99, 0.999), "alpha": 3.0, "weight_decay": 0.1},
                                    WARMUP], ids=["default", "settings", "warmup"])
def test_matches_bitsandbytes_32bit_ademamix_in_float32(kwargs, fused):
    models = [make_mlp(torch.float32), make_mlp(torch.float32)]
    ours = adamlab.AdEMAMix(models[0].parameters(), **kwargs, fused=fused)
    theirs = bitsandbytes.optim.AdEMAMix(models[1].parameters(), **kwargs, optim_bits=32)
    train_pair(ours, theirs, models, 100, torch.float32)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        m1, m2 = theirs.state[b]["state1"]  # bitsandbytes keeps m1 and m2 stacked
        torch.testing.assert_close(ours.state[a]["exp_avg"], m1, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ours.state[a]["exp_avg_slow"], m2, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(ours.state[a]["exp_avg_sq"], theirs.state[b]["state2"], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("warmup", [None, 60], ids=["plain", "warmup"])
def test_matches_pytorch_optimizers_ademamix_in_float64(warmup, fused):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.AdEMAMix(models[0].parameters(), lr=1e-2, weight_decay=0.1, t_alpha=warmup, t_beta3=warmup,
                            fused=fused)
    theirs = pytorch_optimizer.AdEMAMix(models[1].parameters(), lr=1e-2, weight_decay=0.1, weight_decouple=True,
                                        t_alpha_beta3=warmup)
    train_pair(ours, theirs, models, 100, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)
        for key in ("exp_avg", "exp_avg_slow", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], rtol=1e-10, atol=1e-15)


def test_the_fused_kernel_runs_without_the_beta3_warmup_and_equals_the_simple_path(kernel_calls):
    assert_the_fused_step_is_the_simple_paths_bit_for_bit(adamlab.AdEMAMix, kernel_calls, "ademamix", lr=1e-2,
                                                          t_alpha=10)


def test_the_beta3_warmup_takes_the_simple_path_and_fused_true_says_why():
    model = make_mlp()
    with pytest.raises(ValueError, match=r"AdEMAMix\(fused=True\): adamlab.maths.ademamix.update cannot be traced"):
        train(model, adamlab.AdEMAMix(model.parameters(), t_beta3=10, fused=True), 1)


@pytest.mark.parametrize("warmup", [None, 10], ids=["plain", "warmup"])
def test_the_compiled_path_matches_the_oracle(monkeypatch, warmup):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    seen = []
    update = compiled.update
    monkeypatch.setattr(compiled, "update", lambda maths, *args: seen.append(maths) or update(maths, *args))
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.AdEMAMix(models[0].parameters(), lr=1e-2, t_alpha=warmup, t_beta3=warmup)
    theirs = pytorch_optimizer.AdEMAMix(models[1].parameters(), lr=1e-2, weight_decay=0.01, weight_decouple=True,
                                        t_alpha_beta3=warmup)
    train_pair(ours, theirs, models, 20, torch.float64)
    assert len(seen) == (20 if warmup is None else 0)  # with beta3's warmup: the simple path
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.AdEMAMix, lr=1e-2, t_alpha=30, t_beta3=30)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("AdEMAMix")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 0.999)}, r"betas must be three numbers \(beta1, beta2, beta3\)"),
    ({"betas": (0.9, 0.999, 1.0)}, r"betas\[2\] must be in \[0, 1\)"),
    ({"alpha": -1.0}, "alpha must be a finite number >= 0"),
    ({"t_alpha": 0}, r"t_alpha must be a whole number of steps >= 1, or None \(no warmup\)"),
    ({"t_beta3": 2.5}, "t_beta3 must be a whole number"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.AdEMAMix(make_mlp().parameters(), **kwargs)
