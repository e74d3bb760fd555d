"""Bad input raises an error that names what is wrong, and changes nothing."""

import copy

import pytest
import torch

import adamlab

from ..conftest import make_mlp, train


def params():
    return [torch.nn.Parameter(torch.ones(2, 2))]


BAD_ARGUMENTS = [
    ("SGD", dict(lr=-0.1), ValueError, r"lr must be >= 0, got -0\.1"),
    ("SGD", dict(lr=float("nan")), ValueError, r"lr must be a finite number >= 0, got nan"),
    ("Adam", dict(lr=float("inf")), ValueError, r"lr must be a finite number >= 0, got inf"),
    ("Adam", dict(eps=torch.tensor(float("inf"))), ValueError, r"eps must be a finite number >= 0, got inf"),
    ("Adafactor", dict(beta2_decay=float("-inf")), ValueError, r"beta2_decay must be a finite number <= 0, got -inf"),
    ("SGD", dict(lr="0.1"), TypeError, r"lr must be a real number, got str"),
    ("SGD", dict(lr=torch.tensor([0.1, 0.2])), ValueError, r"lr must be a number or a one-element tensor"),
    ("SGD", dict(momentum=-0.9), ValueError, r"momentum must be >= 0, got -0\.9"),
    ("SGD", dict(dampening=1.5), ValueError, r"dampening must be in \[0, 1\], got 1\.5"),
    ("SGD", dict(weight_decay=-1e-4), ValueError, r"weight_decay must be >= 0, got -0\.0001"),
    ("SGD", dict(nesterov=True), ValueError, r"nesterov=True needs momentum > 0 and dampening == 0"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, r"nesterov=True needs"),
    ("Adagrad", dict(lr_decay=-0.1), ValueError, r"lr_decay must be >= 0, got -0\.1"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), ValueError,
     r"initial_accumulator_value must be >= 0, got -1\.0"),
    ("Adagrad", dict(eps=-1e-10), ValueError, r"eps must be >= 0, got -1e-10"),
    ("RMSprop", dict(alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1\.5"),
    ("RMSprop", dict(alpha=-0.5), ValueError, r"alpha must be in \[0, 1\], got -0\.5"),
    ("RMSprop", dict(momentum=-0.1), ValueError, r"momentum must be >= 0"),
    ("RMSprop", dict(eps=-1.0), ValueError, r"eps must be >= 0"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be in \[0, 1\), got 1\.0"),
    ("Adam", dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\] must be in \[0, 1\), got -0\.1"),
    ("Adam", dict(betas=(0.9,)), ValueError, r"betas must be a pair \(beta1, beta2\)"),
    ("Adam", dict(betas=(0.9, torch.tensor(1.5))), ValueError, r"betas\[1\] must be in \[0, 1\), got 1\.5"),
    ("Adam", dict(eps=-1e-8), ValueError, r"eps must be >= 0, got -1e-08"),
    ("Adam", dict(weight_decay=-0.1), ValueError, r"weight_decay must be >= 0"),
    ("AdamW", dict(lr=-1e-3), ValueError, r"lr must be >= 0"),
    ("AdamW", dict(weight_decay=-0.01), ValueError, r"weight_decay must be >= 0, got -0\.01"),
    ("Adam", dict(foreach=True), ValueError, r"adamlab\.Adam has no foreach implementation"),
    ("SGD", dict(differentiable=True), ValueError, r"adamlab\.SGD does not support differentiable=True"),
    ("RMSprop", dict(foreach=True), ValueError, r"adamlab\.RMSprop has no foreach implementation"),
    ("NAdam", dict(momentum_decay=-4e-3), ValueError, r"momentum_decay must be >= 0, got -0\.004"),
    ("NAdam", dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\), got 1\.0"),
    ("NAdam", dict(differentiable=True), ValueError, r"adamlab\.NAdam does not support differentiable=True"),
    ("RAdam", dict(eps=-1e-8), ValueError, r"eps must be >= 0, got -1e-08"),
    ("RAdam", dict(weight_decay=-0.1, decoupled_weight_decay=True), ValueError, r"weight_decay must be >= 0"),
    ("Adamax", dict(lr=-2e-3), ValueError, r"lr must be >= 0, got -0\.002"),
    ("Adamax", dict(betas=(-0.1, 0.999)), ValueError, r"betas\[0\] must be in \[0, 1\), got -0\.1"),
    ("Adamax", dict(foreach=True), ValueError, r"adamlab\.Adamax has no foreach implementation"),
]


@pytest.mark.parametrize("name, kwargs, error, message", BAD_ARGUMENTS,
                         ids=[f"{n}-{','.join(k)}-{i}" for i, (n, k, _, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_hyperparameter_is_rejected_at_construction(name, kwargs, error, message):
    with pytest.raises(error, match=message):
        getattr(adamlab, name)(params(), **kwargs)


def test_fused_true_refuses_a_parameter_no_fused_step_can_take_before_any_change():
    meta = torch.nn.Parameter(torch.ones(4, 2, device="meta"))  # no fused step runs on the meta device
    plain = torch.nn.Parameter(torch.ones(3))
    optimizer = adamlab.Adam([plain, meta], fused=True)
    plain.grad, meta.grad = torch.ones(3), torch.ones(4, 2, device="meta")
    # a RuntimeError, as torch's, and a ValueError, as adamlab's other refusals
    for error in (RuntimeError, ValueError):
        with pytest.raises(error, match=r"adamlab\.Adam\(fused=True\) cannot take parameter 1 of group 0 "
                                        r"\(shape \(4, 2\), float32 on meta\): no fused step runs on this device"):
            optimizer.step()
    assert torch.equal(plain, torch.ones(3)) and not optimizer.state


def test_add_param_group_validates_and_leaves_the_groups_alone():
    optimizer = adamlab.Adam(params())
    with pytest.raises(ValueError, match=r"betas\[0\] must be in \[0, 1\)"):
        optimizer.add_param_group({"params": params(), "betas": (2.0, 0.9)})
    with pytest.raises(ValueError, match="has no foreach implementation"):
        optimizer.add_param_group({"params": params(), "foreach": True})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam", "Adamax"])
def test_sparse_gradients_raise_naming_the_optimizer_before_any_change(name):
    dense, sparse = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = getattr(adamlab, name)([dense, sparse], lr=0.1)
    dense.grad = torch.ones(3)
    sparse.grad = torch.ones(3).to_sparse()
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(RuntimeError, match=rf"adamlab\.{name} does not support sparse gradients"):
        optimizer.step()
    assert torch.equal(dense, torch.ones(3))
    assert_same_state_dict(optimizer.state_dict(), before)


def assert_same_state_dict(actual, expected):
    assert actual["param_groups"] == expected["param_groups"]
    assert actual["state"].keys() == expected["state"].keys()
    for index, state in expected["state"].items():
        assert actual["state"][index].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(actual["state"][index][key], value)


def trained_adam():
    model = make_mlp()
    optimizer = adamlab.Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 3)
    return model, optimizer


def _other_model_state():
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    model[0] = torch.nn.Linear(8, 5)  # same count of tensors, transposed shapes
    optimizer = adamlab.Adam(model.parameters())
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    return optimizer.state_dict()


def _sgd_state():
    model = make_mlp()
    optimizer = adamlab.SGD(model.parameters(), momentum=0.9)
    train(model, optimizer, 1)
    return optimizer.state_dict()


def _with(state_dict, change):
    state_dict = copy.deepcopy(state_dict)
    change(state_dict)
    return state_dict


BAD_STATE_DICTS = {
    "not a state_dict": (lambda good: [1, 2, 3], r"expects a mapping with 'state' and 'param_groups'"),
    "two groups": (lambda good: _with(good, lambda s: s["param_groups"].append(dict(s["param_groups"][0]))),
                   r"the state_dict has 2 parameter groups, this adamlab\.Adam has 1"),
    "group size": (lambda good: _with(good, lambda s: s["param_groups"][0]["params"].pop()),
                   r"parameter group 0 has 3 parameters in the state_dict, 4 in this adamlab\.Adam"),
    "other model": (lambda good: _other_model_state(),
                    r"state 'exp_avg' of parameter 0 of group 0 has shape \(5, 8\), the parameter has shape \(8, 5\)"),
    "other optimizer": (lambda good: _sgd_state(),
                        r"the state of parameter 0 of group 0 has keys \['momentum_buffer'\]"),
    "missing key": (lambda good: _with(good, lambda s: s["state"][2].pop("exp_avg_sq")),
                    r"the state of parameter 2 of group 0 has keys \['exp_avg', 'step'\]"),
    "bad hyperparameter": (lambda good: _with(good, lambda s: s["param_groups"][0].update(lr=-1.0)),
                           r"lr must be >= 0, got -1\.0"),
    "unknown parameter": (lambda good: _with(good, lambda s: s["state"].update({17: s["state"][0]})),
                          r"state for parameter id 17, which none of its parameter groups lists"),
}


@pytest.mark.parametrize("make_bad, message", BAD_STATE_DICTS.values(), ids=BAD_STATE_DICTS.keys())
def test_a_mismatched_state_dict_raises_and_changes_nothing(make_bad, message):
    model, optimizer = trained_adam()
    before = copy.deepcopy(optimizer.state_dict())
    bad = make_bad(optimizer.state_dict())
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(bad)
    assert_same_state_dict(optimizer.state_dict(), before)
    train(model, optimizer, 1)  # and it still trains
