"""SGD: the drop-in for ``torch.optim.SGD``."""

import torch

from ..maths import sgd
from .base import Optimizer


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    .. code-block:: text

        g = grad + weight_decay * theta
        b = g (first step),  then  b = momentum * b + (1 - dampening) * g
        theta = theta - lr * (g + momentum * b  if nesterov  else  b)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum, in [0, 1] (default 0).
        weight_decay: L2 penalty (default 0).
        nesterov: use Nesterov momentum; needs momentum > 0 and no dampening (default False).
        {maximize}
        fused: None (default) takes the fused step where it can (the CPU
            kernel, or the compiled maths on CUDA), False forces the simple
            path, True demands the fused step.
        {implementation_flags}

    Example::

        optimizer = adamlab.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Sutskever et al., "On the importance of initialization and momentum in deep
    learning" (ICML 2013). State: ``momentum_buffer``, created at the first step.
    """

    maths = sgd
    state_fields = {"momentum_buffer": "momentum_buffer"}
    born_at_first_step = ("momentum_buffer",)

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float | torch.Tensor = 0,
                 nesterov: bool = False, *, maximize: bool = False, foreach: bool | None = None,
                 differentiable: bool = False, fused: bool | None = None):
        super().__init__(params, dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize, foreach=foreach,
            differentiable=differentiable, fused=fused))

    def _check_group(self, group):
        super()._check_group(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _state_keys(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _init_state(self, param, group):
        return {}  # the momentum buffer starts as the first gradient, at the first step
