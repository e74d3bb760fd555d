"""cautious=True (Liang et al. 2024): the mask by hand, on every optimizer that takes it, against
pytorch-optimizer's cautious MARS and against the authors' C-AdamW and C-Lion written out here."""

import numpy as np
import pytest
import torch

import adamlab
from adamlab.maths import cautious

from ..conftest import Batches, make_mlp, train, train_pair

#: Every optimizer with cautious=, with settings that leave out weight decay.
CAUTIOUS = {"Adam": {}, "AdamW": {"weight_decay": 0.0}, "Lion": {}, "ADOPT": {}, "LaProp": {},
            "AdEMAMix": {"weight_decay": 0.0}, "MARS": {}, "StableAdamW": {"weight_decay": 0.0}, "AdamAtan2": {}}


def test_the_mask_by_hand():
    u, g = np.array([1.0, -2.0, 3.0, 4.0]), np.array([1.0, 2.0, -3.0, 4.0])
    # coordinates 0 and 3 agree: kept, times 4 / (2 + 1)
    np.testing.assert_allclose(cautious.masked(u, g), [4 / 3, 0.0, 0.0, 16 / 3], rtol=1e-15)
    assert np.all(cautious.masked(u, -u) == 0)  # none agree: nothing moves, and nothing divides by 0


@pytest.mark.parametrize("name", CAUTIOUS)
@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_where_every_coordinate_agrees_the_step_is_scaled_by_n_over_n_plus_1(name, fused):
    # Two steps on one gradient: each optimizer's direction agrees with it everywhere (ADOPT's
    # first step moves nothing), so the cautious steps are the plain ones times 6 / 7.
    moves = []
    for flag in (False, True):
        point = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
        optimizer = getattr(adamlab, name)([point], lr=0.01, cautious=flag, fused=fused, **CAUTIOUS[name])
        for _ in range(2):
            point.grad = torch.linspace(0.5, 3.0, 6, dtype=torch.float64)
            optimizer.step()
        moves.append(point.detach().clone())
    assert torch.all(moves[0] != 0)
    torch.testing.assert_close(moves[1], moves[0] * 6 / 7, rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", CAUTIOUS)
@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
def test_coordinates_whose_momentum_opposes_the_gradient_stay(name, fused):
    point = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = getattr(adamlab, name)([point], lr=0.01, cautious=True, fused=fused, **CAUTIOUS[name])
    for grad in ([1.0] * 4, [1.0] * 4, [1.0, 1.0, -0.01, -0.01]):
        before = point.detach().clone()
        point.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
    # the last gradient turned on coordinates 2 and 3, where the momentum still points the old way
    assert torch.equal(point[2:], before[2:]) and torch.all(point[:2] < before[:2])


@pytest.mark.parametrize("name", CAUTIOUS)
def test_the_fused_step_agrees_with_the_simple_path(name):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    optimizers = [getattr(adamlab, name)(model.parameters(), lr=1e-2, cautious=True, fused=fused)
                  for model, fused in zip(models, (None, False))]
    for model, optimizer in zip(models, optimizers):
        train(model, optimizer, 10, Batches(torch.float64))
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)  # the count's sum in another precision
    plain = make_mlp(torch.float64)
    train(plain, getattr(adamlab, name)(plain.parameters(), lr=1e-2), 10, Batches(torch.float64))
    assert any(not torch.allclose(a, b) for a, b in zip(plain.parameters(), models[0].parameters()))


class AuthorsCautiousAdamW(torch.optim.Optimizer):
    """The authors' C-AdamW step, as their code writes it (decay first, as torch's AdamW)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                exp_avg, exp_avg_sq, grad = state["exp_avg"], state["exp_avg_sq"], p.grad
                p.mul_(1 - group["lr"] * group["weight_decay"])
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq / (1 - beta2 ** state["step"])).sqrt().add_(group["eps"])
                mask = (exp_avg * grad > 0).to(grad.dtype)
                mask.mul_(mask.numel() / (mask.sum() + 1))
                p.addcdiv_(exp_avg * mask, denom, value=-group["lr"] / (1 - beta1 ** state["step"]))


class AuthorsCautiousLion(torch.optim.Optimizer):
    """The authors' C-Lion step, as their code writes it."""

    def __init__(self, params, lr, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                exp_avg = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = (exp_avg * beta1 + p.grad * (1 - beta1)).sign_()
                mask = (update * p.grad > 0).to(p.grad.dtype)
                mask.mul_(mask.numel() / (mask.sum() + 1))
                p.add_(update * mask, alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "simple"])
@pytest.mark.parametrize("ours, theirs, kwargs", [
    (adamlab.AdamW, AuthorsCautiousAdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (adamlab.Lion, AuthorsCautiousLion, {"lr": 1e-3, "weight_decay": 0.1}),
], ids=["AdamW", "Lion"])
def test_matches_the_authors_steps_after_100_steps(ours, theirs, kwargs, fused):
    models = [make_mlp(torch.float64), make_mlp(torch.float64)]
    train_pair(ours(models[0].parameters(), cautious=True, fused=fused, **kwargs), theirs(models[1].parameters(), **kwargs),
               models, 100, torch.float64)
    for a, b in zip(*(model.parameters() for model in models)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_cautious_is_a_flag():
    with pytest.raises(TypeError, match="cautious"):
        adamlab.Adam(make_mlp().parameters(), cautious="yes")
