import pytest
import torch

import adamlab
from adamlab.lab.gpt import GPT, GPTConfig


def test_matrices_decay_and_biases_and_norms_do_not():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    model[2].bias.requires_grad_(False)  # frozen parameters are left out
    groups, counts = adamlab.param_groups(model, weight_decay=0.1)
    decayed, not_decayed = groups
    assert decayed["weight_decay"] == 0.1 and not_decayed["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [(8, 4), (2, 8)]
    assert [p.shape for p in not_decayed["params"]] == [(8,), (8,), (8,)]
    assert counts == {"decayed": {"tensors": 2, "parameters": 48},
                      "not_decayed": {"tensors": 3, "parameters": 24}}


def test_the_gpt_decays_embeddings_and_weights_but_not_norm_gains():
    model = GPT(GPTConfig(vocab_size=27, n_layer=2, n_embd=16))
    groups, counts = adamlab.param_groups(model, weight_decay=0.1)
    decayed_names = {name for name, p in model.named_parameters() if any(p is q for q in groups[0]["params"])}
    assert "token_embedding.weight" in decayed_names and "head.weight" in decayed_names
    assert counts["not_decayed"]["tensors"] == 1 + 2 * 2  # the embedding norm and two per block
    assert counts["decayed"]["parameters"] + counts["not_decayed"]["parameters"] == \
        sum(p.numel() for p in model.parameters())
    optimizer = adamlab.AdamW(groups, lr=1e-3)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]


def test_a_model_without_vectors_gets_one_group():
    groups, counts = adamlab.param_groups(torch.nn.Linear(3, 3, bias=False), weight_decay=0.1)
    assert len(groups) == 1 and counts["not_decayed"] == {"tensors": 0, "parameters": 0}


def test_negative_weight_decay_is_rejected():
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        adamlab.param_groups(torch.nn.Linear(2, 2), weight_decay=-0.1)
