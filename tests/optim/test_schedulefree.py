"""AdamWScheduleFree: x as the average of the z's, the authors' schedulefree.AdamWScheduleFree as
the oracle (through train() and eval()), modes and checkpoints, and the checks every optimizer
passes."""

import copy

import numpy as np
import pytest
import schedulefree as oracle
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import schedulefree

from ..conftest import default_dtype, make_mlp, train, train_pair
from . import test_behaviour as behaviour


def test_x_is_the_average_of_the_iterates_at_a_constant_learning_rate():
    rng = np.random.default_rng(0)
    state, y, iterates = schedulefree.init(np.zeros(3)), np.zeros(3), []
    for _ in range(6):
        y, state, _ = schedulefree.update(rng.standard_normal(3), state, y, lr=0.1)
        iterates.append(state.z)
    np.testing.assert_allclose(schedulefree.to_x(y, state.z, 0.9), np.mean(iterates, axis=0), rtol=1e-12)
    np.testing.assert_allclose(schedulefree.to_y(schedulefree.to_x(y, state.z, 0.9), state.z, 0.9), y, rtol=1e-12)


def test_warmup_raises_lr_linearly_and_a_zero_lr_moves_nothing():
    state = schedulefree.init(np.zeros(2))
    step = schedulefree.update(np.ones(2), state, np.zeros(2), lr=0.1, warmup_steps=4)
    assert step.quantities["lr_t"] == pytest.approx(0.025)
    still = schedulefree.update(np.ones(2), state, np.zeros(2), lr=0.0)
    assert np.all(still.param == 0) and still.quantities["c"] == 0


SETTINGS = {
    "default": {"lr": 1e-2},
    "settings": {"lr": 2e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "warmup_steps": 20, "r": 0.5,
                 "weight_lr_power": 1.0},
}


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_the_authors_adamw_schedulefree_through_train_and_eval(setting, dtype, fused):
    kwargs = SETTINGS[setting]
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    with default_dtype(dtype):  # the weights' sum is kept as the step is: float64 here
        models = [make_mlp(dtype), make_mlp(dtype)]
        ours = adamlab.AdamWScheduleFree(models[0].parameters(), **kwargs, fused=fused)
        theirs = oracle.AdamWScheduleFree(models[1].parameters(), **kwargs, foreach=False)
        ours.train(), theirs.train()
        train_pair(ours, theirs, models, 60, dtype)
        ours.eval(), theirs.eval()  # the parameters become x: compared there too
        for a, b in zip(*(model.parameters() for model in models)):
            torch.testing.assert_close(a, b, **tolerance)
        ours.train(), theirs.train()
        train_pair(ours, theirs, models, 40, dtype)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("z", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[a][key], theirs.state[b][key], **tolerance)
        assert ours.state[a]["step"].item() == theirs.param_groups[0]["k"] == 100
        assert ours.state[a]["weight_sum"].item() == pytest.approx(theirs.param_groups[0]["weight_sum"], rel=1e-6)


def test_the_fused_kernel_runs_by_default_and_equals_the_simple_path_bit_for_bit(kernel_calls):
    models = [make_mlp(), make_mlp()]
    optimizers = [adamlab.AdamWScheduleFree(models[0].parameters(), weight_decay=0.1, warmup_steps=3),
                  adamlab.AdamWScheduleFree(models[1].parameters(), weight_decay=0.1, warmup_steps=3, fused=False)]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 5)
    assert kernel_calls == ["schedulefree"] * 5
    for a, b in zip(*(model.parameters() for model in models)):
        assert torch.equal(a, b)


def test_the_compiled_path_matches_the_oracle(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    with default_dtype(torch.float64):
        models = [make_mlp(torch.float64), make_mlp(torch.float64)]
        ours = adamlab.AdamWScheduleFree(models[0].parameters(), lr=1e-2, warmup_steps=5)
        theirs = oracle.AdamWScheduleFree(models[1].parameters(), lr=1e-2, warmup_steps=5, foreach=False)
        theirs.train()
        train_pair(ours, theirs, models, 20, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


def test_a_step_in_eval_mode_is_refused_and_changes_nothing():
    model = make_mlp()
    optimizer = adamlab.AdamWScheduleFree(model.parameters())
    train(model, optimizer, 2)
    optimizer.eval()
    before = [param.detach().clone() for param in model.parameters()]
    state = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match="parameter group 0 is in eval mode .* call optimizer.train"):
        train(model, optimizer, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    assert str(optimizer.state_dict()) == str(state)
    optimizer.eval()  # a second eval() moves nothing
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))


def test_a_checkpoint_saved_in_eval_mode_resumes_exactly_and_keeps_its_mode(tmp_path):
    model = make_mlp()
    optimizer = adamlab.AdamWScheduleFree(model.parameters(), lr=1e-2, warmup_steps=4)
    train(model, optimizer, 10)
    optimizer.eval()  # the authors' advice: save x
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "checkpoint.pt")
    saved = torch.load(tmp_path / "checkpoint.pt")
    twin_model = make_mlp(seed=7)
    twin_model.load_state_dict(saved["model"])
    twin = adamlab.AdamWScheduleFree(twin_model.parameters())
    twin.load_state_dict(saved["optimizer"])
    assert twin.param_groups[0]["train_mode"] is False and twin.param_groups[0]["warmup_steps"] == 4
    for each_model, each in ((model, optimizer), (twin_model, twin)):
        each.train()
        train(each_model, each, 10, start=10)
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("check", behaviour.WITHOUT_TORCH, ids=behaviour.check_name)
def test_what_every_optimizer_does(check):
    check("AdamWScheduleFree")


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (0.0, 0.99)}, r"betas\[0\] must be in \(0, 1\)"),
    ({"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0, 1\)"),
    ({"warmup_steps": -1}, "warmup_steps must be a whole number >= 0, got -1"),
    ({"warmup_steps": 2.5}, "warmup_steps must be"),
    ({"r": float("nan")}, "r must be a finite number >= 0"),
    ({"weight_lr_power": -2.0}, "weight_lr_power must be a finite number >= 0"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.AdamWScheduleFree(make_mlp().parameters(), **kwargs)
