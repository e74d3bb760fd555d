"""The weight-decay split of the standard recipe."""

from typing import NamedTuple

import torch


class ParamGroups(NamedTuple):
    """Torch parameter groups, and how many tensors and numbers each kind holds."""

    groups: list[dict]
    counts: dict[str, dict[str, int]]


def param_groups(model: torch.nn.Module, weight_decay: float) -> ParamGroups:
    """Split ``model``'s trainable parameters for decoupled weight decay.

    Matrices (embeddings, linear weights: 2 or more dimensions) decay; vectors
    (biases, normalization gains) do not, since shrinking them towards zero only
    fights the layer's own scale.

    >>> groups, counts = param_groups(torch.nn.Linear(3, 2), weight_decay=0.1)
    >>> counts
    {'decayed': {'tensors': 1, 'parameters': 6}, 'not_decayed': {'tensors': 1, 'parameters': 2}}
    >>> optimizer = torch.optim.AdamW(groups, lr=1e-3)
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    trainable = [param for param in model.parameters() if param.requires_grad]
    decayed = [param for param in trainable if param.dim() >= 2]
    not_decayed = [param for param in trainable if param.dim() < 2]
    groups = [{"params": decayed, "weight_decay": weight_decay},
              {"params": not_decayed, "weight_decay": 0.0}]
    counts = {kind: {"tensors": len(params), "parameters": sum(param.numel() for param in params)}
              for kind, params in (("decayed", decayed), ("not_decayed", not_decayed))}
    return ParamGroups([group for group in groups if group["params"]], counts)
