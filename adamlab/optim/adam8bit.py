"""8-bit Adam and AdamW: Adam's step with m and v kept in one byte each between steps."""

import torch
from torch.distributed.tensor import DTensor

from ..kernels import cpu
from ..maths import adam8bit
from ..maths.quantize import BLOCK, blocks, quantize
from .adam import Adam
from .base import (_fused_kernels_usable, _kernel_takes, _rounds_stochastically, _run_kernel, _step_dtype,
                   _without_fused_step, stochastic_round)

#: Tensors with fewer elements keep full-precision state: their scales would cost more than
#: the bytes saved, and they are the biases and norms whose updates matter most.
MIN_SIZE = 4096
_SCALES = {"exp_avg": "exp_avg_absmax", "exp_avg_sq": "exp_avg_sq_absmax"}
_SIGNED = {"exp_avg": True, "exp_avg_sq": False}


class Adam8bit(Adam):
    r"""Adam with 8-bit state: m and v stored block-wise as one-byte codes, a quarter of the memory.

    .. code-block:: text

        m, v  = dequantize(codes, scales)   per block of 256 elements: code value * block scale
        (Adam's step from m and v, exactly as adamlab.Adam)
        codes, scales = quantize(m), quantize(v)

    m uses a signed and v an unsigned "dynamic" code: 256 values spread over seven decades,
    finest near the block's largest value. Each block of 256 elements keeps its largest
    magnitude as a float32 scale. The step uses the new m and v at full precision; only what
    is kept until the next step is rounded. The CPU kernel does all of it in one pass over
    each block.

    Tensors of fewer than 4096 elements, and complex ones, keep Adam's full-precision
    state (same keys, same step). Integer parameters are refused.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate, a float or a one-element tensor (default 1e-3).
        betas: decay rates (beta1, beta2) of the two moments, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) in the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0); with
            ``decoupled_weight_decay``, AdamW's decay.
        maximize: maximize the objective instead of minimizing (default False).
        fused: None (default) takes the CPU kernel where it can, False forces the simple
            path, True demands the kernel.
        decoupled_weight_decay: decay theta directly, as AdamW (default False).
        stochastic_rounding: store bfloat16 parameters rounded up or down at random in
            proportion (unbiased), so training without a float32 master copy does not lose
            updates smaller than half a bfloat16 step (default False; no effect on other dtypes).

    Example::

        optimizer = adamlab.Adam8bit(model.parameters(), lr=3e-4)

    State of a quantized tensor: ``step``, ``exp_avg`` and ``exp_avg_sq`` (uint8 codes of the
    parameter's shape), ``exp_avg_absmax`` and ``exp_avg_sq_absmax`` (float32, one per block).
    ``load_state_dict`` also takes a full-precision Adam state of the same model (from
    torch.optim or adamlab) and quantizes it. On CUDA the quantized tensors take the simple
    path (torch operations); there is no compiled 8-bit step yet.

    Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise Quantization"
    (ICLR 2022); the codes and blocks are those of bitsandbytes' ``Adam8bit``.
    """

    quantized_maths = adam8bit
    #: The maths fields of the quantized state, by state key.
    quantized_fields = {"exp_avg": "m", "exp_avg_absmax": "m_scales", "exp_avg_sq": "v",
                        "exp_avg_sq_absmax": "v_scales"}

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, *, maximize: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False,
                 stochastic_rounding: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, maximize=maximize, fused=fused,
                         decoupled_weight_decay=decoupled_weight_decay, stochastic_rounding=stochastic_rounding)

    def add_param_group(self, param_group: dict) -> None:
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for param in params:
            if not (param.is_floating_point() or param.is_complex()):
                raise TypeError(f"adamlab.{type(self).__name__} cannot optimize a parameter of dtype "
                                f"{param.dtype}: its moments need a floating-point (or complex) parameter")
            if isinstance(param, DTensor) and self.quantized(param):
                # Its blocks of 256 run over the whole tensor's flat order; a shard's edge may cut a
                # block, whose scale would then differ from the unsharded step's.
                raise ValueError(f"adamlab.{type(self).__name__} keeps 8-bit state per whole tensor and "
                                 f"cannot take a sharded (DTensor) parameter of shape {tuple(param.shape)}; "
                                 f"shard its state with torch.distributed.optim.ZeroRedundancyOptimizer "
                                 f"instead (whole tensors on each rank)")
        super().add_param_group({**param_group, "params": params})

    def _check_group(self, group):
        super()._check_group(group)
        for flag in ("amsgrad", "capturable"):
            if group.get(flag):
                raise ValueError(f"adamlab.{type(self).__name__} does not support {flag}=True")

    @staticmethod
    def quantized(param: torch.Tensor) -> bool:
        """Whether a parameter's moments are kept in 8 bits (else as Adam keeps them)."""
        return param.is_floating_point() and param.numel() >= MIN_SIZE

    def _init_state(self, param, group):
        if not self.quantized(param):
            return super()._init_state(param, group)
        scales = torch.zeros(blocks(param.numel()), dtype=torch.float32, device=param.device)
        return {"step": torch.zeros((), dtype=_step_dtype()),
                "exp_avg": torch.zeros_like(param, dtype=torch.uint8, memory_format=torch.contiguous_format),
                "exp_avg_absmax": scales,
                "exp_avg_sq": torch.zeros_like(param, dtype=torch.uint8, memory_format=torch.contiguous_format),
                "exp_avg_sq_absmax": scales.clone()}

    # --- the step -------------------------------------------------------------------

    def _step_group(self, params, group):
        full = [param for param in params if not self.quantized(param)]
        if full:
            super()._step_group(full, group)
        quantized = [param for param in params if self.quantized(param)]
        if quantized and _fused_kernels_usable(group, type(self).__name__):
            quantized = self._fused_quantized_update(quantized, group)
        for param in quantized:
            self._quantized_update(param, group)

    def _fused_quantized_update(self, params, group):
        """The CPU kernel over every quantized parameter it can take; return the others."""
        buckets, others = {}, []
        for param in params:
            state = self.state.get(param) or self._init_state(param, group)
            self.state[param] = state
            if _kernel_takes(param, state["step"]) and all(state[key].is_contiguous() for key in self.quantized_fields):
                row = [param, param.grad, state["exp_avg"], state["exp_avg_sq"], state["exp_avg_absmax"],
                       state["exp_avg_sq_absmax"], cpu.code_tables(), state["step"]]
                buckets.setdefault((param.dtype, state["step"].dtype), []).append(row)
            else:
                self._refuse_if_fused_required(param, group)
                others.append(param)
        h = self._hyperparameters(group)
        options = tuple(name for name, on in (("maximize", h["maximize"]),
                                              ("decoupled", h["decoupled_weight_decay"])) if on)
        for (dtype, step_dtype), rows in buckets.items():
            _run_kernel("adam8bit", dtype, step_dtype, rows, (h["lr"], h["beta1"], h["beta2"], h["eps"], h["weight_decay"]),
                        options, group)
        return others

    def _quantized_update(self, param, group):
        """The simple path for a quantized parameter: ``adamlab.maths.adam8bit`` on tensors."""
        if group.get("fused") and param.is_cuda:
            _without_fused_step(group, type(self).__name__, "no fused 8-bit GPU step",
                                RuntimeError("the 8-bit step has no CUDA kernel yet"))
        state = self.state.get(param) or self._init_state(param, group)
        fields = {field: state[key] for key, field in self.quantized_fields.items()}
        h = self._hyperparameters(group)
        del h["amsgrad"]
        work = torch.promote_types(param.dtype, torch.float32)  # as the kernel computes
        new = self.quantized_maths.update(param.grad.to(work), self.quantized_maths.State(step=state["step"].item(), **fields),
                                          param.to(work), **h)
        param.copy_(stochastic_round(new.param) if _rounds_stochastically(param, group) else new.param)
        for key, field in self.quantized_fields.items():
            state[key].copy_(getattr(new.state, field))
        state["step"] += 1
        self.state[param] = state

    # --- checkpoints ----------------------------------------------------------------------

    def _check_param_state(self, param_state, param, group, where):
        name = f"adamlab.{type(self).__name__}"
        if not self.quantized(param) or "exp_avg_absmax" not in param_state:
            # Full-precision state: what Adam keeps (a quantized parameter's is quantized on load).
            return super()._check_param_state(param_state, param, group, where)
        expected = ("step",) + tuple(self.quantized_fields)
        if set(param_state) != set(expected):
            raise ValueError(f"the state of {where} has keys {sorted(param_state)}, "
                             f"{name} keeps {sorted(expected)} for a parameter of {param.numel()} elements")
        for key, scales_key in _SCALES.items():
            codes, scales = param_state[key], param_state[scales_key]
            if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8 or codes.shape != param.shape:
                raise ValueError(f"state {key!r} of {where} must be uint8 codes of the parameter's shape "
                                 f"{tuple(param.shape)}, got {_describe(codes)}")
            if (not isinstance(scales, torch.Tensor) or not scales.is_floating_point()
                    or scales.shape != (blocks(param.numel()),)):
                raise ValueError(f"state {scales_key!r} of {where} has {_describe(scales)}; {name} keeps one "
                                 f"scale per block of {BLOCK} elements, {blocks(param.numel())} for this "
                                 f"parameter (a state saved with another block size?)")

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this optimizer, or a full-precision Adam/AdamW state of the
        same model (torch.optim's or adamlab's), whose moments are quantized on load.

        A state_dict that does not fit raises a ``ValueError`` naming the first mismatch and
        changes nothing.
        """
        params_by_id = self._check_loadable(state_dict)
        states, kept = {}, {}
        for param_id, param_state in state_dict["state"].items():
            param = params_by_id[param_id][1]
            if param_state and self.quantized(param):
                param_state = dict(param_state)
                if "exp_avg_absmax" not in param_state:  # a full-precision state: quantize it
                    for key, signed in _SIGNED.items():
                        param_state[key], param_state[_SCALES[key]] = quantize(
                            param_state[key].detach().to(param.device, torch.promote_types(param.dtype, torch.float32)),
                            signed=signed)
                kept[param] = {key: param_state[key] for key in self.quantized_fields}
            states[param_id] = param_state
        torch.optim.Optimizer.load_state_dict(self, {**state_dict, "state": states})
        # torch casts every state tensor but the step to the parameter's dtype: codes stay
        # uint8 and scales float32.
        for param, tensors in kept.items():
            for key, value in tensors.items():
                self.state[param][key] = value.to(param.device)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


class AdamW8bit(Adam8bit):
    __doc__ = ("AdamW with 8-bit state: :class:`Adam8bit` with decoupled weight decay (default 1e-2).\n\n"
               "    theta = theta * (1 - lr * weight_decay), then Adam's step; everything else as Adam8bit.\n\n"
               "    Example::\n\n"
               "        optimizer = adamlab.AdamW8bit(model.parameters(), lr=3e-4, weight_decay=0.1)\n")

    def __init__(self, params, lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, maximize: bool = False,
                 fused: bool | None = None, stochastic_rounding: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, maximize=maximize, fused=fused,
                         decoupled_weight_decay=True, stochastic_rounding=stochastic_rounding)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
