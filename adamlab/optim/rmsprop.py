"""RMSprop: the drop-in for ``torch.optim.RMSprop``."""

import torch

from ..maths import rmsprop
from .base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop: steps divided by the root of a moving average of squared gradients.

    .. code-block:: text

        g = grad + weight_decay * theta
        v = alpha * v + (1 - alpha) * g^2
        s = v - g_avg^2  with  g_avg = alpha * g_avg + (1 - alpha) * g   if centered,  else  s = v
        b = momentum * b + g / (sqrt(s) + eps);   theta = theta - lr * b
        (without momentum: theta = theta - lr * g / (sqrt(s) + eps))

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the average, in [0, 1] (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: divide by the gradient's estimated variance instead of its
            second moment (default False).
        capturable: keep the step counter on the parameter's device and never
            read it on the host, for CUDA graphs (default False).
        {maximize}
        {implementation_flags}
        fused: None (default) takes the fused step where it can (the CPU
            kernel, or the compiled maths on CUDA), False forces the simple
            path, True demands the fused step (torch.optim.RMSprop has no such
            argument).

    Example::

        optimizer = adamlab.RMSprop(model.parameters(), lr=0.01)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Tieleman & Hinton, "Neural Networks for Machine Learning", lecture 6.5 (2012).
    State: ``step``, ``square_avg``, and ``momentum_buffer`` / ``grad_avg`` when used.
    """

    maths = rmsprop
    state_fields = {"step": "step", "square_avg": "v", "momentum_buffer": "momentum_buffer",
                    "grad_avg": "grad_avg"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, capturable: bool = False, foreach: bool | None = None,
                 maximize: bool = False, differentiable: bool = False, *,
                 fused: bool | None = None):
        super().__init__(params, dict(
            lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
            weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
            differentiable=differentiable, fused=fused))

    def _state_keys(self, group):
        return ("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ()) \
            + (("grad_avg",) if group["centered"] else ())
