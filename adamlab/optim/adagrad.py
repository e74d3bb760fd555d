"""Adagrad: the drop-in for ``torch.optim.Adagrad``."""

import torch

from ..maths import adagrad
from .base import Optimizer, _real


class Adagrad(Optimizer):
    r"""AdaGrad: steps divided by the root of the summed squared gradients.

    .. code-block:: text

        g = grad + weight_decay * theta
        lr_t = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g^2
        theta = theta - lr_t * g / (sqrt(sum) + eps)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: where ``sum`` starts (default 0).
        eps: added to the denominator (default 1e-10).
        {maximize}
        fused: None (default) takes the fused step where it can (the CPU
            kernel, or the compiled maths on CUDA), False forces the simple
            path, True demands the fused step.
        {implementation_flags}

    Example::

        optimizer = adamlab.Adagrad(model.parameters(), lr=0.01)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization" (JMLR 2011). State: ``step``, ``sum``; as in
    torch.optim it exists from construction on.
    """

    maths = adagrad
    state_fields = {"step": "step", "sum": "sum_sq"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
                 differentiable: bool = False, fused: bool | None = None):
        super().__init__(params, dict(
            lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, foreach=foreach,
            maximize=maximize, differentiable=differentiable, fused=fused))
        for group in self.param_groups:
            for param in group["params"]:
                self.state[param].update(self._init_state(param, group))

    def _init_state(self, param, group):
        state = super()._init_state(param, group)
        _real(state["sum"]).fill_(group["initial_accumulator_value"])
        return state

    def share_memory(self) -> None:
        """Move the ``sum`` accumulators to shared memory, as ``torch.optim.Adagrad.share_memory``."""
        for group in self.param_groups:
            for param in group["params"]:
                self.state[param]["sum"].share_memory_()
