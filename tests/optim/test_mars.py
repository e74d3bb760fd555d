"""MARS: a step by hand, pytorch-optimizer's MARS (``mars_type='adamw'``) as the oracle (its eps
placement, which departs from the paper, pinned), and the checks every optimizer passes."""

import math

import numpy as np
import pytest
import pytorch_optimizer
import torch
from pytorch_optimizer.base.optimizer import BaseOptimizer

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import adam, mars

from ..conftest import Batches, assert_a_checkpoint_resumes_exactly, make_mlp, train, train_pair
from . import test_behaviour as behaviour


def test_two_steps_by_hand():
    # theta = (1, 1), lr 0.1, betas (0.5, 0.75), gamma 0.5, eps 0; gradients (0.3, 0.4) then (0.6, 0).
    # Step 1: c = g + 0.5 * 1 * (g - 0) = (0.45, 0.6), ||c|| = 0.75 <= 1: kept. m = 0.5 c, v = 0.25 c^2,
    #         m_hat = c, v_hat = c^2: theta = 1 - 0.1 * sign(c) = (0.9, 0.9).
    # Step 2: c = (0.6, 0) + 0.5 * ((0.6, 0) - (0.3, 0.4)) = (0.75, -0.2), ||c|| = sqrt(0.6025) < 1.
    state = mars.init(np.ones(2))
    first = mars.update(np.array([0.3, 0.4]), state, np.ones(2), lr=0.1, beta1=0.5, beta2=0.75, gamma=0.5, eps=0.0)
    np.testing.assert_allclose(first.quantities["c"], [0.45, 0.6], rtol=1e-15)
    np.testing.assert_allclose(first.param, [0.9, 0.9], rtol=1e-15)
    second = mars.update(np.array([0.6, 0.0]), first.state, first.param, lr=0.1, beta1=0.5, beta2=0.75, gamma=0.5,
                         eps=0.0)
    c = np.array([0.75, -0.2])
    m = 0.5 * 0.5 * np.array([0.45, 0.6]) + 0.5 * c
    v = 0.75 * 0.25 * np.array([0.45, 0.6]) ** 2 + 0.25 * c * c
    np.testing.assert_allclose(second.param, 0.9 - 0.1 * (m / 0.75) / np.sqrt(v / (1 - 0.75 ** 2)), rtol=1e-14)
    np.testing.assert_allclose(second.state.g_prev, [0.6, 0.0])


def test_a_corrected_gradient_longer_than_one_is_scaled_to_norm_one():
    step = mars.update(np.array([3.0, 4.0]), mars.init(np.zeros(2)), np.zeros(2), gamma=0.0)
    assert step.quantities["norm"] == 5.0
    np.testing.assert_allclose(step.quantities["c"], [0.6, 0.8], rtol=1e-15)


def test_without_gamma_and_with_small_gradients_it_is_adamw():
    grads = np.random.default_rng(0).standard_normal((6, 4)) * 0.1  # norms below 1: no clipping
    ours, theirs = mars.init(np.ones(4)), adam.init(np.ones(4))
    param = theirs_param = np.ones(4)
    for grad in grads:
        step = mars.update(grad, ours, param, gamma=0.0, weight_decay=0.1)
        reference = adam.update(grad, theirs, theirs_param, lr=3e-3, beta1=0.95, beta2=0.99, weight_decay=0.1,
                                decoupled_weight_decay=True)
        (param, ours), (theirs_param, theirs) = step[:2], reference[:2]
    np.testing.assert_allclose(param, theirs_param, rtol=1e-14)


@pytest.fixture
def as_the_paper(monkeypatch):
    """Make an oracle divide by sqrt(v_hat) + eps, as the paper and adamlab do: its own divides
    by (sqrt(v + 1e-15) + eps) / sqrt(1 - beta2^t). Its step per tensor (``foreach=False``)
    takes the denominator's root from ``apply_ams_bound``, here given eps * sqrt(1 - beta2^t)."""
    def patch(oracle):
        beta2 = oracle.param_groups[0]["betas"][1]

        def apply_ams_bound(ams_bound, exp_avg_sq, max_exp_avg_sq, eps, exp_avg_sq_eps=1e-15):
            t = oracle.param_groups[0]["step"]
            return exp_avg_sq.sqrt().add_(eps * math.sqrt(1 - beta2 ** t))

        monkeypatch.setattr(BaseOptimizer, "apply_ams_bound", staticmethod(apply_ams_bound))
        return oracle
    return patch


SETTINGS = {
    "default": {},
    "settings": {"lr": 1e-2, "betas": (0.9, 0.95), "gamma": 0.1, "weight_decay": 0.1, "eps": 1e-6},
    "cautious": {"lr": 1e-2, "cautious": True},
}


def oracle(parameters, **kwargs):
    return pytorch_optimizer.MARS(parameters, **kwargs, mars_type="adamw", optimize_1d=True, foreach=False)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_pytorch_optimizers_mars_after_100_steps(as_the_paper, setting, dtype, fused):
    kwargs = SETTINGS[setting]
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.MARS(models[0].parameters(), **kwargs, fused=fused)
    theirs = as_the_paper(oracle(models[1].parameters(), **kwargs))
    train_pair(ours, theirs, models, 100, dtype, spike_at=50)  # the spike's c is clipped to norm 1
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq", "last_grad"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)
        assert ours.state[a]["step"].item() == theirs.param_groups[0]["step"] == 100


def test_the_oracles_own_eps_moves_it_by_less_than_a_thousandth():
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.MARS(models[0].parameters(), **SETTINGS["settings"])
    theirs = oracle(models[1].parameters(), **SETTINGS["settings"])
    train_pair(ours, theirs, models, 100, torch.float64)
    differences = [(a - b).abs().max().item() for a, b in zip(*(model.parameters() for model in models))]
    assert 0 < max(differences) < 1e-3


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_maximize_is_minimizing_the_negated_loss(as_the_paper, fused):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.MARS(models[0].parameters(), lr=1e-2, maximize=True, fused=fused)
    theirs = as_the_paper(oracle(models[1].parameters(), lr=1e-2))
    train_pair(ours, theirs, models, 30, torch.float64, negate_theirs=True)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_the_fused_kernel_runs_by_default_and_agrees_with_the_simple_path_to_its_sums(kernel_calls):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    optimizers = [adamlab.MARS(models[0].parameters(), lr=1e-2, weight_decay=0.1),
                  adamlab.MARS(models[1].parameters(), lr=1e-2, weight_decay=0.1, fused=False)]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 5, Batches(torch.float64))
    assert kernel_calls == ["mars"] * 5
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=0)  # the norm's sum, added in another order


def test_the_compiled_path_matches_the_oracle(monkeypatch, as_the_paper):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.MARS(models[0].parameters(), lr=1e-2, weight_decay=0.1)
    theirs = as_the_paper(oracle(models[1].parameters(), lr=1e-2, weight_decay=0.1))
    train_pair(ours, theirs, models, 20, torch.float64, spike_at=10)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.MARS, lr=1e-2, weight_decay=0.1, gamma=0.1)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("MARS")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (1.0, 0.99)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"eps": -1.0}, "eps must be >= 0"),
    ({"gamma": -0.1}, r"gamma must be >= 0, got -0.1"),
    ({"gamma": float("nan")}, "gamma must be a finite number"),
    ({"weight_decay": float("inf")}, "weight_decay"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.MARS(make_mlp().parameters(), **kwargs)
