"""StableAdamW: the drop-in for optimi's ``StableAdamW`` (torch.optim has none)."""

import torch

from ..maths import stableadamw
from .base import Optimizer


class StableAdamW(Optimizer):
    r"""StableAdamW: AdamW with its learning rate divided, per tensor, by the RMS of g^2 / v where above 1.

    .. code-block:: text

        m, v   = Adam's bias-corrected moments (by debiased betas)
        lr_t   = lr / max(1, sqrt(mean(g^2 / max(v, eps^2))))
        theta  = theta (1 - lr_t weight_decay) - lr_t m / (sqrt(v) + eps)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3; optimi has none).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.99), optimi's).
        eps: added to sqrt(v); its square floors v in the RMS (default 1e-6).
        weight_decay: decoupled decay rate, multiplied by the step's lr_t (default 0.01).
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.StableAdamW(model.parameters(), lr=1e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Wortsman et al., "Stable and low-precision training for large-scale vision-language models"
    (NeurIPS 2023). The same steps as optimi's StableAdamW with ``kahan_sum=False``; not
    offered: its ``decouple_lr`` and ``max_lr`` (fully decoupled decay) and Kahan summation.
    State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v); optimi also keeps ``eps_sq``.
    """

    maths = stableadamw
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}
    elementwise = False  # the RMS is over the whole tensor

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.99),
                 eps: float = 1e-6, weight_decay: float = 0.01, *, cautious: bool = False, maximize: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, cautious=cautious, maximize=maximize,
                                      fused=fused, stochastic_rounding=stochastic_rounding))
