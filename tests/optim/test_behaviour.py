"""Every optimizer through the same checks: convergence, checkpoints, odd parameters, torch's tooling."""

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import adamlab

from ..conftest import OPTIMIZER_NAMES, Batches, default_dtype, make_mlp, numbers_dtype, pair, train

#: Settings under which each optimizer solves the two problems below.
SOLVERS = {
    "SGD": dict(lr=1e-3, momentum=0.9),
    "Adagrad": dict(lr=1.0),
    "RMSprop": dict(lr=2e-3),
    "Adam": dict(lr=0.05),
    "AdamW": dict(lr=0.05, weight_decay=0.0),
    "NAdam": dict(lr=0.05),
    # Its first five steps are plain momentum, lr times Rosenbrock's large gradient: a small lr.
    "RAdam": dict(lr=0.01, betas=(0.9, 0.99)),
    "Adamax": dict(lr=0.05),
    # beta2 0.99: its v, of earlier gradients only, follows Rosenbrock's curving valley sooner
    "ADOPT": dict(lr=0.02, betas=(0.9, 0.99)),
    "LaProp": dict(lr=0.02),
    "AdEMAMix": dict(lr=0.02, weight_decay=0.0),
    "StableAdamW": dict(lr=0.05, weight_decay=0.0),
    "MARS": dict(lr=0.02),
    "AdamAtan2": dict(lr=0.05),
    "AdamWScheduleFree": dict(lr=0.02),
    "Prodigy": dict(lr=1.0),
}


def rosenbrock(point):
    x, y = point[0], point[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def minimize(optimizer_class, function, start, steps, **kwargs):
    point = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = optimizer_class([point], **kwargs)
    for _ in range(steps):
        optimizer.zero_grad()
        function(point).backward()
        optimizer.step()
    return point.detach(), function(point).item()


def test_converges_on_a_quadratic(name):
    target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    scales = torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64)
    point, loss = minimize(getattr(adamlab, name), lambda p: (scales * (p - target) ** 2).sum(),
                           [0.0, 0.0, 0.0], 3000, **SOLVERS[name])
    assert loss < 1e-3 * (scales * target**2).sum().item()


def test_converges_on_rosenbrock(name):
    start = [-1.5, 2.0]
    point, loss = minimize(getattr(adamlab, name), rosenbrock, start, 3000, **SOLVERS[name])
    assert loss < rosenbrock(torch.tensor(start)).item() / 250
    assert torch.linalg.vector_norm(point - 1.0) < 0.3


def test_state_dict_round_trip(name):
    model = make_mlp()
    optimizer = getattr(adamlab, name)(model.parameters(), **SOLVERS[name])
    train(model, optimizer, 5)
    saved = optimizer.state_dict()
    fresh = getattr(adamlab, name)(model.parameters())
    fresh.load_state_dict(saved)
    reloaded = fresh.state_dict()
    assert reloaded["param_groups"] == saved["param_groups"]
    for index, state in saved["state"].items():
        assert reloaded["state"][index].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(reloaded["state"][index][key], value)


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(name):
    optimizer_class = getattr(adamlab, name)
    model = make_mlp()
    optimizer = optimizer_class(model.parameters(), **SOLVERS[name])
    train(model, optimizer, 20)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    train(model, optimizer, 20, start=20)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed = make_mlp(seed=99)
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = optimizer_class(resumed.parameters())
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    train(resumed, resumed_optimizer, 20, start=20)
    for original, restored in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(original, restored)


def test_zero_size_parameter(name):
    empty = torch.nn.Parameter(torch.empty(0, 3))
    optimizer = getattr(adamlab, name)([empty], **SOLVERS[name])
    empty.grad = torch.empty(0, 3)
    optimizer.step()
    optimizer.step()
    assert empty.shape == (0, 3)
    assert all(value.shape in ((0, 3), ()) for value in optimizer.state[empty].values())


def test_parameter_without_gradient_is_left_alone(name):
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    optimizer = getattr(adamlab, name)([used, unused], **SOLVERS[name])
    before = optimizer.state_dict()["state"].get(1)
    used.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(unused, torch.ones(3))
    assert not torch.equal(used, torch.ones(3))
    assert optimizer.state_dict()["state"].get(1) == before  # Adagrad's eager state stays as built


def test_closure_is_evaluated_and_its_loss_returned(name):
    point = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = getattr(adamlab, name)([point], **SOLVERS[name])

    def closure():
        optimizer.zero_grad()
        loss = (point**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 4.0
    assert point.item() < 2.0


def test_zero_grad_clears_gradients(name):
    model = make_mlp()
    optimizer = getattr(adamlab, name)(model.parameters())
    train(model, optimizer, 1)
    optimizer.zero_grad()
    assert all(param.grad is None for param in model.parameters())


def test_add_param_group_trains_the_new_group_with_its_own_settings(name):
    first, second = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = getattr(adamlab, name)([first], lr=0.1)
    optimizer.add_param_group({"params": [second], "lr": 0.0})
    first.grad, second.grad = torch.ones(2), torch.ones(2)
    optimizer.step()
    assert optimizer.param_groups[1]["lr"] == 0.0
    assert torch.equal(second, torch.ones(2))
    assert (first < 1).all()


@pytest.mark.parametrize("make_scheduler", [
    lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5),
    # OneCycleLR also cycles momentum (beta1 for Adam) where the optimizer starts with it.
    lambda optimizer: torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, total_steps=10,
        cycle_momentum=type(optimizer).__name__ in ("SGD", "Adam", "AdamW", "NAdam", "RAdam", "Adamax")),
], ids=["StepLR", "OneCycleLR"])
def test_learning_rate_schedulers_drive_it_as_they_drive_torch(name, make_scheduler, float64_numbers):
    results = []
    for optimizer_class in pair(name):
        model = make_mlp(torch.float64)
        optimizer = optimizer_class(model.parameters(), lr=0.01)
        scheduler = make_scheduler(optimizer)
        batches = iter(Batches(torch.float64))
        for _ in range(10):
            inputs, targets = next(batches)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            optimizer.step()
            scheduler.step()
        results.append((optimizer.param_groups[0]["lr"], list(model.parameters())))
    (ours_lr, ours), (torch_lr, theirs) = results
    assert ours_lr == torch_lr
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_bfloat16_keeps_state_in_bfloat16_and_follows_torch(name):
    models = [make_mlp(torch.bfloat16), make_mlp(torch.bfloat16)]
    optimizers = [cls(model.parameters(), lr=0.01) for cls, model in zip(pair(name), models)]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 10, Batches(torch.bfloat16))
    for ours, theirs in zip(*(model.parameters() for model in models)):
        state, torch_state = optimizers[0].state[ours], optimizers[1].state[theirs]
        # the tensors in bfloat16, the numbers (the step, NAdam's mu_product) as torch.optim keeps them
        assert all(value.dtype == (torch_state[key].dtype if key in optimizers[0].scalar_state else torch.bfloat16)
                   for key, value in state.items())
        # Eight bits of mantissa: the two roundings of each formula may differ by an ulp a step.
        torch.testing.assert_close(ours, theirs, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "maximize": True}], ids=["default", "decay"])
def test_complex_parameters_follow_torch(name, kwargs, float64_numbers):
    extra = {"SGD": dict(momentum=0.9, nesterov=True), "RMSprop": dict(centered=True, momentum=0.5),
             "Adam": dict(amsgrad=True)}.get(name, {})
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(4, 3, dtype=torch.complex128, generator=generator)
    grads = [torch.randn(4, 3, dtype=torch.complex128, generator=generator) for _ in range(20)]
    results = []
    for optimizer_class in pair(name):
        param = torch.nn.Parameter(start.clone())
        optimizer = optimizer_class([param], lr=0.01, **kwargs, **extra)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results.append((param, optimizer.state[param]))
    (ours, ours_state), (theirs, torch_state) = results
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=0)
    for key, value in torch_state.items():
        assert ours_state[key].dtype == value.dtype
        torch.testing.assert_close(ours_state[key], value, rtol=1e-10, atol=0)


@pytest.mark.parametrize("direction", ["torch to adamlab", "adamlab to torch"])
def test_a_checkpoint_moves_between_torch_and_adamlab_mid_training(name, direction, float64_numbers):
    ours_class, torch_class = pair(name)
    first, second = (torch_class, ours_class) if direction == "torch to adamlab" else (ours_class, torch_class)
    kwargs = SOLVERS[name] | {"weight_decay": 0.01}
    unbroken_model = make_mlp(torch.float64)
    train(unbroken_model, torch_class(unbroken_model.parameters(), **kwargs), 40)

    model = make_mlp(torch.float64)
    optimizer = first(model.parameters(), **kwargs)
    train(model, optimizer, 20)
    switched = second(model.parameters(), **kwargs)
    switched.load_state_dict(optimizer.state_dict())
    train(model, switched, 20, start=20)
    for a, b in zip(model.parameters(), unbroken_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_adamw_without_weight_decay_is_adam():
    models = [make_mlp(), make_mlp()]
    train(models[0], adamlab.Adam(models[0].parameters(), lr=0.01), 30)
    train(models[1], adamlab.AdamW(models[1].parameters(), lr=0.01, weight_decay=0.0), 30)
    for a, b in zip(*(model.parameters() for model in models)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_capturable_keeps_the_step_on_the_parameter_device_and_changes_no_result(name):
    results = []
    for capturable in (False, True):
        model = make_mlp(torch.float64)
        optimizer = getattr(adamlab, name)(model.parameters(), lr=torch.tensor(0.01, dtype=torch.float64),
                                           capturable=capturable)
        train(model, optimizer, 10)
        step = optimizer.state[next(model.parameters())]["step"]
        assert step.device == next(model.parameters()).device and step.item() == 10
        results.append(list(model.parameters()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_a_tensor_learning_rate_can_be_changed_in_place():
    point = torch.nn.Parameter(torch.tensor([1.0]))
    lr = torch.tensor(0.5)
    optimizer = adamlab.SGD([point], lr=lr)
    lr.fill_(0.0)  # the group holds the caller's tensor, as torch.optim's does
    point.grad = torch.tensor([1.0])
    optimizer.step()
    assert point.item() == 1.0


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(OPTIMIZER_NAMES),
       torch_steps=st.integers(0, 8), adamlab_steps=st.integers(1, 8), amsgrad=st.booleans())
def test_state_moved_torch_to_adamlab_to_torch_continues_identically(name, torch_steps, adamlab_steps, amsgrad):
    with default_dtype(numbers_dtype(name)):
        _move_state_torch_to_adamlab_to_torch(name, torch_steps, adamlab_steps, amsgrad)


def _move_state_torch_to_adamlab_to_torch(name, torch_steps, adamlab_steps, amsgrad):
    ours_class, torch_class = pair(name)
    kwargs = dict(lr=0.01, weight_decay=0.01) | (dict(amsgrad=amsgrad) if name in ("Adam", "AdamW") else {})
    kwargs |= dict(momentum=0.9) if name in ("SGD", "RMSprop") else {}
    total = torch_steps + adamlab_steps + 5
    unbroken = make_mlp(torch.float64)
    train(unbroken, torch_class(unbroken.parameters(), **kwargs), total)

    model = make_mlp(torch.float64)
    legs = [(torch_class, torch_steps), (ours_class, adamlab_steps), (torch_class, 5)]
    state, done = None, 0
    for optimizer_class, steps in legs:
        optimizer = optimizer_class(model.parameters(), **kwargs)
        if state is not None:
            optimizer.load_state_dict(state)
        train(model, optimizer, steps, start=done)
        state, done = optimizer.state_dict(), done + steps
    for a, b in zip(model.parameters(), unbroken.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_step_hooks_fire_and_the_optimizer_deep_copies(name):
    model = make_mlp()
    optimizer = getattr(adamlab, name)(model.parameters(), lr=0.01)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    train(model, optimizer, 2)
    assert calls == ["pre", "post", "pre", "post"]
    twin_model, twin = copy.deepcopy((model, optimizer))  # one copy, so the twin keeps its own parameters
    train(model, optimizer, 3, start=2)
    train(twin_model, twin, 3, start=2)
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


def test_adagrad_shares_its_accumulators():
    optimizer = adamlab.Adagrad(make_mlp().parameters())
    optimizer.share_memory()
    assert all(state["sum"].is_shared() for state in optimizer.state.values())


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_grad_scaler_skips_a_step_with_inf_gradients_and_leaves_the_state_alone(name, fused):
    model = make_mlp()
    optimizer = getattr(adamlab, name)(model.parameters(), lr=0.01, fused=fused)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    batches = iter(Batches())

    def scaled_step(poison):
        inputs, targets = next(batches)
        optimizer.zero_grad()
        scaler.scale(torch.nn.functional.mse_loss(model(inputs), targets)).backward()
        if poison:
            next(model.parameters()).grad[0, 0] = float("inf")
        scaler.step(optimizer)
        scaler.update()

    scaled_step(poison=False)
    params = [param.detach().clone() for param in model.parameters()]
    state = copy.deepcopy(optimizer.state_dict())
    scaled_step(poison=True)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), params))
    for index, values in state["state"].items():
        for key, value in values.items():
            assert torch.equal(optimizer.state_dict()["state"][index][key], value), key
    assert scaler.get_scale() == 512.0  # the scaler backed off
    scaled_step(poison=False)
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), params))


def test_sgd_momentum_on_a_parameter_the_kernel_cannot_take_starts_from_the_gradient():
    strided = torch.nn.Parameter(torch.ones(4, 4)[:, ::2])
    optimizer = adamlab.SGD([strided], lr=0.1, momentum=0.9)
    strided.grad = torch.ones(4, 2)
    optimizer.step()  # the simple path, with no half-made buffer left behind by the fused one
    assert torch.equal(optimizer.state[strided]["momentum_buffer"], torch.ones(4, 2))
    assert torch.allclose(strided, torch.full((4, 2), 0.9))


def _drop_a_gradient(model, optimizer):
    model[0].bias.grad = None


def _replace_a_state_tensor(model, optimizer):
    for state in optimizer.state.values():
        for key, value in state.items():
            state[key] = value.clone()


def _replace_a_parameters_state(model, optimizer):
    param = model[2].weight
    if param in optimizer.state:
        optimizer.state[param] = {key: value.clone() for key, value in optimizer.state[param].items()}


def _replace_a_parameter_storage(model, optimizer):
    model[0].weight.data = model[0].weight.data.clone()


def _transpose_a_gradient(model, optimizer):
    grad = model[0].weight.grad
    model[0].weight.grad = grad.t().contiguous().t()  # same values, column-major


def _reload_an_older_checkpoint(model, optimizer):
    optimizer.load_state_dict(optimizer.checkpoint)


def _change_the_hyperparameters(model, optimizer):
    for group in optimizer.param_groups:
        group["lr"] *= 0.5
        if isinstance(optimizer, (adamlab.SGD, torch.optim.SGD)):  # its momentum buffer is born late
            group["momentum"] = 0.5


@pytest.mark.parametrize("change", [_drop_a_gradient, _replace_a_state_tensor, _replace_a_parameters_state,
                                    _replace_a_parameter_storage,
                                    _transpose_a_gradient, _reload_an_older_checkpoint,
                                    _change_the_hyperparameters])
def test_what_changes_between_steps_is_seen_as_torch_sees_it(name, change, float64_numbers):
    """The fused path keeps what it worked out about a group between steps; every change a
    training script can make there must still reach the next step."""
    ours_class, torch_class = pair(name)
    kwargs = SOLVERS[name] | ({"momentum": 0.0} if name in ("SGD", "RMSprop") else {})
    models, states = [], []
    for optimizer_class in (ours_class, torch_class):
        model = make_mlp(torch.float64)
        optimizer = optimizer_class(model.parameters(), **kwargs)
        batches = iter(Batches(torch.float64))
        for step in range(8):
            inputs, targets = next(batches)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            if step == 2:
                optimizer.checkpoint = copy.deepcopy(optimizer.state_dict())
            if step in (4, 5):
                change(model, optimizer)
            optimizer.step()
        models.append(model)
        states.append(optimizer.state_dict()["state"])
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
    torch.testing.assert_close(states[0], states[1], rtol=1e-10, atol=0)


#: The checks above that need no torch.optim class: the optimizers torch.optim lacks (ADOPT,
#: LaProp, AdEMAMix, StableAdamW) run them by name from their own test files.
WITHOUT_TORCH = [test_converges_on_a_quadratic, test_converges_on_rosenbrock, test_state_dict_round_trip,
                 test_resume_from_a_checkpoint_equals_an_uninterrupted_run, test_zero_size_parameter,
                 test_parameter_without_gradient_is_left_alone, test_closure_is_evaluated_and_its_loss_returned,
                 test_zero_grad_clears_gradients, test_add_param_group_trains_the_new_group_with_its_own_settings]


def check_name(check) -> str:
    return check.__name__.removeprefix("test_")
