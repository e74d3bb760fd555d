"""MARS: the drop-in for pytorch-optimizer's ``MARS`` with ``mars_type='adamw'`` (torch.optim has none)."""

import torch

from ..maths import mars
from .base import Optimizer


class MARS(Optimizer):
    r"""MARS-AdamW: AdamW on the gradient plus gamma beta1 / (1 - beta1) times its change since the last step.

    .. code-block:: text

        c      = g + gamma beta1 / (1 - beta1) (g - g_prev);  c = c / max(1, ||c||)   per tensor
        m, v   = Adam's moments of c, bias-corrected to m_hat, v_hat
        theta  = theta (1 - lr weight_decay) - lr m_hat / (sqrt(v_hat) + eps)

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 3e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.95, 0.99)).
        eps: added to sqrt(v_hat) (default 1e-8).
        gamma: the weight of the gradient's change, >= 0 (default 0.025); 0 is AdamW on
            gradients clipped to norm 1.
        weight_decay: decoupled decay rate, multiplied by lr (default 0).
        {cautious}
        {maximize}
        {fused}
        {stochastic_rounding}

    Example::

        optimizer = adamlab.MARS(model.parameters(), lr=3e-3)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large Models"
    (2024). Every parameter given steps by MARS, as pytorch-optimizer's ``MARS`` with
    ``mars_type='adamw', optimize_1d=True``; the authors train vectors (biases, norms) with
    AdamW instead, as ``adamlab.Hybrid(adamlab.MARS(matrices), adamlab.AdamW(others))`` with
    ``matrices, others = adamlab.hidden_matrices(model)`` does. Where the oracle departs from the paper
    (eps before the bias correction, and under a square root with 1e-15), adamlab follows the
    paper. State: ``step``, ``exp_avg`` (m), ``exp_avg_sq`` (v), ``last_grad``, as the oracle
    names them (its step is per group).
    """

    maths = mars
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v", "last_grad": "g_prev"}
    elementwise = False  # c is divided by its norm over the whole tensor

    def __init__(self, params, lr: float | torch.Tensor = 3e-3, betas: tuple[float, float] = (0.95, 0.99),
                 eps: float = 1e-8, gamma: float = 0.025, weight_decay: float = 0.0, *, cautious: bool = False, maximize: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, gamma=gamma, weight_decay=weight_decay,
                                      cautious=cautious, maximize=maximize, fused=fused, stochastic_rounding=stochastic_rounding))
