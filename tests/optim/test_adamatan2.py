"""AdamAtan2: a step by hand, adam-atan2-pytorch's AdamAtan2 as the oracle, and the checks every
optimizer passes."""

import math

import numpy as np
import pytest
import torch
from adam_atan2_pytorch import AdamAtan2 as Oracle

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import adamatan2, ops

from ..conftest import (assert_a_checkpoint_resumes_exactly, assert_the_fused_step_is_the_simple_paths_bit_for_bit,
                        make_mlp, train_pair)
from . import test_behaviour as behaviour


def test_the_first_step_by_hand_is_a_times_a_quarter_turn_of_the_gradients_sign():
    # t = 1: m_hat = g, v_hat = g^2, so the angle is atan2(g, |g|) = pi/4 sign(g)
    step = adamatan2.update(np.array([3.0, -0.5]), adamatan2.init(np.zeros(2)), np.zeros(2), lr=0.1)
    np.testing.assert_allclose(step.param, [-0.1 * 1.27 * math.pi / 4, 0.1 * 1.27 * math.pi / 4], rtol=1e-15)


def test_a_zero_second_moment_needs_no_epsilon():
    state = adamatan2.State(3, np.array([0.0, 1e-30]), np.zeros(2))
    step = adamatan2.update(np.zeros(2), state, np.zeros(2))
    assert np.all(np.isfinite(step.param)) and step.quantities["angle"][1] == pytest.approx(math.pi / 2)


def test_scaling_the_gradients_leaves_the_steps_alone():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((5, 4))
    finals = []
    for scale in (1.0, 1e-6):
        state, param = adamatan2.init(np.zeros(4)), np.zeros(4)
        for grad in grads:
            param, state, _ = adamatan2.update(grad * scale, state, param, lr=0.1)
        finals.append(param)
    np.testing.assert_allclose(finals[1], finals[0], rtol=1e-9)


SETTINGS = {
    "default": ({"lr": 1e-3}, {"lr": 1e-3}),
    "settings": ({"lr": 3e-3, "betas": (0.8, 0.95), "weight_decay": 0.1, "a": 1.0, "b": 2.0},
                 {"lr": 3e-3, "betas": (0.8, 0.95), "weight_decay": 0.1, "a": 1.0, "b": 2.0}),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_adam_atan2_pytorchs_adamatan2_after_100_steps(setting, dtype):
    ours_kwargs, theirs_kwargs = SETTINGS[setting]
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.AdamAtan2(models[0].parameters(), **ours_kwargs)
    theirs = Oracle(models[1].parameters(), **theirs_kwargs)
    train_pair(ours, theirs, models, 100, dtype)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)
        assert ours.state[a]["step"].item() == theirs.state[b]["steps"] == 100


def test_maximize_is_minimizing_the_negated_loss():
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.AdamAtan2(models[0].parameters(), lr=1e-3, maximize=True)
    theirs = Oracle(models[1].parameters(), lr=1e-3)
    train_pair(ours, theirs, models, 30, torch.float64, negate_theirs=True)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_the_compiled_path_matches_the_oracle(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.AdamAtan2(models[0].parameters(), lr=1e-3, weight_decay=0.1)
    theirs = Oracle(models[1].parameters(), lr=1e-3, weight_decay=0.1)
    train_pair(ours, theirs, models, 20, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_the_fused_kernel_runs_by_default_and_equals_the_simple_path_bit_for_bit(kernel_calls, dtype):
    """(The cautious mask's count sums in another precision: tests/optim/test_cautious.py.)"""
    assert_the_fused_step_is_the_simple_paths_bit_for_bit(adamlab.AdamAtan2, kernel_calls, "adamatan2", dtype,
                                                          lr=1e-2, weight_decay=0.1)


def test_the_angle_is_within_3e_16_of_the_exact_one_in_every_octant():
    """ops.atan2 is arithmetic, so that every backend rounds it alike; held here to NumPy's."""
    generator = np.random.default_rng(0)
    y = np.concatenate([generator.standard_normal(100_000) * 10.0 ** generator.integers(-30, 30, 100_000),
                        [0.0, 1.0, -1.0, 0.0, 3.0, -2.0, 1e-300, np.tan(np.pi / 8)]])
    x = np.concatenate([generator.standard_normal(100_000) * 10.0 ** generator.integers(-30, 30, 100_000),
                        [0.0, 0.0, 0.0, 1.0, 3.0, -2.0, 1.0, 1.0]])
    exact = np.arctan2(y, x)
    np.testing.assert_allclose(ops.atan2(y, x), exact, rtol=3e-16, atol=0)
    assert np.isnan(ops.atan2(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))).all()
    # float32 on torch: within two of float32's ulps of the exact angle
    y32, x32 = torch.tensor(y, dtype=torch.float32), torch.tensor(x, dtype=torch.float32)
    exact32 = np.arctan2(y32.double().numpy(), x32.double().numpy())
    np.testing.assert_allclose(ops.atan2(y32, x32).double().numpy(), exact32, rtol=2.4e-7, atol=1e-38)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.AdamAtan2, lr=1e-3, weight_decay=0.1, a=1.1)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("AdamAtan2")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"a": 0.0}, "a must be a finite number > 0, got 0.0"),
    ({"b": float("inf")}, "b must be a finite number > 0"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.AdamAtan2(make_mlp().parameters(), **kwargs)
