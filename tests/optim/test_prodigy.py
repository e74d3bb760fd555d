"""Prodigy: its estimate of d, the authors' prodigyopt.Prodigy as the oracle, one tensor's maths
against the class, and the checks every optimizer passes."""

import numpy as np
import prodigyopt
import pytest
import torch

import adamlab
from adamlab.maths import prodigy

from ..conftest import assert_a_checkpoint_resumes_exactly, make_mlp, train, train_pair
from . import test_behaviour as behaviour


def test_d_grows_from_d0_to_the_scale_of_the_distance_to_travel():
    # a quadratic whose minimum is 3 away: d climbs from 1e-6 by orders of magnitude
    param, state = np.zeros(4), prodigy.init(np.zeros(4))
    for _ in range(200):
        param, state, _ = prodigy.update(2 * (param - 1.5), state, param)
    assert 0.1 < state.d < 10 and state.d == state.d_max
    assert np.linalg.norm(param - 1.5) < 0.1


def test_a_zero_gradient_so_far_moves_nothing_and_does_not_count():
    state = prodigy.init(np.ones(3))
    step = prodigy.update(np.zeros(3), state, np.ones(3), weight_decay=0.1)
    assert np.all(step.param == 1) and step.state.step == 0 and step.state.d == 1e-6


SETTINGS = {
    "default": {},
    "settings": {"weight_decay": 0.1, "use_bias_correction": True, "safeguard_warmup": True, "growth_rate": 1.05,
                 "d_coef": 2.0, "betas": (0.8, 0.99), "eps": 1e-6},
    "l2": {"weight_decay": 0.1, "decouple": False, "beta3": 0.9, "d0": 1e-4},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_the_authors_prodigy_after_100_steps(setting, dtype):
    models = [make_mlp(dtype), make_mlp(dtype)]
    ours = adamlab.Prodigy(models[0].parameters(), **SETTINGS[setting])
    theirs = prodigyopt.Prodigy(models[1].parameters(), **SETTINGS[setting])
    train_pair(ours, theirs, models, 100, dtype)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)
        torch.testing.assert_close(ours.state[a]["s"].flatten(), theirs.state[b]["s"], **tolerance)  # theirs flat
    for key in ("d", "d_max", "d_numerator", "k"):
        assert ours.param_groups[0][key] == pytest.approx(theirs.param_groups[0][key], rel=tolerance["rtol"])
    assert ours.param_groups[0]["d"] > 100 * ours.param_groups[0]["d0"]  # it found a step size


def test_maximize_is_minimizing_the_negated_loss():
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    ours = adamlab.Prodigy(models[0].parameters(), maximize=True)
    theirs = prodigyopt.Prodigy(models[1].parameters())
    # 15 steps: climbing, d grows without bound and magnifies the last bits' differences
    train_pair(ours, theirs, models, 15, torch.float64, negate_theirs=True)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_one_tensors_maths_takes_the_class_step():
    param = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    optimizer = adamlab.Prodigy([param], weight_decay=0.1)
    reference, state = param.detach().numpy().copy(), prodigy.init(param.detach().numpy())
    for grad in np.random.default_rng(0).standard_normal((20, 5)):
        param.grad = torch.from_numpy(grad)
        optimizer.step()
        reference, state, _ = prodigy.update(grad, state, reference, weight_decay=0.1)
    np.testing.assert_allclose(param.detach().numpy(), reference, rtol=1e-12)
    assert optimizer.param_groups[0]["d"] == pytest.approx(state.d, rel=1e-12)


def test_groups_share_one_lr_or_are_frozen_and_a_refused_step_changes_nothing():
    model = make_mlp()
    optimizer = adamlab.Prodigy([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.0}])
    frozen = [param.detach().clone() for param in model[2].parameters()]
    train(model, optimizer, 5)
    assert all(torch.equal(a, b) for a, b in zip(model[2].parameters(), frozen))
    optimizer.param_groups[1]["lr"] = 0.5
    state = str(optimizer.state_dict())
    with pytest.raises(ValueError, match="parameter group 1 has lr 0.5, another 1.0"):
        train(model, optimizer, 1)
    assert str(optimizer.state_dict()) == state and all(torch.equal(a, b) for a, b in zip(model[2].parameters(), frozen))


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.Prodigy, weight_decay=0.1, d_coef=0.5)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("Prodigy")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"beta3": 1.0}, r"beta3 must be in \[0, 1\), or None \(sqrt\(beta2\)\), got 1.0"),
    ({"d0": 0.0}, "d0 must be > 0, finite, got 0.0"),
    ({"d_coef": float("inf")}, "d_coef must be > 0, finite"),
    ({"growth_rate": 0.5}, r"growth_rate must be >= 1 \(inf: no limit\), got 0.5"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"fused": True}, "Prodigy has no fused step"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.Prodigy(make_mlp().parameters(), **kwargs)
