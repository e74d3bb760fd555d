"""RAdam: the drop-in for ``torch.optim.RAdam``."""

import torch

from ..maths import radam
from .base import Optimizer


class RAdam(Optimizer):
    r"""RAdam: Adam whose adaptive step is rectified, and held off while v has seen too few gradients.

    .. code-block:: text

        g = grad + weight_decay * theta            (decoupled: theta = theta * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g            v = beta2 * v + (1 - beta2) * g^2
        rho_inf = 2 / (1 - beta2) - 1              rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  theta = theta - lr * m_hat * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)
        otherwise:  theta = theta - lr * m_hat                 (m_hat = m / (1 - beta1^t))

    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)).
    With the default beta2 = 0.999 the first 5 steps are the momentum ones.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3).
        betas: decay rates (beta1, beta2) of the two moments, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to sqrt(v) in the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient, or with
            ``decoupled_weight_decay`` the decay rate of theta (default 0).
        decoupled_weight_decay: decay theta directly, as AdamW: RAdamW (default False).
        {maximize}
        capturable: keep the step counter on the parameter's device, for CUDA
            graphs (default False).
        fused: None (default) takes the fused step where it can, False forces
            the simple path, True demands the fused step (torch.optim.RAdam has
            no such argument).
        {implementation_flags}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.RAdam(model.parameters(), lr=1e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020).
    The paper switches at rho_t > 4; torch.optim, and so adamlab, at rho_t > 5.
    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    maths = radam
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=foreach,
            capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
            differentiable=differentiable, fused=fused, stochastic_rounding=stochastic_rounding))
