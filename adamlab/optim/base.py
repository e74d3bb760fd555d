"""What adamlab's torch optimizers share: validation, state layout and one step loop.

A subclass names its maths module (``adamlab.maths.<family>``), the state keys it
keeps under torch.optim's names with the maths field each one holds, and its
constructor. The step loop here feeds every parameter's gradient, state and
hyperparameters to that module's ``update`` and writes the result back in place.
"""

import inspect
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import NamedTuple

import torch
from torch.distributed.tensor import DTensor

from .. import kernels
from ..kernels import compiled
from ..maths.hyperparameters import check_known


def _real(tensor: torch.Tensor) -> torch.Tensor:
    """A complex tensor as real pairs: the maths treats real and imaginary parts as two reals, as torch.optim does."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a DTensor (a view of its storage), or the tensor itself."""
    return tensor._local_tensor if isinstance(tensor, DTensor) else tensor


def _zero_dim(value):
    """A one-element tensor hyperparameter as a 0-d view, so it broadcasts like a number."""
    return value.reshape(()) if isinstance(value, torch.Tensor) else value


class Kernel(NamedTuple):
    """How a parameter group runs on the fused kernel: which one, over which state, with what."""

    name: str
    state_keys: tuple[str, ...]  # the state tensors after param and grad, in the kernel's order
    scalars: tuple  # hyperparameters, in the kernel's order
    options: tuple[str, ...]  # the kernel's option flags that are set


_reported_missing: set[str] = set()  # the fused steps already reported missing, once each
_COMPLEX = (torch.complex64, torch.complex128)  # taken by the kernels as pairs of reals
_FUSED_DTYPES = (torch.float32, torch.float64, torch.bfloat16) + _COMPLEX


def _without_fused_step(group: dict, name: str, missing: str, error: Exception) -> None:
    """A fused step cannot be had: an error under fused=True, else one warning per kind of step
    (the caller then takes the simple path)."""
    if group.get("fused"):
        raise RuntimeError(f"adamlab.{name}(fused=True): {error}") from None
    if missing not in _reported_missing:
        print(f"adamlab: {missing}, using the simple path ({error})", file=sys.stderr)
        _reported_missing.add(missing)


def _fused_kernels_usable(group: dict, name: str) -> bool:
    """Whether the group asks for the fused path (fused None or True) and the kernels are here."""
    if group.get("fused") is False:
        return False
    try:
        kernels.library()
    except kernels.KernelsUnavailable as error:
        _without_fused_step(group, name, "fused kernels unavailable", error)
        return False
    return True


class _Entry(NamedTuple):
    param: torch.Tensor
    dtype: torch.dtype
    state: dict
    tensors: tuple  # the state tensors the kernel reads, then the step counter, as the plan found them
    row: list  # the kernel's row but for the gradient
    complex: bool
    bucket: tuple  # (dtype the kernel sees, step counter dtype, first step)


class _Plan(NamedTuple):
    """The parameters of a group that the fused kernel takes, with their state, checked once."""

    group: dict
    states: dict  # the optimizer's state mapping the plan was made from
    keys: tuple[str, ...]  # the state tensors the kernel reads
    watched: tuple[str, ...]  # those and the step counter: replacing one voids the plan
    param_ids: tuple[int, ...]  # the parameters that had gradients (the plan keeps them alive)
    entries: list[_Entry]
    others: list[torch.Tensor]  # parameters for the simple path
    first_step: bool  # some state is born in this step: the plan serves this step only

    def serves(self, optimizer: "Optimizer", group: dict, params: list, kernel: Kernel) -> bool:
        return (self.group is group and self.states is optimizer.state and self.keys == kernel.state_keys
                and self.param_ids == tuple(map(id, params)))

    @classmethod
    def make(cls, optimizer: "Optimizer", params, kernel: Kernel, group: dict) -> "_Plan":
        entries, others, any_first = [], [], False
        keys, has_step = kernel.state_keys, "step" in optimizer.state_fields
        watched = keys + ("step",) if has_step else keys
        for param in params:
            if param.device.type in compiled.DEVICES or not param.is_cpu:
                others.append(param)  # for the compiled path, where it can take them
                continue
            # A sharded (DTensor) parameter's state is sharded alike; an elementwise step runs on
            # this process's shards of each, as if they were the whole tensors.
            grad, dtype = _local(param.grad), param.dtype
            state = optimizer.state.get(param) or optimizer._init_state(param, group)
            if watched:  # torch keeps no entry for a parameter without state (SGD without momentum)
                optimizer.state[param] = state
            tensors = [state.get(key) for key in keys]
            missing = any(tensor is None for tensor in tensors)
            step = state.get("step") if has_step else None
            fusable = (dtype in _FUSED_DTYPES and _local(param).is_contiguous()
                       and grad.dtype == dtype and grad.is_contiguous()
                       and all(tensor is None or (tensor.dtype == dtype and _local(tensor).is_contiguous())
                               for tensor in tensors)
                       and (not missing or all(key in optimizer.born_at_first_step
                                               for key, tensor in zip(keys, tensors) if tensor is None))
                       and (not has_step or (step is not None and step.is_cpu
                                             and step.dtype in (torch.float32, torch.float64))))
            if not fusable:
                optimizer._refuse_if_fused_required(param, group)
                others.append(param)
                continue
            if missing:  # born now: the kernel's first-step mode writes it before reading it
                any_first = True
                for index, key in enumerate(keys):
                    if tensors[index] is None:
                        tensors[index] = state[key] = torch.empty_like(param, memory_format=torch.contiguous_format)
            complex_ = dtype in _COMPLEX
            row = [torch.view_as_real(tensor) if complex_ else tensor for tensor in map(_local, (param, *tensors))]
            if has_step:
                row.append(step)
                tensors.append(step)
            bucket = (row[0].dtype, step.dtype if has_step else None, missing)
            entries.append(_Entry(param, dtype, state, tuple(tensors), row, complex_, bucket))
        return cls(group, optimizer.state, keys, watched, tuple(map(id, params)), entries, others, any_first)

    def rows(self) -> dict[tuple, list[list[torch.Tensor]]] | None:
        """The kernel's rows by bucket, gradients included; None if something the plan relied on
        has changed (a gradient's layout, a parameter's storage, a state tensor replaced)."""
        buckets: dict[tuple, list[list[torch.Tensor]]] = {}
        states, watched, n_keys = self.states, self.watched, len(self.keys)
        for entry in self.entries:
            param = entry.param
            grad = param.grad
            if grad is None:
                return None
            grad = _local(grad)
            if (grad.dtype != param.dtype or not grad.is_contiguous()
                    or param.dtype != entry.dtype or not _local(param).is_contiguous()):
                return None
            if watched:
                state = entry.state
                if states.get(param) is not state:
                    return None
                for key, tensor in zip(watched, entry.tensors):
                    if state.get(key) is not tensor:
                        return None
            if entry.complex:  # views of the storage as it is now
                row = [torch.view_as_real(_local(tensor)) for tensor in (param, grad, *entry.tensors[:n_keys])]
                row += entry.row[n_keys + 1:]
            else:
                row = [entry.row[0], grad, *entry.row[1:]]
            bucket = buckets.get(entry.bucket)
            if bucket is None:
                buckets[entry.bucket] = bucket = []
            bucket.append(row)
        return buckets


def stochastic_round(x: torch.Tensor) -> torch.Tensor:
    """A float32 tensor rounded to bfloat16 up or down at random, in proportion to how near each
    neighbour is: unbiased, so updates smaller than half a bfloat16 step still add up on average.
    Draws from torch's default generator (the fused kernels use their own counter-based bits)."""
    bits = x.view(torch.int32)
    noise = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, device=x.device)
    rounded = ((bits + noise) & -(1 << 16)).view(torch.float32)  # the low 16 bits cleared: exact in bfloat16
    return torch.where(x.isnan(), x, rounded).to(torch.bfloat16)


def _rounds_stochastically(param: torch.Tensor, group: dict) -> bool:
    return bool(group.get("stochastic_rounding")) and param.dtype == torch.bfloat16


def _seed() -> int:
    """A fresh seed for one kernel call's stochastic rounding, from torch's default generator."""
    return int(torch.randint(0, 2**31 - 1, ()).item())


_KERNEL_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _kernel_takes(param: torch.Tensor, step: torch.Tensor) -> bool:
    """Whether the CPU kernels take a real parameter (this process's shard, if sharded), its
    gradient and step counter as they are (its other state tensors are each optimizer's to check)."""
    local, grad = _local(param), _local(param.grad)
    return (local.is_cpu and local.dtype in _KERNEL_DTYPES and local.is_contiguous()
            and grad.dtype == local.dtype and grad.is_contiguous()
            and step.is_cpu and step.dtype in (torch.float32, torch.float64))


def _run_kernel(name: str, dtype: torch.dtype, step_dtype: torch.dtype | None, rows: list, scalars,
                options: tuple, group: dict) -> None:
    """One kernel call over a bucket of rows: the step counters' dtype and, for bfloat16 with
    stochastic rounding, a fresh seed are added to what the optimizer asks for."""
    options = options + (("step_f64",) if step_dtype == torch.float64 else ())
    seed = _seed() if dtype == torch.bfloat16 and group.get("stochastic_rounding") else None
    kernels.run(name, dtype, rows, scalars, options, seed=seed)


def _step_dtype() -> torch.dtype:
    # torch.optim's convention for the "step" counter, kept so checkpoints match.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class Optimizer(torch.optim.Optimizer):
    """Base of adamlab's optimizers: ``torch.optim.Optimizer`` driven by ``adamlab.maths``."""

    maths: ModuleType
    #: torch.optim's state key -> the field of the maths state that holds it.
    state_fields: dict[str, str]
    #: State the fused kernel may create at a parameter's first step (SGD's momentum buffer).
    born_at_first_step: tuple[str, ...] = ()
    #: Whether each element's step depends on its own gradient and state alone. Then a sharded
    #: (DTensor) parameter steps on each process's shard by the fused kernel; otherwise (LAMB's
    #: norms, Adafactor's row and column means) through DTensor's operations, which reduce
    #: across the shards.
    elementwise: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "maths" in cls.__dict__:
            signature = inspect.signature(cls.maths.update)
            cls._maths_arguments = tuple(
                name for name, parameter in signature.parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY)

    # --- what a subclass may refine -------------------------------------------------

    def _check_group(self, group: dict) -> None:
        """Raise if a parameter group's hyperparameters or flags are not allowed."""
        name = type(self).__name__
        check_known(group)
        if group.get("differentiable"):
            raise ValueError(f"adamlab.{name} does not support differentiable=True; "
                             f"use torch.optim.{name} to differentiate through the step")
        if group.get("foreach"):
            raise ValueError(f"adamlab.{name} has no foreach implementation; leave foreach=None "
                             f"for its fused step (or fused=False for the simple one)")

    def _state_keys(self, group: dict) -> tuple[str, ...]:
        """The keys of a parameter's state once it has taken a step, in torch.optim's order."""
        return tuple(self.state_fields)

    def _param_state_keys(self, param: torch.Tensor, group: dict) -> tuple[str, ...]:
        """The state keys of one parameter: those of its group, unless they depend on its shape."""
        return self._state_keys(group)

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        """A parameter's state before its first step: zeros, and a ``step`` counter."""
        state = {}
        for key in self._param_state_keys(param, group):
            if key == "step":
                # Off capturable mode the counter lives on the CPU, so reading it costs no device sync.
                device = param.device if group.get("capturable") else "cpu"
                state[key] = torch.zeros((), dtype=_step_dtype(), device=device)
            else:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    def _kernel(self, group: dict) -> Kernel:
        """The fused CPU kernel's arguments for a parameter group."""
        raise NotImplementedError

    def _hyperparameters(self, group: dict) -> dict:
        """The maths' keyword arguments from a parameter group."""
        values = {name: _zero_dim(group[name]) for name in self._maths_arguments if name in group}
        if "betas" in group:
            values["beta1"], values["beta2"] = map(_zero_dim, group["betas"])
        return values

    # --- torch.optim.Optimizer ----------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        self._check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)

    @property
    def _plans(self) -> dict:
        """The fused kernel's plans, one per parameter group (never saved with the state)."""
        if "_fused_plans" not in self.__dict__:
            self.__dict__["_fused_plans"] = {}
        return self.__dict__["_fused_plans"]

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        # Checkpoints from older torch versions lack the newer flags.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [(param, group) for group in self.param_groups for param in group["params"]
                if param.grad is not None]
        for param, _ in work:  # check everything before changing anything
            if param.grad.is_sparse:
                raise RuntimeError(f"adamlab.{type(self).__name__} does not support sparse gradients")
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if params:
                self._step_group(params, group)
        return loss

    def _step_group(self, params: list[torch.Tensor], group: dict) -> None:
        """Step the parameters of a group that have gradients: fused where it can, else simply.

        Sharded (DTensor) parameters of a step that is not elementwise always step simply: there
        DTensor's operations reduce the step's sums and means across the shards."""
        sharded = [] if self.elementwise else [param for param in params if isinstance(param, DTensor)]
        if sharded:
            params = [param for param in params if not isinstance(param, DTensor)]
        if _fused_kernels_usable(group, type(self).__name__):
            params = self._fused_cpu_update(params, group)
        if params and group.get("fused") is not False:
            params = self._compiled_update(params, group)
        for param in params + sharded:
            self._update(param, group)

    def _compiled_update(self, params: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """Step the parameters on a GPU with the compiled maths; return the others.

        A parameter whose state is not all there yet (SGD's momentum buffer, born from the
        first gradient) takes the simple path for that one step.
        """
        capturable = group.get("capturable")
        batches, others = {}, []
        for param in params:
            if param.device.type not in compiled.DEVICES:
                if not param.is_cpu:  # the CPU kernel's plan has refused the CPU's already
                    self._refuse_if_fused_required(param, group)
                others.append(param)
                continue
            state = self.state.get(param) or self._init_state(param, group)
            keys = self._param_state_keys(param, group)
            if (param.grad.dtype != param.dtype or not all(key in state for key in keys)
                    or _rounds_stochastically(param, group)):  # no stochastic rounding compiled yet
                others.append(param)
                continue
            if state:
                self.state[param] = state
            batches.setdefault((param.device, _real(param).dtype, keys), []).append((param, state))
        hyperparameters = self._hyperparameters(group)
        for (_, _, keys), batch in batches.items():
            names = tuple(self.state_fields[key] for key in keys if key != "step")
            steps = [state.get("step") for _, state in batch]
            step_values = [None if step is None else
                           step.to(torch.promote_types(step.dtype, _real(param).dtype)) if capturable
                           else step.item() for (param, _), step in zip(batch, steps)]
            try:
                compiled.update(self.maths, names, [_real(param) for param, _ in batch],
                                [_real(param.grad) for param, _ in batch],
                                [[_real(state[key]) for key in keys if key != "step"] for _, state in batch],
                                step_values, hyperparameters)
            except compiled.CompilerUnavailable as error:
                _without_fused_step(group, type(self).__name__, "no fused GPU step", error)
                others.extend(param for param, _ in batch)
                continue
            if steps[0] is not None:
                torch._foreach_add_(steps, 1)
        return others

    def _fused_cpu_update(self, params: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """Step the parameters the CPU kernel takes; return the others."""
        return self._fused_update(params, self._kernel(group), group)

    def _fused_update(self, params: list[torch.Tensor], kernel: Kernel, group: dict) -> list[torch.Tensor]:
        """Run the kernel over every parameter it can take; return the others for the simple path.

        Which parameters those are, and where their state lives, is worked out once and kept
        as a plan while it holds: this runs for every parameter at every step, and on 1,000
        small tensors its Python would otherwise cost more than the kernel.
        """
        plan = self._plans.get(id(group))
        buckets = plan.rows() if plan is not None and plan.serves(self, group, params, kernel) else None
        if buckets is None:
            plan = self._plans[id(group)] = _Plan.make(self, params, kernel, group)
            buckets = plan.rows()
        for (dtype, step_dtype, first_step), rows in buckets.items():
            _run_kernel(kernel.name, dtype, step_dtype, rows, kernel.scalars,
                        kernel.options + (("first_step",) if first_step else ()), group)
        if plan.first_step:  # the buffers born in this step are ordinary state from now on
            del self._plans[id(group)]
        return plan.others

    def _refuse_if_fused_required(self, param: torch.Tensor, group: dict) -> None:
        if group.get("fused"):
            raise ValueError(
                f"adamlab.{type(self).__name__}(fused=True) cannot take a parameter of shape "
                f"{tuple(param.shape)} on {param.device}: its fused step needs a CUDA tensor, or a "
                f"float32, float64 or bfloat16 CPU tensor with contiguous gradient and state of the same dtype")

    def _update(self, param: torch.Tensor, group: dict) -> None:
        """The simple path: the maths on tensors, written back in place."""
        state = self.state.get(param) or self._init_state(param, group)
        real_param = _real(param)
        # Stochastic rounding needs the new weight before any rounding: work in float32.
        stochastic = _rounds_stochastically(param, group)
        work = (lambda tensor: tensor.float()) if stochastic else (lambda tensor: tensor)
        fields = dict.fromkeys(self.maths.State._fields)
        for key, field in self.state_fields.items():
            if key in state:
                fields[field] = work(_real(state[key]))
        if "step" in state:
            step = state["step"]
            fields["step"] = (step.to(torch.promote_types(step.dtype, real_param.dtype))
                              if group.get("capturable") else step.item())
        new = self.maths.update(work(_real(param.grad)), self.maths.State(**fields), work(real_param),
                                **self._hyperparameters(group))
        real_param.copy_(stochastic_round(new.param) if stochastic else new.param)
        for key, field in self.state_fields.items():
            value = getattr(new.state, field)
            if key == "step" or value is None:
                continue
            if key in state:
                _real(state[key]).copy_(value)
            else:  # a buffer born at the first step (SGD's momentum)
                value = value.clone()
                state[key] = torch.view_as_complex(value) if param.is_complex() else value
        if "step" in state:
            state["step"] += 1
        if state:  # torch keeps no entry for a parameter without state (SGD without momentum)
            self.state[param] = state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this optimizer or by torch.optim's class of the same name.

        A state_dict of another model, optimizer or configuration raises a
        ``ValueError`` that names the first mismatch, and changes nothing.
        """
        self._check_loadable(state_dict)
        super().load_state_dict(state_dict)

    def _check_loadable(self, state_dict) -> dict:
        """Raise if ``state_dict`` does not fit this optimizer; else map each saved parameter
        id to (where it is, the parameter, its group's settings)."""
        name = f"adamlab.{type(self).__name__}"
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError(f"{name}.load_state_dict expects a mapping with 'state' and "
                             f"'param_groups' (from Optimizer.state_dict()), got {type(state_dict).__name__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"the state_dict has {len(saved_groups)} parameter groups, "
                             f"this {name} has {len(self.param_groups)}")
        params_by_id = {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {index} has {len(saved['params'])} parameters "
                                 f"in the state_dict, {len(group['params'])} in this {name}")
            merged = {**self.defaults, **saved}
            self._check_group(merged)
            for position, (param_id, param) in enumerate(zip(saved["params"], group["params"])):
                params_by_id[param_id] = (f"parameter {position} of group {index}", param, merged)
        for param_id, param_state in state_dict["state"].items():
            if param_id not in params_by_id:
                raise ValueError(f"the state_dict has state for parameter id {param_id!r}, "
                                 f"which none of its parameter groups lists")
            where, param, group = params_by_id[param_id]
            if param_state:
                self._check_param_state(param_state, param, group, where)
        return params_by_id

    def _check_param_state(self, param_state: dict, param: torch.Tensor, group: dict, where: str) -> None:
        """Raise if one parameter's saved state does not fit it under this optimizer's settings."""
        expected = self._param_state_keys(param, group)
        if set(param_state) != set(expected):
            raise ValueError(f"the state of {where} has keys {sorted(param_state)}, "
                             f"adamlab.{type(self).__name__} with these settings keeps {sorted(expected)}")
        for key, value in param_state.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.shape != param.shape:
                raise ValueError(f"state {key!r} of {where} has shape {tuple(value.shape)}, "
                                 f"the parameter has shape {tuple(param.shape)}")
