"""LAMB: hand-computed steps, its defining property, pytorch-optimizer's Lamb with the
difference between the two pinned, and the compiled path against the simple one."""

import math

import numpy as np
import pytest
import torch
from pytorch_optimizer import Lamb as OtherLamb

import adamlab
from adamlab.kernels import compiled
from adamlab.maths import lamb

from ..conftest import Batches, assert_a_checkpoint_resumes_exactly, make_mlp, train


def test_one_step_by_hand():
    # theta (3, 4) has norm 5; g = (1, -1). m_hat = g and v_hat = g^2, so r = g / (1 + eps) and
    # the ratio 5 / ||r|| rescales r to norm 5: the step is lr * 5 * (1, -1) / sqrt(2).
    param = np.array([3.0, 4.0])
    step = lamb.update(np.array([1.0, -1.0]), lamb.init(param), param, lr=0.1)
    expected = 0.5 / math.sqrt(2)
    assert step.param == pytest.approx([3.0 - expected, 4.0 + expected], rel=1e-14)
    assert float(step.quantities["trust_ratio"]) == pytest.approx(5 * (1 + 1e-6) / math.sqrt(2), rel=1e-14)


def test_the_ratio_is_one_when_either_norm_is_zero():
    zeros, grad = np.zeros(3), np.array([0.5, -2.0, 1.0])
    fresh = lamb.update(grad, lamb.init(zeros), zeros, lr=0.1)  # a zero tensor moves as Adam would
    assert float(fresh.quantities["trust_ratio"]) == 1.0
    assert fresh.param == pytest.approx(-0.1 * fresh.quantities["r"])
    still = lamb.update(np.zeros(3), lamb.init(np.ones(3)), np.ones(3), lr=0.1)  # nothing to do
    assert float(still.quantities["trust_ratio"]) == 1.0 and np.array_equal(still.param, np.ones(3))


def test_each_tensor_moves_by_lr_times_its_own_norm_whatever_its_gradients_scale():
    tensors = [torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64)),
               torch.nn.Parameter(torch.tensor([0.3, -0.4, 1.2], dtype=torch.float64))]
    optimizer = adamlab.LAMB(tensors, lr=0.01)
    tensors[0].grad = torch.tensor([1e-4, 2e-4], dtype=torch.float64)
    tensors[1].grad = torch.tensor([300.0, -5.0, 70.0], dtype=torch.float64)
    before = [tensor.detach().clone() for tensor in tensors]
    optimizer.step()
    for old, new in zip(before, tensors):
        assert torch.linalg.vector_norm(new - old).item() == pytest.approx(0.01 * torch.linalg.vector_norm(old).item())


def test_pytorch_optimizers_lamb_takes_our_step_divided_by_the_first_bias_correction():
    """pytorch-optimizer bias-corrects m only, so its step is ours / (1 - beta1^t); with the
    same gradients both keep the same m and v, and each step points the same way."""
    generator = torch.Generator().manual_seed(2)
    start = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    grads = [torch.randn(4, 3, dtype=torch.float64, generator=generator) for _ in range(12)]
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours_optimizer = adamlab.LAMB([ours], lr=0.01, eps=1e-12)
    their_optimizer = OtherLamb([theirs], lr=0.01, eps=1e-12)
    for t, grad in enumerate(grads, start=1):
        old_ours, old_theirs = ours.detach().clone(), theirs.detach().clone()
        for param, optimizer in ((ours, ours_optimizer), (theirs, their_optimizer)):
            param.grad = grad.clone()
            optimizer.step()
        # Each step in units of its tensor's norm: -lr along the same unit direction.
        ours_step = (ours.detach() - old_ours) / torch.linalg.vector_norm(old_ours)
        their_step = (theirs.detach() - old_theirs) / torch.linalg.vector_norm(old_theirs)
        torch.testing.assert_close(ours_step, their_step * (1 - 0.9**t), rtol=1e-8, atol=0)
        torch.testing.assert_close(ours_optimizer.state[ours]["exp_avg_sq"],
                                   their_optimizer.state[theirs]["exp_avg_sq"], rtol=1e-12, atol=0)


def test_the_compiled_path_matches_the_simple_one(monkeypatch):
    monkeypatch.setattr(compiled, "DEVICES", compiled.DEVICES | {"cpu"})
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    optimizers = [adamlab.LAMB(model.parameters(), lr=0.01, weight_decay=0.1, fused=fused)
                  for model, fused in zip(models, (None, False))]
    calls = []
    update = compiled.update
    monkeypatch.setattr(compiled, "update", lambda *args: calls.append(1) or update(*args))
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 20)
    assert len(calls) == 20
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "maximize": True, "lr": torch.tensor(0.02)}],
                         ids=["default", "decay-maximize-tensor-lr"])
def test_the_cpu_kernel_runs_by_default_and_matches_the_simple_path(kwargs, dtype, kernel_calls):
    calls = kernel_calls
    models = [make_mlp(dtype), make_mlp(dtype)]
    zero = [torch.nn.Parameter(torch.zeros(4, dtype=dtype)) for _ in models]  # its ratio is 1
    optimizers = [adamlab.LAMB([*model.parameters(), extra], **kwargs, fused=fused)
                  for model, extra, fused in zip(models, zero, (None, False))]
    for model, extra, optimizer in zip(models, zero, optimizers):
        batches = iter(Batches(dtype))
        for step in range(30):
            inputs, targets = next(batches)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs), targets).backward()
            extra.grad = torch.full((4,), 0.1 * (step % 3 - 1), dtype=dtype)  # zero at times
            optimizer.step()
    assert calls == ["lamb"] * 30
    tolerance = dict(rtol=1e-10, atol=0) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip([*models[0].parameters(), zero[0]], [*models[1].parameters(), zero[1]]):
        torch.testing.assert_close(a, b, **tolerance)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(optimizers[0].state[a][key], optimizers[1].state[b][key], **tolerance)


def test_a_checkpoint_resumes_exactly():
    assert_a_checkpoint_resumes_exactly(adamlab.LAMB, lr=0.01, weight_decay=0.01)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -1.0}, "eps must be >= 0, got -1.0"),
    ({"betas": (1.0, 0.9)}, r"betas\[0\] must be in \[0, 1\)"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.LAMB(make_mlp().parameters(), **kwargs)
