"""NAdam: the drop-in for ``torch.optim.NAdam``."""

import torch

from ..maths import nadam
from .base import Optimizer


class NAdam(Optimizer):
    r"""NAdam: Adam with Nesterov momentum, the momentum taken as it will stand a step ahead.

    .. code-block:: text

        g = grad + weight_decay * theta            (decoupled: theta = theta * (1 - lr * weight_decay))
        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))      prod = prod * mu_t
        m = beta1 * m + (1 - beta1) * g            v = beta2 * v + (1 - beta2) * g^2
        m_hat = mu_{t+1} * m / (1 - prod * mu_{t+1}) + (1 - mu_t) * g / (1 - prod)
        theta = theta - lr * m_hat / (sqrt(v / (1 - beta2^t)) + eps)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 2e-3).
        betas: decay rates (beta1, beta2) of the two moments, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to the root of v_hat in the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient, or with
            ``decoupled_weight_decay`` the decay rate of theta (default 0).
        momentum_decay: how fast mu_t warms up from beta1 / 2 to beta1, >= 0
            (default 4e-3, the paper's 1/250).
        decoupled_weight_decay: decay theta directly, as AdamW: NAdamW (default False).
        {maximize}
        capturable: keep the step counter and ``mu_product`` on the parameter's
            device and never read them on the host, for CUDA graphs (default False).
        fused: None (default) takes the fused step where it can, False forces
            the simple path, True demands the fused step (torch.optim.NAdam has
            no such argument).
        {implementation_flags}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.NAdam(model.parameters(), lr=2e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop).
    State: ``step``, ``mu_product`` (one number, as the step), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    maths = nadam
    state_fields = {"step": "step", "mu_product": "mu_product", "exp_avg": "m", "exp_avg_sq": "v"}
    scalar_state = ("step", "mu_product")

    def __init__(self, params, lr: float | torch.Tensor = 2e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
            capturable=capturable, differentiable=differentiable, fused=fused,
            stochastic_rounding=stochastic_rounding))

    def _init_state(self, param, group):
        state = super()._init_state(param, group)
        state["mu_product"].fill_(1)  # the empty product: no momentum coefficient yet
        return state
