"""Muon: the drop-in for ``torch.optim.Muon``."""

import torch

from ..maths import muon
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer


class Muon(Optimizer):
    r"""Muon: SGD whose (Nesterov) momentum is orthogonalised before each step, for matrices.

    .. code-block:: text

        b = b + (1 - momentum) (g - b);   u = g + momentum (b - g)  (nesterov)  or  b
        o = NewtonSchulz(u)               u's singular values all taken to about 1
        theta = theta (1 - lr weight_decay) - lr sqrt(max(1, rows / columns)) o

    Args:
        params: 2-D parameters (the hidden layers' weight matrices), or parameter groups of them.
        lr: learning rate (default 1e-3).
        weight_decay: decoupled decay rate, multiplied by lr (default 0.1).
        momentum: the momentum's decay, >= 0 (default 0.95).
        nesterov: step along the gradient plus momentum times the buffer (default True).
        ns_coefficients: (a, b, c) of the iteration's quintic (default (3.4445, -4.775, 2.0315)).
        eps: the least norm u is divided by before the iteration (default 1e-7).
        ns_steps: iterations, 1 to 99 (default 5).
        adjust_lr_fn: how lr scales with the matrix's shape: None or "original" (sqrt(max(1,
            rows / columns))) or "match_rms_adamw" (0.2 sqrt(max(rows, columns)), so AdamW's lr
            and decay carry over).
        {maximize}
        fused: None (default) or False: Muon's step is matrix products, which torch runs fast
            itself; it has no fused kernel, and True is refused.

    Example (the nanoGPT speedrun's split: Muon for the hidden matrices, AdamW for the rest)::

        matrices, others = adamlab.hidden_matrices(model)
        optimizer = adamlab.Hybrid(adamlab.Muon(matrices, lr=0.02, weight_decay=0.0),
                                   adamlab.AdamW(others, lr=3e-3, betas=(0.9, 0.95)))
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024). The same
    steps, state (``momentum_buffer``) and checkpoints as ``torch.optim.Muon``, the iteration in
    bfloat16 as torch's. Embeddings, the output layer, biases and norms are not for Muon: it
    refuses anything but a matrix, and :func:`adamlab.hidden_matrices` picks the matrices that are.
    """

    maths = muon
    state_fields = {"momentum_buffer": "buffer"}
    scalar_state = ()
    elementwise = False
    fused_step = False
    matrices_only = True  # the registry gives a model's other tensors to AdamW
    kernel_limits = "Muon's step is matrix products: it has no fused kernel"

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
                 nesterov: bool = True, ns_coefficients: tuple[float, float, float] = muon.COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None, *, maximize: bool = False,
                 fused: bool | None = None):
        super().__init__(params, dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, ns_coefficients=ns_coefficients,
            eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, maximize=maximize, fused=fused))

    def add_param_group(self, param_group: dict) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for position, param in enumerate(params):
            tensor = param[1] if isinstance(param, tuple) else param  # named parameters come as (name, tensor)
            if isinstance(tensor, torch.Tensor) and tensor.ndim != 2:
                raise ValueError(f"adamlab.Muon steps matrices only: parameter {position} of this group has shape "
                                 f"{tuple(tensor.shape)} (adamlab.hidden_matrices splits a model's matrices "
                                 f"from the rest)")
        super().add_param_group({**param_group, "params": params})

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group.get("fused"):
            raise ValueError("adamlab.Muon has no fused step (its step is matrix products); leave fused=None")
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps < 100:
            raise InvalidHyperparameter("ns_steps", steps, "a whole number in [1, 99]")
        coefficients = group["ns_coefficients"]
        if (not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3
                or not all(isinstance(value, (int, float)) and not isinstance(value, bool)
                           and abs(value) < float("inf") for value in coefficients)):
            raise InvalidHyperparameter("ns_coefficients", coefficients, "three finite numbers (a, b, c)")
        if group["adjust_lr_fn"] not in (None, *muon.LR_SCALES):
            raise InvalidHyperparameter("adjust_lr_fn", group["adjust_lr_fn"],
                                        f"None or one of {', '.join(map(repr, muon.LR_SCALES))}")

    def _kernel(self, group: dict, dtype: torch.dtype | None, born: bool = False):
        return None  # matrix products: torch's own are the fast path

    def _compiles(self, group: dict) -> bool:
        return False
