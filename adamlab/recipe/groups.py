"""The weight-decay split of the standard recipe."""

from typing import NamedTuple

import torch


class HiddenSplit(NamedTuple):
    """A model's hidden weight matrices (for Muon or MARS) and the rest of its trainable parameters."""

    matrices: list[torch.nn.Parameter]
    others: list[torch.nn.Parameter]


def hidden_matrices(model: torch.nn.Module, output: torch.nn.Module | None = None) -> HiddenSplit:
    """Split ``model``'s trainable parameters as Muon wants them: the weights of its hidden
    ``nn.Linear`` layers, and the rest (embeddings, the output layer, biases, norms).

    ``output`` is the layer that makes the model's outputs (its logits), left to the rest:
    by default the last ``nn.Linear`` the model registers. A hidden layer's weight that is
    also an embedding's (tied) is left to the rest too.

    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> matrices, others = hidden_matrices(model)
    >>> [tuple(p.shape) for p in matrices], [tuple(p.shape) for p in others]
    ([(8, 4)], [(8,), (2, 8), (2,)])
    """
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    if output is None:
        output = linears[-1] if linears else None
    elif not any(module is output for module in model.modules()):
        raise ValueError(f"output ({type(output).__name__}) is not a module of the model")
    embedded = {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Embedding)}
    hidden = {id(module.weight) for module in linears if module is not output and module.weight.requires_grad
              and id(module.weight) not in embedded}
    if output is not None:
        hidden -= {id(param) for param in output.parameters()}  # a head tied to a hidden layer
    trainable = [param for param in model.parameters() if param.requires_grad]
    return HiddenSplit([param for param in trainable if id(param) in hidden],
                       [param for param in trainable if id(param) not in hidden])


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
