"""StableAdamW: the step by hand, optimi's StableAdamW as the oracle (through a loss spike, where
the update clipping acts), and the checks every optimizer passes."""

import numpy as np
import optimi
import pytest
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import adam, stableadamw

from ..conftest import Batches, assert_a_checkpoint_resumes_exactly, make_mlp, train, train_pair
from . import test_behaviour as behaviour


def test_debiased_betas_give_adams_bias_corrected_moments():
    grads = np.random.default_rng(0).standard_normal((6, 4))
    ours, theirs = stableadamw.init(np.zeros(4)), adam.init(np.zeros(4))
    for grad in grads:
        step = stableadamw.update(grad, ours, np.zeros(4), weight_decay=0.0)
        reference = adam.update(grad, theirs, np.zeros(4), beta2=0.99)
        ours, theirs = step.state, reference.state
        np.testing.assert_allclose(step.quantities["m"], reference.quantities["m_hat"], rtol=1e-12)
        np.testing.assert_allclose(step.quantities["v"], reference.quantities["v_hat"], rtol=1e-12)


def test_a_gradient_far_above_its_second_moment_divides_the_learning_rate():
    state = stableadamw.State(10, np.zeros(4), np.full(4, 1e-4))  # gradients of 0.01 so far
    step = stableadamw.update(np.full(4, 1.0), state, np.zeros(4), lr=0.1, weight_decay=0.0)
    assert step.quantities["rms"] > 3 and step.quantities["lr_t"] == pytest.approx(0.1 / step.quantities["rms"])
    calm = stableadamw.update(np.full(4, 0.01), state, np.zeros(4), lr=0.1, weight_decay=0.0)
    assert calm.quantities["lr_t"] == 0.1  # an RMS below 1 leaves lr alone




@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{"lr": 1e-2}, {"lr": 3e-2, "betas": (0.8, 0.95), "weight_decay": 0.1, "eps": 1e-8}],
                         ids=["default", "settings"])
def test_matches_optimis_stableadamw_after_100_steps(kwargs, dtype, fused):
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.StableAdamW(models[0].parameters(), **kwargs, fused=fused)
    theirs = optimi.StableAdamW(models[1].parameters(), **kwargs, kahan_sum=False, foreach=False)
    train_pair(ours, theirs, models, 100, dtype, spike_at=50)  # the clipping acts at the spike
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)


def test_the_fused_kernel_runs_by_default_and_agrees_with_the_simple_path_to_its_sums(kernel_calls):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    optimizers = [adamlab.StableAdamW(models[0].parameters(), lr=1e-2),
                  adamlab.StableAdamW(models[1].parameters(), lr=1e-2, fused=False)]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 5, Batches(torch.float64))
    assert kernel_calls == ["stableadamw"] * 5
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=0)  # the mean's sum, added in another order


def test_the_compiled_path_matches_the_oracle(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.StableAdamW(models[0].parameters(), lr=1e-2)
    theirs = optimi.StableAdamW(models[1].parameters(), lr=1e-2, kahan_sum=False, foreach=False)
    train_pair(ours, theirs, models, 20, torch.float64, spike_at=10)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.StableAdamW, lr=1e-2, weight_decay=0.1)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("StableAdamW")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"eps": -1.0}, "eps must be >= 0"),
    ({"weight_decay": float("inf")}, "weight_decay"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.StableAdamW(make_mlp().parameters(), **kwargs)
