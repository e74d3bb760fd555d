"""Adafactor: the drop-in for ``torch.optim.Adafactor``, with the paper's optional first moment."""

import torch

from .. import kernels
from ..maths import adafactor
from .base import Kernel, Optimizer, StepRefused, _check_state_entry, _step_dtype, _without_fused_step


class Adafactor(Optimizer):
    r"""Adafactor: a factored second moment, relative step sizes and update clipping.

    .. code-block:: text

        w       = t^beta2_decay                       (1 - beta2_t; beta2_t = 1 - t^-0.8)
        alpha   = max(eps2, RMS(theta)) * min(lr, 1 / sqrt(t))
        theta   = theta * (1 - lr * weight_decay)
        R, C    = (1 - w) * (R, C) + w * (row means, column means of g^2)     matrices
        v_hat   = R C / max(mean(R), eps1)            (a vector keeps V, the average of g^2)
        u       = g / sqrt(max(v_hat, eps1^2));  u_hat = u / max(1, RMS(u) / d)
        theta   = theta - alpha * u_hat               (alpha * m, m the average of u_hat, with beta1)

    An r x c matrix keeps r + c numbers of state, not Adam's 2 r c. Tensors of more than two
    dimensions are batches of matrices over their last two dimensions.

    Args:
        params: parameters or parameter groups to optimize.
        lr: the largest relative step size (default 1e-2); the step is
            min(lr, 1/sqrt(t)) times the parameter's RMS.
        beta2_decay: the second moment's schedule, 1 - beta2_t = t^beta2_decay (default -0.8).
        eps: (eps1, eps2): eps1 floors v_hat (squared) and the row mean (default None: the
            parameter dtype's machine epsilon); eps2 floors RMS(theta) so that weights at
            zero still move (default 1e-3).
        d: the clipping threshold on RMS(u) (default 1.0).
        weight_decay: decoupled decay, multiplied by lr (default 0).
        beta1: the decay of an optional first moment of u_hat (default None: no first
            moment, as torch.optim's Adafactor; the paper's option, at one more state
            tensor of the parameter's size).
        {maximize}
        fused: None (default) takes the fused step where it can (the CPU kernel, or the
            compiled maths on CUDA), False forces the simple path, True demands the fused
            step (the CPU kernel has no first moment: with beta1 the simple path runs).
        foreach: torch.optim's implementation flag; adamlab rejects True.
        {stochastic_rounding}

    Example::

        optimizer = adamlab.Adafactor(model.parameters(), lr=1e-2)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (ICML
    2018). Without beta1 the same step and state as ``torch.optim.Adafactor`` (``step``,
    ``row_var`` and ``col_var`` for matrices, ``variance`` for vectors), whose checkpoints it
    loads; with beta1, ``exp_avg`` too.
    """

    maths = adafactor
    kernel_limits = "its CPU kernel has no first moment: it needs beta1=None"
    elementwise = False  # the factored second moment is made of row and column means
    state_fields = {"step": "step", "row_var": "row_var", "col_var": "col_var", "variance": "variance",
                    "exp_avg": "m"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-2, beta2_decay: float = -0.8,
                 eps: tuple[float | None, float] = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0,
                 *, beta1: float | None = None, foreach: bool | None = None, maximize: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay,
                                      beta1=beta1, foreach=foreach, maximize=maximize, fused=fused,
                                      stochastic_rounding=stochastic_rounding))

    def _check_group(self, group):
        super()._check_group(group)
        if not isinstance(group["eps"], (tuple, list)):
            raise ValueError(f"eps must be a pair (eps1, eps2) for Adafactor, got {group['eps']!r}")

    def add_param_group(self, param_group: dict) -> None:
        params = param_group["params"]
        for param in [params] if isinstance(params, torch.Tensor) else list(params):
            if param.is_complex():
                raise RuntimeError("adamlab.Adafactor does not support complex parameters")
        super().add_param_group(param_group)

    def _param_state_keys(self, param, group):
        return ("step",) + tuple(self._state_shapes(param, group))

    @staticmethod
    def _state_shapes(param, group) -> dict[str, tuple]:
        """The shape of each state tensor of ``param`` but the step counter."""
        shape = tuple(param.shape)
        shapes = ({"row_var": shape[:-1] + (1,), "col_var": shape[:-2] + (1, shape[-1])} if len(shape) >= 2
                  else {"variance": shape})
        if group.get("beta1") is not None:
            shapes["exp_avg"] = shape
        return shapes

    def _init_state(self, param, group):
        state = {"step": torch.zeros((), dtype=_step_dtype())}
        for key, shape in self._state_shapes(param, group).items():
            state[key] = (torch.zeros_like(param, memory_format=torch.preserve_format) if shape == tuple(param.shape)
                          else param.new_zeros(shape))
        return state

    def _hyperparameters(self, group):
        values = super()._hyperparameters(group)
        values["eps1"], values["eps2"] = group["eps"]
        return values

    def _kernel(self, group, dtype=None, born=False):
        if group.get("beta1") is not None:
            return None  # the CPU kernel has no first moment
        h = self._hyperparameters(group)
        # eps1 defaults to the parameter dtype's machine epsilon, as torch.optim's (any number
        # while planning: the kernel is the same for every value)
        h["eps1"] = h["eps1"] if h["eps1"] is not None else torch.finfo(dtype or torch.float32).eps
        try:
            kernel = kernels.cpu.generated(self.maths, h, {"step": "tensor", "row_var": "row", "col_var": "column"},
                                           "factored", vectors={"step": "tensor", "variance": "element"})
        except kernels.KernelsUnavailable as error:
            _without_fused_step(group, type(self).__name__, "fused kernels unavailable", error)
            return None
        except kernels.symbolic.TraceError as error:
            _without_fused_step(group, type(self).__name__, f"no fused kernel of {self.maths.__name__}", error)
            return None
        return Kernel(kernel, (), kernels.cpu.scalars(kernel, h))

    def _kernel_row(self, param, grad, state, kernel):
        # A matrix's R and C and the width and height of its matrices; a vector's V twice and no shape.
        if param.dim() >= 2:
            shape = torch.tensor([param.shape[-1], param.shape[-2]], dtype=torch.int64)
            return [param, grad, state["row_var"], state["col_var"], shape, state["step"]]
        return [param, grad, state["variance"], state["variance"], torch.zeros(2, dtype=torch.int64), state["step"]]

    def _check_param_state(self, param_state, param, group, where):
        expected = self._param_state_keys(param, group)
        if set(param_state) != set(expected):
            raise StepRefused(f"the state of {where} has keys {sorted(param_state)}, adamlab.Adafactor "
                              f"keeps {sorted(expected)} for a parameter of shape {tuple(param.shape)}")
        shapes = self._state_shapes(param, group)
        for key, value in param_state.items():
            _check_state_entry(key, value, shapes.get(key), where, tuple(param.shape))
