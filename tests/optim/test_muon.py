"""Muon: the orthogonalisation, torch.optim.Muon as the oracle, Hybrid (Muon beside AdamW, as
the nanoGPT speedrun trains) and hidden_matrices."""

import copy

import numpy as np
import pytest
import torch

import adamlab
from adamlab.maths import muon

from ..conftest import Batches, make_mlp


def test_the_iteration_takes_every_singular_value_near_one():
    u = np.random.default_rng(0).standard_normal((12, 5)) @ np.diag([10.0, 3.0, 1.0, 0.3, 0.1])
    assert np.ptp(np.log10(np.linalg.svd(u, compute_uv=False))) > 1.5  # singular values 30 times apart
    singular = np.linalg.svd(muon.orthogonalise(u), compute_uv=False)
    assert np.all((singular > 0.6) & (singular < 1.25))
    # a tall matrix runs as its transpose: the same singular values
    np.testing.assert_allclose(np.linalg.svd(muon.orthogonalise(u.T), compute_uv=False), singular, rtol=1e-12)


def test_the_update_keeps_the_momentums_singular_vectors():
    left, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 3)))
    right, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((3, 3)))
    u = left @ np.diag([5.0, 1.0, 0.2]) @ right.T
    o = muon.orthogonalise(u, steps=20)
    # o = U f(S) V^T: projected on u's singular vectors it is diagonal
    projected = left.T @ o @ right
    np.testing.assert_allclose(projected - np.diag(np.diag(projected)), 0, atol=1e-12)


def test_the_learning_rate_scale_of_each_shape():
    assert muon.lr_scale((8, 2)) == 2.0 and muon.lr_scale((2, 8)) == 1.0
    assert muon.lr_scale((16, 4), "match_rms_adamw") == pytest.approx(0.8)
    with pytest.raises(ValueError, match="adjust_lr_fn must be one of original, match_rms_adamw"):
        muon.lr_scale((2, 2), "square")


def matrices(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype)) for shape in ((6, 4), (3, 7))]


SETTINGS = {
    "default": {},
    "settings": {"lr": 0.02, "weight_decay": 0.01, "momentum": 0.9, "ns_steps": 4, "adjust_lr_fn": "match_rms_adamw"},
    "no-nesterov": {"lr": 0.05, "nesterov": False, "ns_coefficients": (2.0, -1.5, 0.5), "adjust_lr_fn": "original"},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("setting", SETTINGS)
def test_matches_torch_optim_muon_after_50_steps(setting, dtype):
    ours, theirs = matrices(dtype), matrices(dtype)
    optimizers = [adamlab.Muon(ours, **SETTINGS[setting]), torch.optim.Muon(theirs, **SETTINGS[setting])]
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        grads = [torch.randn(param.shape, generator=generator, dtype=dtype) for param in ours]
        for params, optimizer in zip((ours, theirs), optimizers):
            for param, grad in zip(params, grads):
                param.grad = grad.clone()
            optimizer.step()
    # the same bfloat16 iteration; the momentum's interpolation may round its last bit otherwise
    atol = 1e-7 if dtype == torch.float32 else 1e-15
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=atol)
        torch.testing.assert_close(optimizers[0].state[a]["momentum_buffer"], optimizers[1].state[b]["momentum_buffer"],
                                   rtol=1e-6, atol=atol)


def test_the_float64_reference_agrees_to_bfloat16s_precision():
    param = matrices(torch.float64)[0]
    param.grad = torch.randn(param.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    reference = muon.update(param.grad.numpy(), muon.init(param.detach().numpy()), param.detach().numpy(), lr=0.1)
    adamlab.Muon([param], lr=0.1).step()
    np.testing.assert_allclose(param.detach().numpy(), reference.param, atol=0.1 * 0.02)  # |o - o_exact| < 2%


def test_a_checkpoint_from_torch_optim_muon_resumes_exactly():
    ours, theirs = matrices(torch.float32), matrices(torch.float32)
    torch_muon = torch.optim.Muon(theirs, lr=0.02)
    for param in theirs:
        param.grad = torch.ones_like(param)
    torch_muon.step()
    for params in (ours, theirs):
        for param, source in zip(params, theirs):
            param.data.copy_(source)
            param.grad = torch.full_like(param, 0.5)
    ours_muon = adamlab.Muon(ours, lr=0.02)
    ours_muon.load_state_dict(copy.deepcopy(torch_muon.state_dict()))
    ours_muon.step(), torch_muon.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert set(ours_muon.state_dict()["state"][0]) == {"momentum_buffer"}


def test_it_converges_on_a_matrix_quadratic():
    target = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    point = torch.nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    optimizer = adamlab.Muon([point], lr=0.02, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 400)
    for _ in range(400):  # Muon's steps have a fixed size: the lr decays to let it settle
        optimizer.zero_grad()
        ((point - target) ** 2).sum().backward()
        optimizer.step(), scheduler.step()
    assert ((point - target) ** 2).sum().item() < 1e-3 * (target ** 2).sum().item()


def test_only_matrices_are_taken():
    with pytest.raises(ValueError, match=r"matrices only: parameter 1 of this group has shape \(8,\).*hidden_matrices"):
        adamlab.Muon(make_mlp().parameters())


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"momentum": -0.5}, "momentum must be >= 0"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"ns_steps": 0}, r"ns_steps must be a whole number in \[1, 99\], got 0"),
    ({"ns_steps": 2.5}, "ns_steps must be"),
    ({"ns_coefficients": (1.0, 2.0)}, r"ns_coefficients must be three finite numbers"),
    ({"adjust_lr_fn": "square"}, "adjust_lr_fn must be None or one of 'original', 'match_rms_adamw'"),
    ({"fused": True}, "Muon has no fused step"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.Muon(matrices(torch.float32), **kwargs)


def test_a_parameter_without_gradient_is_left_alone():
    used, unused = matrices(torch.float32)
    before = unused.detach().clone()
    optimizer = adamlab.Muon([used, unused])
    used.grad = torch.ones_like(used)
    optimizer.step()
    assert torch.equal(unused, before) and unused not in optimizer.state and used in optimizer.state


# --- hidden_matrices and Hybrid -----------------------------------------------------------------

class TinyLanguageModel(torch.nn.Module):
    """An embedding, two hidden layers with a norm, and a head tied to the embedding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(11, 8)
        self.hidden = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))
        self.norm = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 11, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        x = self.embed(tokens)
        return self.head(self.norm(x + self.hidden(x)))


def test_hidden_matrices_leave_embeddings_the_head_biases_and_norms_to_the_rest():
    model = TinyLanguageModel()
    matrices, others = adamlab.hidden_matrices(model)
    assert [param is model.hidden[0].weight for param in matrices] == [True, False]
    assert matrices[1] is model.hidden[2].weight
    assert {id(param) for param in others} == {id(model.embed.weight), id(model.hidden[0].bias), id(model.hidden[2].bias),
                                               id(model.norm.weight), id(model.norm.bias)}
    mlp = make_mlp()
    assert [tuple(p.shape) for p in adamlab.hidden_matrices(mlp, output=mlp[0]).matrices] == [(3, 8)]
    with pytest.raises(ValueError, match="output \\(Linear\\) is not a module of the model"):
        adamlab.hidden_matrices(mlp, output=torch.nn.Linear(2, 2))


def hybrid(model):
    matrices, others = adamlab.hidden_matrices(model)
    return adamlab.Hybrid(adamlab.Muon(matrices, lr=0.02, weight_decay=0.0), adamlab.AdamW(others, lr=3e-3))


def train_language_model(model, optimizer, steps, scheduler=None, seed=5):
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        tokens = torch.randint(0, 11, (4, 6), generator=generator)
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


def test_hybrid_steps_each_optimizer_on_its_own_parameters_and_schedules_them_all():
    models = [TinyLanguageModel(), TinyLanguageModel()]
    optimizer = hybrid(models[0])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    matrices, others = adamlab.hidden_matrices(models[1])
    separate = [torch.optim.Muon(matrices, lr=0.02, weight_decay=0.0), torch.optim.AdamW(others, lr=3e-3)]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(each, lambda step: 0.5 ** step) for each in separate]
    train_language_model(models[0], optimizer, 5, scheduler)
    generator = torch.Generator().manual_seed(5)
    for _ in range(5):
        tokens = torch.randint(0, 11, (4, 6), generator=generator)
        for each in separate:
            each.zero_grad()
        torch.nn.functional.cross_entropy(models[1](tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()).backward()
        for each, its_scheduler in zip(separate, schedulers):
            each.step(), its_scheduler.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert [group["lr"] for group in optimizer.param_groups] == [0.02 / 32, 3e-3 / 32]
    assert len(optimizer.state) == 7 and "momentum_buffer" in optimizer.state[models[0].hidden[0].weight]


def test_hybrid_trains_a_language_model():
    model = TinyLanguageModel()
    losses = train_language_model(model, hybrid(model), 60)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.1


def test_a_hybrid_checkpoint_resumes_exactly_and_a_bad_one_changes_nothing(tmp_path):
    model = TinyLanguageModel()
    optimizer = hybrid(model)
    train_language_model(model, optimizer, 5)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    twin_model = copy.deepcopy(model)
    twin = hybrid(twin_model)
    twin.load_state_dict(torch.load(tmp_path / "optimizer.pt"))
    assert twin.param_groups[0] is twin.optimizers[0].param_groups[0]  # loading replaced the groups: taken again
    train_language_model(model, optimizer, 5, seed=6)
    train_language_model(twin_model, twin, 5, seed=6)
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)
    fresh = hybrid(TinyLanguageModel())
    broken = copy.deepcopy(optimizer.state_dict())
    broken["optimizers"][1]["param_groups"][0]["params"].pop()
    with pytest.raises(ValueError, match="parameter group 0 has 4 parameters in the state_dict, 5 in this"):
        fresh.load_state_dict(broken)
    assert len(fresh.state) == 0  # the first optimizer's part, though it fitted, was not loaded
    with pytest.raises(ValueError, match=r"expects \{'optimizers': \[...\]\} with 2 state_dicts"):
        fresh.load_state_dict({"state": {}, "param_groups": []})


def test_hybrid_refuses_a_parameter_in_two_optimizers_and_new_groups():
    model = make_mlp()
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        adamlab.Hybrid(adamlab.AdamW(model.parameters()), adamlab.Lion(model[0].parameters()))
    with pytest.raises(TypeError, match="optimizer 1 must be a torch.optim.Optimizer"):
        adamlab.Hybrid(adamlab.AdamW(model.parameters()), "sgd")
    optimizer = adamlab.Hybrid(adamlab.AdamW(model.parameters()))
    with pytest.raises(TypeError, match="add the group to one of the Hybrid's optimizers"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))]})


def test_hybrid_evaluates_a_closure_once():
    model = make_mlp()
    optimizer = adamlab.Hybrid(adamlab.Muon(adamlab.hidden_matrices(model, output=model[0]).matrices),
                               adamlab.AdamW([model[0].weight, model[0].bias, model[2].bias]))
    calls = []
    inputs, targets = next(iter(Batches()))

    def closure():
        calls.append(1)
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss

    assert optimizer.step(closure) is not None and calls == [1]
    assert all(param in optimizer.state for param in model.parameters())


def test_an_empty_matrix_steps_as_torch_optim_muons_does():
    states = []
    for optimizer_class in (adamlab.Muon, torch.optim.Muon):
        param = torch.nn.Parameter(torch.zeros(0, 3))
        param.grad = torch.zeros(0, 3)
        optimizer = optimizer_class([param])
        optimizer.step()
        states.append({key: tuple(value.shape) for key, value in optimizer.state[param].items()})
    assert states[0] == states[1] == {"momentum_buffer": (0, 3)}
