"""AdamMini: the blocks, the authors' adam_mini.Adam_mini as the oracle on a small transformer
named as theirs expects, its memory against AdamW's, checkpoints and bad input."""

import copy

import numpy as np
import pytest
import torch
from adam_mini import Adam_mini
from torch import nn

import adamlab
from adamlab.maths import adam, adammini


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.o_proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (f(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for f in (self.q_proj, self.k_proj, self.v_proj))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class TinyTransformer(nn.Module):
    """One block of a transformer, its tensors named as Llama's and GPT's are."""

    def __init__(self, dtype=torch.float64, vocab=13, dim=16, heads=4):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, dim)
        self.attn = Attention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.to(dtype)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = x + self.attn(self.norm(x))
        return self.lm_head(x + self.mlp(x))


def train(model, optimizer, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        tokens = torch.randint(0, 13, (4, 8), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()).backward()
        optimizer.step()


def test_each_tensor_is_cut_as_the_authors_cut_it():
    optimizer = adamlab.AdamMini(TinyTransformer().named_parameters(), dim=16, n_heads=4)
    assert {group["name"]: group["blocks"] for group in optimizer.param_groups} == {
        "embed.weight": "neuron", "attn.q_proj.weight": "head", "attn.k_proj.weight": "head",
        "attn.v_proj.weight": "neuron", "attn.o_proj.weight": "neuron", "attn.o_proj.bias": "element",
        "norm.weight": "tensor", "norm.bias": "element", "mlp.0.weight": "neuron", "mlp.0.bias": "element",
        "mlp.2.weight": "neuron", "mlp.2.bias": "element", "lm_head.weight": "neuron"}
    assert adammini.block_shape((16, 16), "head", 64) == (4, 64)


def test_one_block_per_element_is_adam():
    grads = np.random.default_rng(0).standard_normal((5, 6))
    ours, theirs = adammini.init(np.zeros((6, 1))), adam.init(np.zeros(6))
    param = theirs_param = np.zeros(6)
    for grad in grads:
        param, ours, _ = adammini.update(grad[:, None], ours, param[:, None])
        param = param[:, 0]
        theirs_param, theirs, _ = adam.update(grad, theirs, theirs_param)
    np.testing.assert_allclose(param, theirs_param, rtol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kwargs", [{"lr": 1e-2}, {"lr": 3e-3, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}],
                         ids=["default", "settings"])
def test_matches_the_authors_adam_mini_after_50_steps(kwargs, dtype):
    models = [TinyTransformer(dtype), TinyTransformer(dtype)]
    ours = adamlab.AdamMini(models[0].named_parameters(), **kwargs, dim=16, n_heads=4)
    theirs = Adam_mini(models[1].named_parameters(), **kwargs, dim=16, n_heads=4, verbose=False)
    for model, optimizer in zip(models, (ours, theirs)):
        train(model, optimizer, 50)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-15)
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, **tolerance)
        theirs_v = theirs.state[b].get("vmean", theirs.state[b].get("v"))
        torch.testing.assert_close(ours.state[a]["exp_avg_sq"].flatten(), theirs_v.flatten(), **tolerance)
        torch.testing.assert_close(ours.state[a]["exp_avg"], theirs.state[b]["m"].view(a.shape), **tolerance)


def state_bytes(optimizer):
    return sum(value.nbytes for state in optimizer.state.values() for value in state.values()
               if isinstance(value, torch.Tensor) and value.dim() > 0)


def test_its_state_is_about_half_adamws():
    models = [TinyTransformer(torch.float32, vocab=256, dim=64, heads=4) for _ in range(2)]
    mini = adamlab.AdamMini(models[0].named_parameters(), dim=64, n_heads=4)
    adamw = adamlab.AdamW(models[1].parameters())
    for model, optimizer in zip(models, (mini, adamw)):
        optimizer.zero_grad()
        model(torch.zeros(1, 2, dtype=torch.long)).sum().backward()
        optimizer.step()
    parameters = sum(param.numel() for param in models[0].parameters())
    assert state_bytes(adamw) == 2 * 4 * parameters
    assert 0.5 < state_bytes(mini) / state_bytes(adamw) < 0.52  # m, and v for the few blocks and biases


def test_a_checkpoint_resumes_exactly_and_a_misshapen_one_is_refused(tmp_path):
    model = TinyTransformer()
    optimizer = adamlab.AdamMini(model.named_parameters(), lr=1e-2, weight_decay=0.1, dim=16, n_heads=4)
    train(model, optimizer, 5)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
    twin_model = copy.deepcopy(model)
    twin = adamlab.AdamMini(twin_model.named_parameters(), dim=16, n_heads=4)
    twin.load_state_dict(torch.load(tmp_path / "optimizer.pt"))
    for each_model, each in ((model, optimizer), (twin_model, twin)):
        train(each_model, each, 5, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin_model.parameters()))
    broken = torch.load(tmp_path / "optimizer.pt")
    broken["state"][1]["exp_avg_sq"] = torch.zeros(16, 1, dtype=torch.float64)  # per neuron, where q_proj is per head
    fresh = adamlab.AdamMini(TinyTransformer().named_parameters(), dim=16, n_heads=4)
    with pytest.raises(ValueError, match=r"state 'exp_avg_sq' of .* has shape \(16, 1\), adamlab keeps \(4, 1\)"):
        fresh.load_state_dict(broken)
    assert len(fresh.state) == 0


def test_heads_that_do_not_fit_refuse_the_step_and_change_nothing():
    model = TinyTransformer()
    optimizer = adamlab.AdamMini(model.named_parameters(), dim=16, n_heads=3)  # 16 * 16 / 3 is no head size
    before = [param.detach().clone() for param in model.parameters()]
    with pytest.raises(ValueError, match="'attn.q_proj.weight': a tensor of shape \\(16, 16\\) does not cut into heads"):
        train(model, optimizer, 1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before)) and len(optimizer.state) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
    ({"betas": (1.0, 0.99)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"dim": 0}, "dim must be a whole number >= 1, got 0"),
    ({"n_heads": 4, "n_kv_heads": 3}, r"n_kv_heads must be a whole number dividing n_heads \(4\)"),
    ({"fused": True}, "AdamMini has no fused step"),
])
def test_bad_hyperparameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        adamlab.AdamMini(TinyTransformer().named_parameters(), **kwargs)


def test_converges_on_a_quadratic_and_leaves_empty_and_gradientless_parameters_alone():
    target = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]], dtype=torch.float64)
    weight = nn.Parameter(torch.zeros(2, 3, dtype=torch.float64))
    empty, idle = nn.Parameter(torch.zeros(0, 3, dtype=torch.float64)), nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = adamlab.AdamMini([("mlp.weight", weight), ("mlp.empty", empty), ("norm.weight", idle)], lr=0.05)
    for _ in range(1000):
        optimizer.zero_grad()
        ((weight - target) ** 2).sum().backward()
        empty.grad = torch.zeros(0, 3, dtype=torch.float64)
        optimizer.step()
    assert ((weight - target) ** 2).sum().item() < 1e-6
    assert optimizer.state[empty]["exp_avg_sq"].shape == (0, 1) and idle not in optimizer.state
    assert torch.equal(idle, torch.ones(3, dtype=torch.float64))


def test_it_takes_named_parameters():
    with pytest.raises(TypeError, match=r"AdamMini takes model.named_parameters\(\)"):
        adamlab.AdamMini(TinyTransformer().parameters())
