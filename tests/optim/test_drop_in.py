"""What torch's own optimizer tests ask of a drop-in that the parity tables do not: older checkpoints,
half precision and odd layouts under fused=True, a learning rate tensor of another precision."""

import copy

import numpy as np
import pytest
import torch

import adamlab
from adamlab.maths import adam

from ..conftest import make_mlp, pair, train

#: torch's fused CPU steps, and the settings to compare under.
FUSED = {"Adam": dict(lr=0.01), "AdamW": dict(lr=0.01, weight_decay=0.1), "SGD": dict(lr=0.05, momentum=0.9),
         "Adagrad": dict(lr=0.05)}


def _with_number_steps(state_dict):
    """A state_dict as older torch versions saved it: every "step" a plain number."""
    state_dict = copy.deepcopy(state_dict)
    for state in state_dict["state"].values():
        if "step" in state:
            state["step"] = state["step"].item()
    return state_dict


@pytest.mark.parametrize("fused", [None, True, False])
@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam", "Adamax", "LAMB",
                                  "AdamW8bit", "Adafactor"])
def test_a_checkpoint_with_plain_number_steps_loads_and_resumes_exactly(name, fused):
    # The next step() failed with AttributeError; torch.optim turns such a step into a tensor.
    optimizer_class = getattr(adamlab, name)
    model = make_mlp()
    optimizer = optimizer_class(model.parameters(), lr=1e-2)
    train(model, optimizer, 5)
    saved = optimizer.state_dict()
    twins = []
    for state_dict in (saved, _with_number_steps(saved)):
        twin_model = copy.deepcopy(model)
        twin = optimizer_class(twin_model.parameters(), lr=1e-2, fused=fused)
        twin.load_state_dict(state_dict)
        train(twin_model, twin, 5, start=5)
        twins.append((twin_model, twin))
    (model_a, a), (model_b, b) = twins
    for param_a, param_b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(param_a, param_b)
        assert isinstance(b.state[param_b]["step"], torch.Tensor)
        assert b.state[param_b]["step"].dtype == a.state[param_a]["step"].dtype


def _odd_params(seed=0):
    """A float16 matrix, a float32 matrix stored transposed, and a strided slice of a larger one."""
    generator = torch.Generator().manual_seed(seed)
    half = torch.randn(32, 16, generator=generator).half()
    transposed = torch.randn(16, 24, generator=generator).t()
    sliced = torch.randn(12, 40, generator=generator)[:, ::2]
    return [torch.nn.Parameter(tensor.clone() if tensor.is_contiguous() else tensor) for tensor in
            (half, transposed, sliced)]


def _steps(params, optimizer, count=10):
    generator = torch.Generator().manual_seed(1)
    for _ in range(count):
        for param in params:  # gradients laid out as autograd lays them: dense ones as their parameter
            param.grad = torch.empty_like(param).copy_(torch.randn(param.shape, generator=generator))
        optimizer.step()


@pytest.mark.parametrize("name", FUSED)
def test_fused_true_takes_float16_and_non_contiguous_parameters_with_torchs_results(name, kernel_calls):
    ours, fused, for_loop = _odd_params(), _odd_params(), _odd_params()
    assert not ours[1].is_contiguous() and not ours[2].is_contiguous()
    ours_class, torch_class = pair(name)
    _steps(ours, ours_class(ours, fused=True, **FUSED[name]))
    _steps(fused, torch_class(fused, fused=True, **FUSED[name]))
    _steps(for_loop, torch_class(for_loop, foreach=False, **FUSED[name]))
    assert kernel_calls  # the fused kernel took them: no refusal, no silent simple path
    # float16: computed in float32, rounded once (torch's fused SGD, alone, does otherwise: its
    # for-loop step is the one to agree with there), so within a rounding or two
    half = for_loop[0] if name == "SGD" else fused[0]
    torch.testing.assert_close(ours[0], half, rtol=4 * torch.finfo(torch.float16).eps, atol=2e-3)
    torch.testing.assert_close(ours[1], fused[1], rtol=1e-5, atol=1e-6)
    # A strided slice with its (contiguous) gradient: torch 2.13's fused CPU step walks the two
    # as if laid out alike and mis-steps it; its for-loop step is the one to agree with.
    torch.testing.assert_close(ours[2], for_loop[2], rtol=1e-5, atol=1e-6)
    for param, other in zip(ours, for_loop):
        assert param.stride() == other.stride()  # stepped in place, layout kept


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam", "RAdam", "Adamax", "Lion",
                                  "LAMB", "Adafactor"])
def test_float16_takes_the_fused_kernel_by_default_and_the_simple_path_agrees(name, kernel_calls, capsys):
    # float16 without fused=True fell silently to a path 36x slower.
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(64, 32, generator=generator).half()
    fused, simple = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    optimizers = [getattr(adamlab, name)([fused], lr=1e-2), getattr(adamlab, name)([simple], lr=1e-2, fused=False)]
    for _ in range(10):
        grad = torch.randn(64, 32, generator=generator).half()
        for param, optimizer in zip((fused, simple), optimizers):
            param.grad = grad.clone()
            optimizer.step()
    assert len(kernel_calls) == 10 and capsys.readouterr().err == ""
    # Both compute in float32 and round once; the orders of operations differ, so a rounding may too.
    torch.testing.assert_close(fused, simple, rtol=2 * torch.finfo(torch.float16).eps, atol=1e-3)


@pytest.mark.parametrize("fused", [None, False])
def test_a_float32_learning_rate_tensor_on_float64_parameters_steps_in_float64(fused):
    """adamlab computes every step in the parameter's precision, with the learning rate tensor's
    value as it is: as torch's fused step and adamlab's reference maths do. (torch's for-loop
    step computes the step size in the tensor's float32, a relative 1e-8 off.)"""
    generator = torch.Generator().manual_seed(0)
    start, grads = torch.randn(1000, dtype=torch.float64, generator=generator), \
        [torch.randn(1000, dtype=torch.float64, generator=generator) for _ in range(3)]
    lr = torch.tensor(1e-3)  # float32: 0.0010000000474974513
    results = {}
    for label, make in (("ours", lambda p: adamlab.Adam([p], lr=lr, fused=fused)),
                        ("torch fused", lambda p: torch.optim.Adam([p], lr=lr, fused=True)),
                        ("torch for-loop", lambda p: torch.optim.Adam([p], lr=lr, foreach=False))):
        param = torch.nn.Parameter(start.clone())
        optimizer = make(param)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results[label] = param.detach()
    state, theta = adam.init(start.numpy()), start.numpy().copy()
    for grad in grads:
        step = adam.update(grad.numpy(), state, theta, lr=float(lr))
        theta, state = step.param, step.state
    moved = np.max(np.abs(theta - start.numpy()))
    off = {label: np.max(np.abs(value.numpy() - theta)) / moved for label, value in results.items()}
    assert off["ours"] < 1e-12 and off["torch fused"] < 1e-12
    assert 1e-10 < off["torch for-loop"] < 1e-6
