"""The GPU's fused step (the maths compiled by torch.compile), run here on the CPU.

On a GPU inductor turns the traced maths into Triton kernels; on the CPU it turns the same
graph into C++. Routing CPU parameters through that path tests everything but the code
generator, on machines without a GPU; the last test runs it on CUDA where there is one.
"""

import pytest
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.optim import base

from ..conftest import Batches, default_dtype, make_mlp, pair

CASES = [
    pytest.param("Adam", dict(lr=0.01, weight_decay=0.01, amsgrad=True), id="Adam-amsgrad-decay"),
    pytest.param("Adam", dict(lr=torch.tensor(0.01), maximize=True, capturable=True), id="Adam-capturable"),
    pytest.param("AdamW", dict(lr=0.01, weight_decay=0.1), id="AdamW"),
    pytest.param("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01), id="SGD-nesterov"),
    pytest.param("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), id="Adagrad"),
    pytest.param("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.01), id="RMSprop-centered"),
]
#: CPU parameters sent down the compiled path, and the GPU's own where this machine has one.
DEVICES_HERE = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=0.0)}


@pytest.fixture
def calls(monkeypatch):
    """Send CPU parameters down the compiled path; the list collects the parameters of each call."""
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    seen = []
    update = compiled.update

    def spy(maths, names, params, *args):
        seen.append(len(params))
        return update(maths, names, params, *args)

    monkeypatch.setattr(compiled, "update", spy)
    return seen


def own_copy(kwargs, dtype):
    """The case's arguments with its own tensor learning rate, in the run's precision: the
    schedule writes into that tensor."""
    return {key: value.to(dtype, copy=True) if isinstance(value, torch.Tensor) else value
            for key, value in kwargs.items()}


def train_with_schedule(model, optimizer, steps, dtype):
    """Steps under a schedule that changes the learning rate every step."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + 0.1 * step))
    batches = iter(Batches(dtype))
    device = next(model.parameters()).device
    for _ in range(steps):
        inputs, targets = (tensor.to(device) for tensor in next(batches))
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("device", DEVICES_HERE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_torch_under_a_schedule(name, kwargs, dtype, device, calls):
    ours_class, torch_class = pair(name)
    # torch.optim runs capturable mode on accelerators only; it changes no maths.
    torch_kwargs = {key: value for key, value in kwargs.items() if key != "capturable" or device != "cpu"}
    models = [make_mlp(dtype).to(device), make_mlp(dtype).to(device)]
    optimizers = [ours_class(models[0].parameters(), **own_copy(kwargs, dtype)),
                  torch_class(models[1].parameters(), **own_copy(torch_kwargs, dtype))]
    for model, optimizer in zip(models, optimizers):
        train_with_schedule(model, optimizer, 30, dtype)
    # Every step but SGD's first, whose momentum buffer is born from the gradient on the simple path.
    assert calls == [4] * (29 if name == "SGD" else 30)
    for ours, theirs in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(ours, theirs, **TOLERANCES[dtype])
        ours_state, torch_state = optimizers[0].state[ours], optimizers[1].state[theirs]
        assert list(ours_state) == list(torch_state)
        for key, value in torch_state.items():
            assert ours_state[key].device == value.device, key
            torch.testing.assert_close(ours_state[key], value, **TOLERANCES[dtype], msg=key)


def test_a_changing_learning_rate_or_betas_never_compiles_again(calls):
    model = make_mlp()
    optimizer = adamlab.AdamW(model.parameters(), lr=0.01)
    train_with_schedule(model, optimizer, 1, torch.float32)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for step in range(1, 6):
            optimizer.param_groups[0]["betas"] = (0.9 - 0.01 * step, 0.999 - 0.001 * step)
            train_with_schedule(model, optimizer, 1, torch.float32)
    assert len(calls) == 6


def test_odd_parameters_follow_torch(calls):
    """Zero-size, complex and gradient-less parameters beside an ordinary one."""
    generator = torch.Generator().manual_seed(5)
    start = [torch.randn(3, 2, dtype=torch.float64, generator=generator),
             torch.empty(0, 4, dtype=torch.float64),
             torch.randn(2, 2, dtype=torch.complex128, generator=generator),
             torch.randn(2, dtype=torch.float64, generator=generator)]
    grads = [[torch.randn_like(tensor) for tensor in start[:3]] for _ in range(10)]
    results = []
    for optimizer_class in pair("Adam"):
        params = [torch.nn.Parameter(tensor.clone()) for tensor in start]
        optimizer = optimizer_class(params, lr=0.05, weight_decay=0.1)
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = grad.clone()
            optimizer.step()
        results.append((params, optimizer.state))
    (ours, ours_state), (theirs, torch_state) = results
    assert calls == [3] * 10
    assert torch.equal(ours[3], start[3]) and ours[3] not in ours_state
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
        for key, value in torch_state[b].items():
            torch.testing.assert_close(ours_state[a][key], value, rtol=1e-10, atol=0)


def test_without_a_compiler_it_warns_once_and_takes_the_simple_path(calls, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise torch._dynamo.exc.Unsupported("no backend here")

    monkeypatch.setattr(compiled, "_compiled", lambda family: fail)
    monkeypatch.setattr(compiled, "_failures", {})
    monkeypatch.setattr(base, "_reported_missing", set())
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    optimizers = [adamlab.Adam(models[0].parameters(), lr=0.01), torch.optim.Adam(models[1].parameters(), lr=0.01)]
    for model, optimizer in zip(models, optimizers):
        train_with_schedule(model, optimizer, 3, torch.float64)
    assert capsys.readouterr().err.count("no fused GPU step, using the simple path") == 1
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)

    model = make_mlp()
    with pytest.raises(RuntimeError, match=r"Adam\(fused=True\): torch.compile failed"):
        train_with_schedule(model, adamlab.Adam(model.parameters(), fused=True), 1, torch.float32)


def test_a_parameter_resized_between_steps_is_refused_before_the_compiled_step(calls):
    # As on the CPU kernel's path (tests/optim/test_safety.py): checked before anything changes.
    params = [torch.nn.Parameter(torch.randn(64)), torch.nn.Parameter(torch.randn(5, 3))]
    optimizer = adamlab.AdamW(params, lr=0.01)
    for param in params:
        param.grad = torch.randn(param.shape)
    optimizer.step()
    before = [param.detach().clone() for param in params], {key: value.clone() for key, value in
                                                             optimizer.state[params[0]].items()}
    params[1].data, params[1].grad = torch.randn(7), torch.randn(7)
    with pytest.raises(RuntimeError, match=r"state 'exp_avg' of parameter 1 of group 0 has shape \(5, 3\)"):
        optimizer.step()
    assert torch.equal(params[0], before[0][0]) and len(calls) == 1
    assert all(torch.equal(optimizer.state[params[0]][key], value) for key, value in before[1].items())


def test_one_familys_graphs_leave_room_for_anothers(calls, monkeypatch):
    """torch.compile refuses a function more graphs than its limit; each family has its own.
    (Two: a family may take a second graph once its step count turns out to change.)"""
    monkeypatch.setattr(compiled, "_RECOMPILE_LIMIT", 2)
    compiled._compiled.cache_clear()
    for name in ["Adam", "SGD", "RMSprop"]:
        models = [make_mlp(torch.float64), make_mlp(torch.float64)]
        ours, theirs = getattr(adamlab, name), getattr(torch.optim, name)
        optimizers = [ours(models[0].parameters(), lr=0.01), theirs(models[1].parameters(), lr=0.01)]
        for model, optimizer in zip(models, optimizers):
            train_with_schedule(model, optimizer, 2, torch.float64)
        for a, b in zip(*(model.parameters() for model in models)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=0)
    assert len(calls) == 6


def test_a_bound_that_changes_every_step_compiles_once():
    """ADOPT clips by t^0.25, a number new each step: clamped by it, torch.compile would build a
    graph per step (and, through its shared record of specialised inputs, the other families'
    steps too); as a maximum with a tensor of it, one graph serves every step."""
    from adamlab.maths import adopt

    param, grad = [torch.randn(5, dtype=torch.float64)], [torch.randn(5, dtype=torch.float64)]
    state = [(torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64))]
    settings = dict(lr=1e-3, beta1=0.9, beta2=0.99, eps=1e-6, weight_decay=0.0, decoupled_weight_decay=False,
                    clip_exponent=0.25, maximize=False)
    counters = torch._dynamo.utils.counters["stats"]
    before = counters["unique_graphs"]
    for step in range(1, 9):
        compiled.update(adopt, ("m", "v"), param, grad, state, [float(step)], settings)
    assert counters["unique_graphs"] - before == 1


@pytest.mark.parametrize("name", ["NAdam", "LaProp"])
def test_a_number_kept_per_parameter_is_written_by_the_compiled_step(name, calls):
    """NAdam's mu_product and LaProp's average of the rates are 0-d tensors: the compiled step
    writes them through a 1-element view, or torch.compile would take them for numbers and drop
    what it writes (NAdam then stepped with mu_product stuck at 1)."""
    with default_dtype(torch.float64):
        models = [make_mlp(torch.float64), make_mlp(torch.float64)]
        optimizers = [getattr(adamlab, name)(models[0].parameters(), lr=1e-2),
                      getattr(adamlab, name)(models[1].parameters(), lr=1e-2, fused=False)]
        for model, optimizer in zip(models, optimizers):
            train_with_schedule(model, optimizer, 5, torch.float64)
    assert calls == [4] * 5  # the compiled step, and only the first run's
    kept = [key for key in optimizers[0].scalar_state if key != "step"]
    for ours, simple in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(ours, simple, rtol=1e-12, atol=0)  # the compiler may fuse roundings
        for key in kept:
            assert optimizers[0].state[ours][key].item() == pytest.approx(optimizers[1].state[simple][key].item(),
                                                                          rel=1e-14)
            assert optimizers[0].state[ours][key].item() not in (0.0, 1.0)  # written: no longer its start
