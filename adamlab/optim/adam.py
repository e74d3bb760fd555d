"""Adam and AdamW: the drop-ins for ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

import torch

from ..maths import adam
from .base import Optimizer

_UPDATE = r"""
    .. code-block:: text

        g = grad{l2}
        m = beta1 * m + (1 - beta1) * g            v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t)                  v_hat = v / (1 - beta2^t)
        theta = theta{decay} - lr * m_hat / (sqrt(v_hat) + eps)

    With ``amsgrad``, v_hat uses the largest v so far, bias-corrected as in
    torch.optim (the AMSGrad paper does not correct it).
"""

_ARGS = """
    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3).
        betas: decay rates (beta1, beta2) of the two moments, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) in the denominator (default 1e-8).
        weight_decay: {weight_decay}
        amsgrad: divide by the running maximum of v (default False).
        {{cautious}}
        {{maximize}}
        capturable: keep the step counter on the parameter's device and never
            read it on the host, for CUDA graphs (default False).
        fused: None (default) takes the fused step where it can (the CPU
            kernel, or the compiled maths on CUDA), False forces the simple
            path, True demands the fused step.
        {{implementation_flags}}
        {{stochastic_rounding}}
"""


class Adam(Optimizer):
    __doc__ = ("Adam: momentum divided by the root of a moving average of squared gradients.\n"
               + _UPDATE.format(l2=" + weight_decay * theta   (L2 penalty; decoupled: see AdamW)",
                                decay="")
               + _ARGS.format(weight_decay="L2 penalty added to the gradient (default 0).")
               + """        decoupled_weight_decay: decay theta directly, as AdamW (default False).

    Example::

        optimizer = adamlab.Adam(model.parameters(), lr=3e-4)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015).
    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (AMSGrad).
""")

    maths = adam
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v", "max_exp_avg_sq": "v_max"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 foreach: bool | None = None, cautious: bool = False, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False, stochastic_rounding: bool = False):
        super().__init__(params, dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            cautious=cautious, maximize=maximize, foreach=foreach, capturable=capturable,
            differentiable=differentiable, fused=fused,
            decoupled_weight_decay=decoupled_weight_decay, stochastic_rounding=stochastic_rounding))

    def _state_keys(self, group):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

class AdamW(Adam):
    __doc__ = ("AdamW: Adam with weight decay applied to the weights, not to the gradient.\n"
               + _UPDATE.format(l2="", decay=" * (1 - lr * weight_decay)")
               + _ARGS.format(weight_decay="decoupled decay rate (default 1e-2).")
               + """
    Example::

        optimizer = adamlab.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
    Under Adam's L2 penalty the decay is divided by sqrt(v_hat), so weights with
    large gradients are barely regularized; AdamW decays every weight alike.
    State: as Adam.
""")

    def __init__(self, params, lr: float | torch.Tensor = 1e-3,
                 betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 cautious: bool = False, maximize: bool = False, foreach: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         cautious=cautious, maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, stochastic_rounding=stochastic_rounding)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
