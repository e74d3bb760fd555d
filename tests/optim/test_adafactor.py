"""Adafactor: hand-computed steps, torch.optim.Adafactor as the independent implementation, the
optional first moment, the compiled path, checkpoints and bad input."""

import copy

import numpy as np
import pytest
import torch

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import adafactor

from ..conftest import assert_a_checkpoint_resumes_exactly

TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
SHAPES = [(6, 5), (7,), (2, 3, 4), (), (1, 9)]


def test_a_matrix_step_by_hand():
    # theta = [[1, 1], [1, 1]] (RMS 1), g = [[1, 2], [3, 4]], lr 0.5, first step (w = 1, rho = 0.5).
    # R = row means of g^2 = [2.5, 12.5], C = column means = [5, 10], mean(R) = 7.5,
    # v_hat = R C / 7.5 = [[5/3, 10/3], [25/3, 50/3]], u = g / sqrt(v_hat) = [[0.7746, 1.0954], [1.0392, 0.9798]];
    # RMS(u) = 0.9758 < 1: no clipping; theta = 1 - 0.5 * u.
    theta, g = np.ones((2, 2)), np.array([[1.0, 2.0], [3.0, 4.0]])
    step = adafactor.update(g, adafactor.init(theta), theta, lr=0.5)
    u = g / np.sqrt(np.array([[5 / 3, 10 / 3], [25 / 3, 50 / 3]]))
    np.testing.assert_allclose(step.param, 1 - 0.5 * u, rtol=1e-14)
    np.testing.assert_allclose(step.state.row_var, [[2.5], [12.5]])
    np.testing.assert_allclose(step.state.col_var, [[5.0, 10.0]])


def test_update_clipping_and_the_relative_step():
    # A vector at its first step: v_hat = g^2, so u = sign(g) and RMS(u) = 1: unclipped;
    # alpha = max(eps2, RMS(theta)) * min(lr, 1) = 0.1 * 2.
    theta, g = np.full(4, 2.0), np.array([1e-6, -3.0, 5.0, 0.5])
    step = adafactor.update(g, adafactor.init(theta), theta, lr=0.1)
    np.testing.assert_allclose(step.param, theta - 0.2 * np.sign(g))
    # Second step with a much larger gradient: u = g / sqrt(v_hat) grows past RMS 1 and is clipped back.
    state = step.state
    second = adafactor.update(100 * g, state, step.param, lr=0.1, d=1.0)
    assert second.quantities["clip"] > 1
    u_hat = second.quantities["u"] / second.quantities["clip"]
    assert np.sqrt(np.mean(u_hat**2)) == pytest.approx(1.0)
    # Weights at zero still move: eps2 floors the RMS.
    zero = adafactor.update(g, adafactor.init(np.zeros(4)), np.zeros(4), lr=0.1)
    np.testing.assert_allclose(zero.param, -1e-3 * 0.1 * np.sign(g))


def test_the_second_moment_forgets_on_the_schedule():
    # beta2_t = 1 - t^-0.8: after a first gradient of 1 and then zeros, V = prod (1 - t^-0.8).
    theta, state = np.ones(1), adafactor.init(np.ones(1))
    expected = 1.0
    for t in range(1, 6):
        step = adafactor.update(np.ones(1) if t == 1 else np.zeros(1), state, theta)
        expected = 1.0 if t == 1 else expected * (1 - t**-0.8)
        state = step.state
        assert state.variance[0] == pytest.approx(expected, rel=1e-14)


def _pair(dtype, seed=0, **kwargs):
    torch.manual_seed(seed)
    starts = [torch.randn(shape, dtype=torch.float64) for shape in SHAPES]
    ours = [torch.nn.Parameter(start.to(dtype)) for start in starts]
    theirs = [torch.nn.Parameter(start.to(dtype)) for start in starts]
    return ours, theirs


def _run(ours, theirs, optimizers, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for a, b in zip(ours, theirs):
            grad = torch.randn(a.shape, generator=generator, dtype=torch.float64).to(a.dtype)
            a.grad, b.grad = grad, grad.to(b.dtype, copy=True)
        for optimizer in optimizers:
            optimizer.step()


CASES = {
    "default": {},
    "decay": dict(lr=0.05, weight_decay=0.1, beta2_decay=-0.5, d=2.0),
    "eps": dict(eps=(1e-3, 1e-2), maximize=True),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_adafactor_after_100_steps(case, dtype):
    ours, theirs = _pair(dtype)
    optimizers = [adamlab.Adafactor(ours, **CASES[case]), torch.optim.Adafactor(theirs, **CASES[case])]
    _run(ours, theirs, optimizers, 100)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TOLERANCES[dtype])
        state, expected = optimizers[0].state[a], optimizers[1].state[b]
        assert state.keys() == expected.keys()
        for key in state:
            torch.testing.assert_close(state[key], expected[key], **TOLERANCES[dtype])


def test_the_compiled_path_matches_torch_adafactor(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    ours, theirs = _pair(torch.float32)
    optimizers = [adamlab.Adafactor(ours, lr=0.05, weight_decay=0.1), torch.optim.Adafactor(theirs, lr=0.05, weight_decay=0.1)]
    _run(ours, theirs, optimizers, 20)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TOLERANCES[torch.float32])


def test_the_first_moment_averages_the_clipped_update():
    ours, twins = _pair(torch.float64)
    with_momentum = adamlab.Adafactor(ours, lr=0.05, beta1=0.9)
    reference = [adafactor.init(p.detach().numpy(), beta1=0.9) for p in twins]
    params = [p.detach().numpy().copy() for p in twins]
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        for i, param in enumerate(ours):
            grad = torch.randn(param.shape, generator=generator, dtype=torch.float64)
            param.grad = grad
            step = adafactor.update(grad.numpy(), reference[i], params[i], lr=0.05, beta1=0.9)
            params[i], reference[i] = step.param, step.state
        with_momentum.step()
    for param, expected, state in zip(ours, params, reference):
        np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(with_momentum.state[param]["exp_avg"].numpy(), state.m, rtol=1e-12, atol=1e-14)


def test_a_checkpoint_resumes_exactly_and_torchs_loads():
    assert_a_checkpoint_resumes_exactly(adamlab.Adafactor, lr=0.05, beta1=0.9)
    ours, theirs = _pair(torch.float32)
    torch_optimizer = torch.optim.Adafactor(theirs, lr=0.05)
    _run(theirs, copy.deepcopy(theirs), [torch_optimizer], 5)
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            a.copy_(b)
    loaded = adamlab.Adafactor(ours, lr=0.05)
    loaded.load_state_dict(copy.deepcopy(torch_optimizer.state_dict()))  # as if from a file: no shared tensors
    _run(ours, theirs, [loaded, torch_optimizer], 5, seed=7)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **TOLERANCES[torch.float32])


def test_a_state_of_the_wrong_shape_raises_and_changes_nothing():
    ours, _ = _pair(torch.float32)
    optimizer = adamlab.Adafactor(ours)
    _run(ours, copy.deepcopy(ours), [optimizer], 1)
    saved = copy.deepcopy(optimizer.state_dict())
    saved["state"][0]["row_var"] = torch.zeros(5, 1)
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=r"state 'row_var' of parameter 0 of group 0 has shape \(5, 1\).*keeps \(6, 1\)"):
        optimizer.load_state_dict(saved)
    assert all(torch.equal(optimizer.state_dict()["state"][0][key], value) for key, value in before["state"][0].items())


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-1.0), "lr must be >= 0"),
    (dict(beta2_decay=0.5), "beta2_decay must be <= 0"),
    (dict(d=0.5), "d must be >= 1"),
    (dict(eps=(None, -1.0)), "eps2 must be >= 0"),
    (dict(eps=(-1.0, 1e-3)), "eps1 must be >= 0"),
    (dict(eps=1e-3), "eps must be"),
    (dict(beta1=1.0), r"beta1 must be in \[0, 1\)"),
])
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.Adafactor([torch.nn.Parameter(torch.zeros(3))], **kwargs)


def test_complex_parameters_and_a_fused_first_moment_are_refused():
    with pytest.raises(RuntimeError, match="does not support complex"):
        adamlab.Adafactor([torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))])
    param = torch.nn.Parameter(torch.zeros(3))
    param.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="its CPU kernel has no first moment: it needs beta1=None"):
        adamlab.Adafactor([param], fused=True, beta1=0.9).step()


def test_the_fused_kernel_runs_by_default(kernel_calls):
    calls = kernel_calls
    ours, theirs = _pair(torch.float32)
    _run(ours, theirs, [adamlab.Adafactor(ours)], 3)
    assert calls == ["adafactor"] * 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["float32", "float64", "bfloat16"])
def test_the_kernel_is_the_simple_path(dtype):
    # bfloat16 against float32: the kernel works in float32 and rounds the weights once a step
    # (the simple path would round every operation to bfloat16).
    ours, twins = _pair(dtype)
    twins = twins if dtype != torch.bfloat16 else [torch.nn.Parameter(p.detach().float()) for p in ours]
    settings = dict(lr=0.05, weight_decay=0.1, maximize=True, d=1.5, eps=(1e-30, 1e-3))
    optimizers = [adamlab.Adafactor(ours, **settings), adamlab.Adafactor(twins, fused=False, **settings)]
    _run(ours, twins, optimizers, 20)
    tolerance = {torch.float32: TOLERANCES[torch.float32], torch.float64: TOLERANCES[torch.float64],
                 torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}[dtype]
    for a, b in zip(ours, twins):
        torch.testing.assert_close(a.float(), b.float(), **tolerance)


def test_switching_maximize_between_steps_is_followed_by_the_fused_step():
    """A kept fused plan is given up when the kernel's options change, as when its kernel does."""
    results = []
    for fused in (None, False):
        param = torch.ones(4, 4).requires_grad_()
        optimizer = adamlab.Adafactor([param], lr=0.1, fused=fused)
        for step in range(4):
            param.grad = torch.full_like(param, 0.5)
            optimizer.param_groups[0]["maximize"] = step >= 2
            optimizer.step()
        results.append(param.detach())
    torch.testing.assert_close(*results)
