"""8-bit Adam and AdamW: Adam's step with m and v kept in one byte each between steps."""

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard

from ..kernels import cpu, symbolic
from ..maths import adam8bit, quantize
from ..maths.quantize import BLOCK, blocks
from .adam import Adam
from .base import (Kernel, StepRefused, _check_state_entry, _fused_kernels_usable, _local, _rounds_stochastically, _seed,
                   _step_dtype, _with_step_tensors, _without_fused_step, _fits_through_copies, _run_through_copies,
                   stochastic_round)

#: Tensors with fewer elements keep full-precision state: their scales would cost more than
#: the bytes saved, and they are the biases and norms whose updates matter most.
MIN_SIZE = 4096
_SCALES = {"exp_avg": "exp_avg_absmax", "exp_avg_sq": "exp_avg_sq_absmax"}
_SIGNED = {"exp_avg": True, "exp_avg_sq": False}
_KERNEL_STATE = ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax")  # in the kernel's order


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
        {maximize}
        fused: None (default) takes the CPU kernel where it can, False forces the simple
            path, True demands the kernel.
        decoupled_weight_decay: decay theta directly, as AdamW (default False).
        {stochastic_rounding}

    Example::

        optimizer = adamlab.Adam8bit(model.parameters(), lr=3e-4)

    State of a quantized tensor: ``step``, ``exp_avg`` and ``exp_avg_sq`` (uint8 codes of the
    parameter's shape), ``exp_avg_absmax`` and ``exp_avg_sq_absmax`` (float32, one per block).
    ``load_state_dict`` also takes a full-precision Adam state of the same model (from
    torch.optim or adamlab) and quantizes it. On CUDA the quantized tensors take the simple
    path (torch operations); there is no compiled 8-bit step yet.

    Sharded by FSDP2 (DTensor parameters split by rows), each rank keeps the codes of its rows
    and the scales of the blocks they touch, in the whole tensor's grid of blocks; the ranks
    sharing a block cut by a shard's edge agree on its scale, so the step is the unsharded one.

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
            if (isinstance(param, DTensor) and self.quantized(param)
                    and (param.device_mesh.ndim != 1
                         or not (param.placements[0].is_shard(0) or param.placements[0].is_replicate()))):
                # The blocks run over the whole tensor's flat order: each rank's piece must be a run of it.
                raise ValueError(f"adamlab.{type(self).__name__} takes a sharded (DTensor) parameter split "
                                 f"by rows over a 1-D mesh, as FSDP2's fully_shard makes them; this one of "
                                 f"shape {tuple(param.shape)} has placements {param.placements} on a "
                                 f"{param.device_mesh.ndim}-D mesh")
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
        start, count = _shard_range(param)  # a shard keeps the scales of the blocks it touches
        scales = torch.zeros(blocks(count, start), dtype=torch.float32, device=param.device)
        return {"step": torch.zeros((), dtype=_step_dtype()),
                "exp_avg": torch.zeros_like(param, dtype=torch.uint8, memory_format=torch.contiguous_format),
                "exp_avg_absmax": scales,
                "exp_avg_sq": torch.zeros_like(param, dtype=torch.uint8, memory_format=torch.contiguous_format),
                "exp_avg_sq_absmax": scales.clone()}

    # --- the step -------------------------------------------------------------------

    def _prepare_group(self, params, group):
        full = [param for param in params if not self.quantized(param)]
        quantized = [param for param in params if self.quantized(param)]
        steps = ([super()._prepare_group(full, group)] if full else []) + \
                ([self._prepare_quantized(quantized, group)] if quantized else [])

        def run():
            for each in steps:
                each()
        return run

    def _prepare_quantized(self, params, group):
        """Check the quantized parameters' step. Those of plain tensors go to the base class's
        plan (:meth:`_fused_plan`) with the 8-bit kernel and rows (:meth:`_quantized_kernel_of`,
        :meth:`_quantized_row`), as every optimizer's do. The others, sharded ones and those the
        kernel cannot take, are split into regions (a whole tensor is one; see ``_regions``):
        the kernel takes whole blocks of a shard, the maths the rest, since a block cut by a
        shard's edge must learn its scale from the other ranks before it is coded. Return the
        step, which stores the state made here before anything runs.
        """
        plan, rest = self._fused_plan([param for param in params if not isinstance(param, DTensor)], group,
                                      self._quantized_kernel_of, self._quantized_row)
        params = rest + [param for param in params if isinstance(param, DTensor)]
        fused = _fused_kernels_usable(group, type(self).__name__)
        h = self._hyperparameters(group)
        del h["amsgrad"]
        on_cpu = any(_local(param).is_cpu for param in params)  # else no CPU kernel is made (nor built)
        kernel = self._quantized_kernel(group, h) if fused and on_cpu else None
        fused = fused and (kernel is not None or not on_cpu)  # off the CPU: refused below under fused=True
        states, rows, simple, cut = {}, {}, [], {}
        for param in params:
            self._check_inputs(param, group)
            state = states[param] = self.state.get(param) or self._init_state(param, group)
            if group.get("fused") and param.is_cuda:
                _without_fused_step(group, type(self).__name__, "no fused 8-bit GPU step",
                                    RuntimeError("the 8-bit step has no CUDA kernel yet"))
            regions = _regions(param, state)
            whole = [region for region in regions if region.cut is None]
            region_rows = [[region.of(param), region.of(param.grad), *map(region.view, _KERNEL_STATE),
                            cpu.code_tables(), state["step"]] for region in whole]
            # Decided for the whole parameter, so that every rank (an empty shard's too) refuses alike.
            dtype = _local(param).dtype
            why = (None if not fused else f"it has no {dtype} kernel" if not cpu.fusable_dtype(dtype)
                   else f"it is on {_local(param).device}, not the CPU" if kernel is None
                   else next(filter(None, (cpu.unfit(kernel, dtype, row) for row in region_rows)), None))
            copied = why is not None and kernel is not None and cpu.fusable_dtype(dtype) and all(
                _fits_through_copies(kernel, dtype, row) for row in region_rows)
            takes = fused and (why is None or copied)
            if fused and not takes:
                self._refuse_if_fused_required(param, group, why)
            for region, row in zip(whole, region_rows):
                if takes:
                    rows.setdefault((dtype, state["step"].dtype, copied), []).append(row)
            simple += [region for region in regions if not takes or region.cut is not None]
            if isinstance(param, DTensor):  # the same slots on every rank, used or not
                cut.setdefault(param.device_mesh, []).append(_cut_slots(regions, lambda region: region))

        def run():
            if plan is not None:
                plan.run(self)
            self.state.update(states)
            self._maths_step(simple, cut, group, h)
            scalars = cpu.scalars(kernel, h) if kernel else ()
            for (dtype, _, copied), bucket in rows.items():
                seed = _seed() if dtype == torch.bfloat16 and group.get("stochastic_rounding") else None
                if copied:
                    _run_through_copies(kernel, dtype, bucket, scalars, seed)
                else:
                    cpu.Call(kernel, dtype, bucket).run(scalars, seed)
            counted = {id(row[-1]) for bucket in rows.values() for row in bucket}
            for param in params:  # the kernel counted the steps of the parameters it took
                if id(self.state[param]["step"]) not in counted:
                    self.state[param]["step"] += 1
        return run

    def _quantized_kernel_of(self, group: dict, dtype: torch.dtype | None, born: bool = False) -> Kernel | None:
        """The plan's kernel for the quantized parameters (``_kernel``'s part for them)."""
        h = self._hyperparameters(group)
        del h["amsgrad"]
        kernel = self._quantized_kernel(group, h)
        return None if kernel is None else Kernel(kernel, _KERNEL_STATE, cpu.scalars(kernel, h))

    @staticmethod
    def _quantized_row(param, grad, state, kernel) -> list:
        """A quantized parameter's row for the 8-bit kernel: its codes, scales and the code tables."""
        return [param, grad, *(state[key] for key in _KERNEL_STATE), cpu.code_tables(), state["step"]]

    def _quantized_kernel(self, group: dict, h: dict):
        """The 8-bit kernel: its loops over blocks (``kernels/adam8bit.h``) around Adam's maths,
        printed from ``adamlab.maths.adam`` for this group's settings; None if it cannot be had."""
        try:
            return cpu.generated(adam8bit.adam, h, {"step": "tensor", "m": "element", "v": "element"}, "adam8bit")
        except (cpu.KernelsUnavailable, symbolic.TraceError) as error:
            _without_fused_step(group, type(self).__name__, "no fused 8-bit kernel", error)
            return None

    def _maths_step(self, regions: list, cut: dict, group: dict, h: dict) -> None:
        """``adamlab.maths.adam8bit`` on each region, the blocks cut by shards' edges coded with
        the scales the ranks agree on (``cut``: each mesh's slots, see ``_cut_slots``)."""
        steps = [self._full_precision_update(region, group, h) for region in regions]
        maxima = {id(region): [quantize.block_maxima(getattr(step.state, moment), start=region.start)
                               for moment in ("m", "v")] for region, step in zip(regions, steps)}
        for mesh, slots in cut.items():
            _agree_on_cut_blocks([[slot and (slot[0], maxima[id(slot[1])]) for slot in pair] for pair in slots],
                                 mesh)
        for region, step in zip(regions, steps):
            m_scales, v_scales = maxima[id(region)]
            new = self.quantized_maths.quantized(step, start=region.start, m_scales=m_scales, v_scales=v_scales)
            region.of(region.param).copy_(stochastic_round(new.param) if _rounds_stochastically(region.param, group)
                                          else new.param)
            for key, field in self.quantized_fields.items():
                region.view(key).copy_(getattr(new.state, field))

    def _full_precision_update(self, region: "_Region", group: dict, h: dict):
        """The maths' step of a region, its new m and v not yet quantized."""
        param, state = region.param, region.state
        fields = {field: region.view(key) for key, field in self.quantized_fields.items()}
        work = torch.promote_types(param.dtype, torch.float32)  # as the kernel computes
        return self.quantized_maths.full_precision_update(
            region.of(param.grad).to(work), self.quantized_maths.State(step=state["step"].item(), **fields),
            region.of(param).to(work), start=region.start, **h)

    # --- checkpoints ----------------------------------------------------------------------

    def _check_inputs(self, param, group):
        super()._check_inputs(param, group)
        state = self.state.get(param)
        if state and self.quantized(param) and "exp_avg_absmax" not in state:
            raise StepRefused(f"the state of a parameter of {param.numel()} elements holds full-precision moments; "
                              f"adamlab.{type(self).__name__} keeps them as 8-bit codes (load_state_dict "
                              f"quantizes a full-precision state)")

    def _check_param_state(self, param_state, param, group, where):
        name = f"adamlab.{type(self).__name__}"
        if not self.quantized(param) or "exp_avg_absmax" not in param_state:
            # Full-precision state: what Adam keeps (a quantized parameter's is quantized on load).
            return super()._check_param_state(param_state, param, group, where)
        expected = ("step",) + tuple(self.quantized_fields)
        if set(param_state) != set(expected):
            raise StepRefused(f"the state of {where} has keys {sorted(param_state)}, "
                              f"{name} keeps {sorted(expected)} for a parameter of {param.numel()} elements")
        _check_state_entry("step", param_state["step"], (), where)
        for key, scales_key in _SCALES.items():
            codes, scales = param_state[key], param_state[scales_key]
            if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8 or codes.shape != param.shape:
                raise StepRefused(f"state {key!r} of {where} must be uint8 codes of the parameter's shape "
                                  f"{tuple(param.shape)}, got {_describe(codes)}")
            # A sharded parameter's state in a step holds the scales of the blocks its shard touches;
            # a checkpoint's, the whole tensor's.
            count = (blocks(param.numel()) if not isinstance(param, DTensor) or isinstance(scales, DTensor)
                     else blocks(_shard_range(param)[1], _shard_range(param)[0]))
            if not isinstance(scales, torch.Tensor) or not scales.is_floating_point() or scales.shape != (count,):
                raise StepRefused(f"state {scales_key!r} of {where} has {_describe(scales)}; {name} keeps one "
                                  f"scale per block of {BLOCK} elements, {count} for this "
                                  f"parameter (a state saved with another block size?)")

    def state_dict(self) -> dict:
        """torch.optim's state_dict. A sharded parameter's scales appear as the whole tensor's,
        a DTensor split by rows, so that torch.distributed.checkpoint can reshard them; this
        takes a collective, so every rank must call it (as DCP's helpers do)."""
        state_dict = super().state_dict()
        params = [param for group in self.param_groups for param in group["params"]]
        for index, param_state in state_dict["state"].items():
            param = params[index]
            if isinstance(param, DTensor) and "exp_avg_absmax" in param_state:
                state_dict["state"][index] = {**param_state, **{key: _whole_scales(param, param_state[key])
                                                                for key in _SCALES.values()}}
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this optimizer, or a full-precision Adam/AdamW state of the
        same model (torch.optim's or adamlab's), whose moments are quantized on load.

        A state_dict that does not fit raises a ``ValueError`` naming the first mismatch and
        changes nothing. Sharded parameters take a collective, as ``state_dict``.
        """
        params_by_id = self._check_loadable(state_dict)
        state_dict = _with_step_tensors(state_dict)
        states, kept = {}, {}
        for param_id, param_state in state_dict["state"].items():
            param = params_by_id[param_id][1]
            if param_state and self.quantized(param):
                param_state = dict(param_state)
                if "exp_avg_absmax" in param_state:
                    quantized = {key: (_piece(param, param_state[key]), _scales_piece(param, param_state[scales]))
                                 for key, scales in _SCALES.items()}
                else:  # a full-precision state: quantize it
                    work = torch.promote_types(param.dtype, torch.float32)
                    quantized = _quantize_piece(param, {key: _piece(param, param_state[key].detach()).to(
                        param.device, work) for key in _SCALES})
                for key, (codes, scales) in quantized.items():
                    param_state[key], param_state[_SCALES[key]] = _like(param, codes), scales
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


# --- sharded parameters (FSDP2) -----------------------------------------------------------------
#
# A rank holding rows of a parameter steps its elements in the whole tensor's grid of blocks,
# so the state it keeps is the unsharded state's codes and scales for those elements. Where a
# shard's edge cuts a block, the ranks holding its pieces agree on the block's scale (the
# largest magnitude any of them found) before coding it: the codes are then those of the
# unsharded step, whatever the number of ranks.


def _shard_range(param: torch.Tensor) -> tuple[int, int]:
    """The flat index in the whole tensor of this rank's first element of ``param``, and how
    many elements it holds (FSDP2 deals out rows as ``torch.chunk`` does)."""
    local = _local(param)
    if not isinstance(param, DTensor) or param.placements[0].is_replicate():
        return 0, local.numel()
    mesh, rows = param.device_mesh, param.shape[0]
    per_rank = -(-rows // mesh.size())
    first = min(mesh.get_local_rank() * per_rank, rows)
    if local.shape[0] != min(per_rank, rows - first):
        raise RuntimeError(f"a shard of {local.shape[0]} rows of a parameter of shape {tuple(param.shape)} "
                           f"on rank {mesh.get_local_rank()} of {mesh.size()}: not dealt out as torch.chunk "
                           f"does, which the 8-bit blocks assume")
    return first * (param.numel() // rows), local.numel()


class _Region(NamedTuple):
    """Elements ``begin`` to ``end`` of this rank's flat piece of a parameter: at flat index
    ``start`` of the whole tensor, whose piece here begins at ``shard_start``."""

    param: torch.Tensor
    state: dict
    begin: int
    end: int
    start: int
    shard_start: int
    cut: str | None  # "head" or "tail": a block a shard's edge cuts; None: whole blocks

    @property
    def block(self) -> int:
        return self.start // BLOCK

    def of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The region's elements of the parameter, its gradient or its codes (a view)."""
        local = _local(tensor)
        if self.begin == 0 and self.end == local.numel():
            return local
        return local.view(-1)[self.begin:self.end]

    def view(self, key: str) -> torch.Tensor:
        """The region's part of a state tensor: its codes, or its blocks' scales."""
        return self.scales(self.state[key]) if key in _SCALES.values() else self.of(self.state[key])

    def scales(self, scales: torch.Tensor) -> torch.Tensor:
        """The region's blocks' scales, from this rank's scales of the blocks it touches."""
        first = self.block - self.shard_start // BLOCK
        return scales[first:first + blocks(self.end - self.begin, self.start)]


def _regions(param: torch.Tensor, state: dict) -> list[_Region]:
    """This rank's elements of a parameter: whole blocks of the full tensor's grid, for the
    kernel or the maths, between the pieces of the blocks its edges cut (one at most at each
    end; a short shard may be a single piece)."""
    start, count = _shard_range(param)
    head = min(count, -start % BLOCK)
    tail = count if start + count == param.numel() else max(head, count - (start + count) % BLOCK)
    return [_Region(param, state, begin, end, start + begin, start, cut)
            for begin, end, cut in ((0, head, "head"), (head, tail, None), (tail, count, "tail")) if end > begin]


def _piece(param: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """This rank's elements of a tensor shaped as the whole parameter (a DTensor, or whole)."""
    if not isinstance(param, DTensor):
        return tensor
    if isinstance(tensor, DTensor):
        return tensor.redistribute(param.device_mesh, param.placements).to_local()
    start, count = _shard_range(param)
    return tensor.reshape(-1)[start:start + count].view(_local(param).shape)


def _like(param: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """A tensor of this rank's elements, sharded as the parameter is."""
    if not isinstance(param, DTensor):
        return local
    return DTensor.from_local(local, param.device_mesh, param.placements, run_check=False,
                              shape=param.shape, stride=param.stride())


def _scales_piece(param: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The scales of the blocks this rank's elements touch, from the whole tensor's."""
    if not isinstance(param, DTensor):
        return scales
    whole = scales.full_tensor() if isinstance(scales, DTensor) else scales
    start, count = _shard_range(param)
    return whole[start // BLOCK:start // BLOCK + blocks(count, start)].clone()


def _whole_scales(param: DTensor, scales: torch.Tensor) -> DTensor:
    """The whole tensor's scales from each rank's, split by rows as the parameter is."""
    mesh = param.device_mesh
    if param.placements[0].is_replicate():
        return DTensor.from_local(scales, mesh, [Replicate()], run_check=False)
    start, _ = _shard_range(param)
    whole = scales.new_zeros(blocks(param.numel()))  # scales are never negative: MAX merges
    whole[start // BLOCK:start // BLOCK + scales.numel()] = scales
    dist.all_reduce(whole, dist.ReduceOp.MAX, group=mesh.get_group())
    return DTensor.from_local(whole, mesh, [Replicate()], run_check=False).redistribute(mesh, [Shard(0)])


def _quantize_piece(param: torch.Tensor, moments: dict) -> dict:
    """Full-precision moments (this rank's elements) as codes and scales, by state key."""
    start, _ = _shard_range(param)
    scales = {key: quantize.block_maxima(moment, start=start) for key, moment in moments.items()}
    if isinstance(param, DTensor):
        _agree_on_cut_blocks([_cut_slots(_regions(param, {}), lambda region: [
            region.scales(scales[key]) for key in _SIGNED])], param.device_mesh)
    return {key: quantize.quantize(moment, signed=_SIGNED[key], start=start, scales=scales[key])
            for key, moment in moments.items()}


def _cut_slots(regions: list[_Region], scales_of) -> list:
    """The two slots (head and tail) of a parameter's cut blocks for ``_agree_on_cut_blocks``."""
    return [next(((region.block, scales_of(region)) for region in regions if region.cut == end), None)
            for end in ("head", "tail")]


def _agree_on_cut_blocks(params_slots: list[list], mesh) -> None:
    """Give each block a shard's edge cuts, on every rank holding part of it, the largest scales
    any of them found for it (in place). ``params_slots``: for each sharded parameter, in the
    same order on every rank, its ``_cut_slots``."""
    group = mesh.get_group()
    slots = [(index, slot) for index, pair in enumerate(params_slots) for slot in pair]
    mine = torch.full((len(slots), 4), -1.0, dtype=torch.float64, device=mesh.device_type)
    for row, (index, slot) in zip(mine, slots):  # the parameter, the block, its m and v scales
        if slot is not None:
            row[0], row[1] = index, slot[0]
            row[2:] = torch.cat(slot[1])
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, mine, group=group)
    everyone = torch.cat(everyone)
    for row, (_, slot) in zip(mine, slots):
        if slot is not None:
            largest = everyone[(everyone[:, :2] == row[:2]).all(dim=1), 2:].amax(dim=0)
            for scale, value in zip(slot[1], largest):
                scale.copy_(value)


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
