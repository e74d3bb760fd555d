"""What adamlab's torch optimizers share: validation, state layout and one step loop.

A subclass names its maths module (``adamlab.maths.<family>``), the state keys it
keeps under torch.optim's names with the maths field each one holds, and its
constructor. The step loop here feeds every parameter's gradient, state and
hyperparameters to that module's ``update`` and writes the result back in place.
"""

import inspect
import operator
import sys
from collections.abc import Callable
from collections.abc import Mapping
from types import ModuleType
from typing import NamedTuple

import torch
from torch.distributed.tensor import DTensor

from .. import kernels
from ..kernels import compiled
from ..maths.hyperparameters import check_known, keyword_arguments
from .checks import (StepRefused, _check_state_entry, _describe, _local, _overlaps, _step_dtype, _where, _Where,
                     _with_step_tensors)


def _real(tensor: torch.Tensor) -> torch.Tensor:
    """A complex tensor as real pairs: the maths treats real and imaginary parts as two reals, as torch.optim does."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor




def _zero_dim(value):
    """A one-element tensor hyperparameter as a 0-d view, so it broadcasts like a number."""
    return value.reshape(()) if isinstance(value, torch.Tensor) else value


class Kernel(NamedTuple):
    """How a parameter group runs on the fused kernel: which one, over which state, with what."""

    generated: "kernels.generate.Kernel"  # printed from the maths
    state_keys: tuple[str, ...]  # the state after param and grad, in the kernel's order
    scalars: tuple  # hyperparameters, in the kernel's order


_reported_missing: set[str] = set()  # the fused steps already reported missing, once each
_COMPLEX = (torch.complex64, torch.complex128)  # taken by the kernels as pairs of reals
_HALF = (torch.float16, torch.bfloat16)  # computed in float32 and rounded once, on every path


def _without_fused_step(group: dict, name: str, missing: str, error: Exception) -> None:
    """A fused step cannot be had: an error under fused=True, else one warning per kind of step
    (the caller then takes the simple path)."""
    if group.get("fused"):
        raise StepRefused(f"adamlab.{name}(fused=True): {error}") from None
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


class _Bucket(NamedTuple):
    """The parameters of a plan that share one kernel call: one dtype, one kind of step counter."""

    dtype: torch.dtype
    first_step: bool  # some state is born in this call: its kernel writes it before reading it
    params: list[torch.Tensor]
    rows: list[list[torch.Tensor]]  # as checked: plain tensors, or real views of local shards
    plain: bool  # no complex or sharded parameter: the gradients are the parameters' own, as they are
    call: kernels.cpu.Call | None  # None: a row whose layout the kernel cannot walk, copied each step


def _kernel_view(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor as a kernel sees it: this process's shard of a DTensor, complex as real pairs."""
    return _real(_local(tensor))


class _Plan:
    """How a parameter group steps: the parameters the fused CPU kernel takes, checked once, and
    the others; kept while nothing it relied on has changed, since working this out costs more
    than the kernel on many small tensors.

    Making a plan checks everything and changes nothing: state a parameter lacks is made but
    kept aside (``pending``) until :meth:`run`, so a step that is refused leaves the optimizer
    as it was.

    ``kernel_of`` and ``row_of``: the optimizer's ``_kernel`` and ``_kernel_row``, or others of
    its own for some of its parameters (8-bit Adam's quantized ones).
    """

    def __init__(self, optimizer: "Optimizer", params: list[torch.Tensor], group: dict, kernel_of=None,
                 row_of=None):
        self.group, self.states, self.params = group, optimizer.state, list(params)
        self.kernel_of, self.row_of = kernel_of or optimizer._kernel, row_of or optimizer._kernel_row
        on_cpu = [param.device.type not in compiled.DEVICES and _local(param).is_cpu for param in params]
        self.on_cpu = any(on_cpu)  # else no CPU kernel is made (nor built) for the group
        kernel = self.kernel_of(group, None) if self.on_cpu else None
        self.kernel = None if kernel is None else kernel.generated
        self.others: list[torch.Tensor] = []
        self.pending: dict = {}  # parameter -> state to store when the step runs
        self.born: dict = {}  # parameter -> state tensors born in this step, added to its state
        grouped: dict[tuple, list] = {}
        for param, cpu in zip(params, on_cpu):
            if not cpu:
                self.others.append(param)  # for the compiled path where it can take them, or refused there
                continue
            if kernel is None:
                optimizer._refuse_if_fused_required(param, group, optimizer.kernel_limits)
                self.others.append(param)
                continue
            optimizer._check_inputs(param, group)
            state = optimizer.state.get(param)
            pending = state if state else optimizer._init_state(param, group)
            born = {key: torch.empty_like(param) for key in optimizer.born_at_first_step
                    if key in kernel.state_keys and key not in pending}
            row = [_kernel_view(tensor) for tensor in self.row_of(param, param.grad, {**pending, **born}, kernel)]
            dtype = row[0].dtype
            if dtype.is_floating_point and not kernels.fusable_dtype(dtype):  # float16 without _Float16: say so once
                _without_fused_step(group, type(optimizer).__name__, f"no fused {dtype} CPU step",
                                    RuntimeError(f"the CPU kernels were built without {dtype}"))
            why = (f"it has no {str(dtype).removeprefix('torch.')} kernel" if not kernels.fusable_dtype(dtype)
                   else kernels.cpu.unfit(kernel.generated, dtype, row))
            copied = (why is not None and kernels.fusable_dtype(dtype)
                      and _fits_through_copies(kernel.generated, dtype, row))
            if copied:
                why = None
            if why is not None:
                optimizer._refuse_if_fused_required(param, group, why)
                self.others.append(param)
                continue
            if not state and pending:  # torch keeps no entry for a parameter without state
                self.pending[param] = pending
            if born:
                self.born[param] = born
            plain = not isinstance(param, DTensor) and not param.is_complex()
            key = (dtype, row[-1].dtype if row[-1] is not row[0] else None, bool(born), copied)
            grouped.setdefault(key, []).append((param, row, plain))
        self.buckets = []
        first_steps_simple = False
        for (dtype, _, first_step, copied), entries in grouped.items():
            params_, rows, plains = zip(*entries)
            # State born in this step is written, never read: the kernel of the maths without it.
            chosen = self.kernel_of(group, None, born=True) if first_step else kernel
            if chosen is None:  # none for that (said once, or refused under fused=True): this step is simple
                for param in params_:
                    self.others.append(param)
                    self.born.pop(param, None)
                first_steps_simple = True
                continue
            call = None if copied else kernels.cpu.Call(chosen.generated, dtype, list(rows))
            self.buckets.append(_Bucket(dtype, first_step, list(params_), list(rows), all(plains), call))
        # A plan that makes state, copies rows or takes a first step simply serves its own step only.
        self.reusable = (not self.pending and not self.born and not first_steps_simple
                         and all(b.call is not None for b in self.buckets))
        with_state = [param for bucket in self.buckets for param in bucket.params]
        self._watched = with_state
        self._watched_states = [optimizer.state.get(param) for param in with_state]
        self._watched_entries = [(state, key, value) for state in self._watched_states if state
                                 for key, value in state.items()]

    def refresh(self, optimizer: "Optimizer", params: list, group: dict) -> bool:
        """Take this step's gradients; False if the plan no longer serves (other parameters, a
        state or tensor replaced, moved or resized, a gradient that does not fit): then make a
        new one, which checks everything again."""
        if (not self.reusable or self.group is not group or self.states is not optimizer.state
                or len(params) != len(self.params) or any(map(operator.is_not, params, self.params))):
            return False
        if not self.on_cpu:
            return True  # nothing here for a CPU kernel
        kernel = self.kernel_of(group, None)
        if kernel is None or kernel.generated is not self.kernel:
            return False  # another kernel now (weight decay or maximize switched on, say)
        if (any(map(operator.is_not, map(optimizer.state.get, self._watched), self._watched_states))
                or any(state.get(key) is not value for state, key, value in self._watched_entries)):
            return False
        for bucket in self.buckets:
            if bucket.plain:
                grads = list(map(_GRAD, bucket.params))
                if any(grad is None for grad in grads) or not bucket.call.refresh(grads):
                    return False
                continue
            if any(param.grad is None for param in bucket.params):
                return False
            # Complex or sharded: the checks read the tensors themselves (this process's shards),
            # not the real views made when the plan was: their storage is what counts now.
            rows = [[_local(tensor) for tensor in self.row_of(param, param.grad, optimizer.state.get(param, {}), kernel)]
                    for param in bucket.params]
            fixed = [tensor for row in rows for tensor in row[:1] + row[2:]]
            if not bucket.call.refresh([_real(row[1]) for row in rows], fixed):
                return False
        return True

    def run(self, optimizer: "Optimizer") -> None:
        """Store the state made for this step, then run each kernel call."""
        for param, state in self.pending.items():
            optimizer.state[param] = state
        for param, born in self.born.items():
            optimizer.state[param].update(born)
        group = self.group
        for bucket in self.buckets:
            kernel = self.kernel_of(group, bucket.dtype, born=bucket.first_step)
            seed = _seed() if bucket.dtype == torch.bfloat16 and group.get("stochastic_rounding") else None
            if bucket.call is not None:
                bucket.call.run(kernel.scalars, seed)
                continue
            _run_through_copies(kernel.generated, bucket.dtype, bucket.rows, kernel.scalars, seed)


_GRAD = operator.attrgetter("grad")


def _fits_through_copies(kernel: "kernels.generate.Kernel", dtype: torch.dtype, row: list) -> bool:
    """Whether ``kernel`` takes ``row`` once its tensors are contiguous (it cannot walk their layout)."""
    return kernels.cpu.unfit(kernel, dtype, [tensor.contiguous() for tensor in row]) is None


def _run_through_copies(kernel: "kernels.generate.Kernel", dtype: torch.dtype, rows: list, scalars, seed) -> None:
    """Run ``kernel`` on contiguous copies of each row's tensors, then write the copies back
    (a layout the kernel cannot walk: strided slices, a gradient laid out unlike its parameter)."""
    for row in rows:
        copies = {id(tensor): tensor.contiguous() for tensor in row}  # one each: Adafactor's V is there twice
        kernels.run(kernel, dtype, [[copies[id(tensor)] for tensor in row]], scalars, seed)
        for tensor in row[:1] + row[2:]:  # all but the gradient
            if id(tensor) in copies and copies[id(tensor)] is not tensor:
                tensor.copy_(copies.pop(id(tensor)))


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


#: Arguments the optimizers' docstrings share, written there as ``{name}`` in the Args list.
_SHARED_ARGUMENTS = {
    "maximize": "maximize: maximize the objective instead of minimizing (default False).",
    "cautious": "cautious: the step leaves alone each coordinate whose update disagrees in sign with the\n"
                "            gradient and scales up the rest to keep its average (Liang et al. 2024,\n"
                "            adamlab.maths.cautious; default False).",
    "implementation_flags": "foreach, differentiable: torch.optim's implementation flags; adamlab\n"
                            "            rejects True.",
    "fused": "fused: None (default) takes the fused step where it can (the CPU kernel, or the\n"
             "            compiled maths on CUDA), False forces the simple path, True demands the fused step.",
    "stochastic_rounding": "stochastic_rounding: store bfloat16 parameters rounded up or down at random in\n"
                           "            proportion (unbiased), so training without a float32 master copy does not lose\n"
                           "            updates smaller than half a bfloat16 step (default False; no effect on other dtypes).",
}


def evaluate(closure):
    """A step's closure evaluated, with gradients on (a step runs under no_grad): its loss, or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class Optimizer(torch.optim.Optimizer):
    """Base of adamlab's optimizers: ``torch.optim.Optimizer`` driven by ``adamlab.maths``."""

    maths: ModuleType
    #: torch.optim's state key -> the field of the maths state that holds it.
    state_fields: dict[str, str]
    #: State keys that hold one number per parameter (a 0-d tensor, as torch.optim keeps them):
    #: the step counter, NAdam's product of momentum coefficients. The maths takes them as numbers.
    scalar_state: tuple[str, ...] = ("step",)
    #: State the fused kernel may create at a parameter's first step (SGD's momentum buffer).
    born_at_first_step: tuple[str, ...] = ()
    #: Whether each element's step depends on its own gradient and state alone. Then a sharded
    #: (DTensor) parameter steps on each process's shard by the fused kernel; otherwise (LAMB's
    #: norms, Adafactor's row and column means) through DTensor's operations, which reduce
    #: across the shards.
    elementwise: bool = True
    #: What the fused CPU kernel does not take, said when ``_kernel`` returns None under fused=True.
    kernel_limits: str = "its fused CPU kernel does not take this group's settings"
    #: Whether it has a fused step at all (Muon's matrix products, Prodigy's sums over the model
    #: have none: their default step is the simple one)
    fused_step: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__doc__" in cls.__dict__ and cls.__doc__:  # the arguments every drop-in documents alike
            for name, text in _SHARED_ARGUMENTS.items():
                cls.__doc__ = cls.__doc__.replace("{" + name + "}", text)
        if "state_fields" in cls.__dict__:
            cls._state_key_of = {field: key for key, field in cls.state_fields.items()}
        if "maths" in cls.__dict__:
            cls._maths_arguments = tuple(keyword_arguments(cls.maths.update))

    # --- what a subclass may refine -------------------------------------------------

    def _check_group(self, group: dict) -> None:
        """Raise if a parameter group's hyperparameters or flags are not allowed."""
        name = type(self).__name__
        check_known(group)
        if not isinstance(group.get("cautious", False), bool):
            raise TypeError(f"cautious must be True or False, got {group['cautious']!r}")
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
            if key in self.scalar_state:  # the step counter, and any other number per parameter
                # Off capturable mode the counter lives on the CPU, so reading it costs no device sync.
                device = param.device if group.get("capturable") else "cpu"
                state[key] = torch.zeros((), dtype=_step_dtype(), device=device)
            else:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    def _kernel(self, group: dict, dtype: torch.dtype | None, born: bool = False) -> Kernel | None:
        """The fused CPU kernel's arguments for a parameter group (for parameters of ``dtype``;
        None while planning, when only the kernel and its state keys count), or None if the
        kernel cannot take the group's settings. ``born``: for parameters whose
        ``born_at_first_step`` state this step makes.

        By default the kernel generated from the maths, which needs nothing more. One whose
        kernel is printed another way (Adafactor's factored state) or whose hyperparameters need
        more (its eps1 per dtype) says so here."""
        hyperparameters = self._hyperparameters(group)
        keys = self._state_keys(group)
        present = {self.state_fields[key]: "tensor" if key in self.scalar_state else "element"
                   for key in keys if not (born and key in self.born_at_first_step)}
        try:
            kernel = kernels.cpu.generated(self.maths, hyperparameters, present)
        except kernels.KernelsUnavailable as error:
            _without_fused_step(group, type(self).__name__, "fused kernels unavailable", error)
            return None
        except kernels.symbolic.TraceError as error:  # an update the generator cannot take: say why, once
            _without_fused_step(group, type(self).__name__, f"no fused kernel of {self.maths.__name__}", error)
            return None
        return Kernel(kernel, tuple(self._state_key_of[field] for field in kernel.state),
                      kernels.cpu.scalars(kernel, hyperparameters))

    def _kernel_row(self, param: torch.Tensor, grad: torch.Tensor, state: dict, kernel: Kernel) -> list:
        """One parameter's tensors for the kernel, in its column order: the parameter, its
        gradient, then its state (``kernel.state_keys``: tensors, then numbers per parameter)."""
        return [param, grad, *(state[key] for key in kernel.state_keys)]

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

    @torch.no_grad()
    def step(self, closure=None):
        """Take one optimization step; ``closure`` re-evaluates the model and returns the loss.

        Everything is checked before anything changes: a step that raises (a gradient or state
        that does not fit its parameter, a parameter ``fused=True`` cannot take) leaves the
        parameters and the state as they were.
        """
        loss = evaluate(closure)
        steps = []
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if params:
                steps.append(self._prepare_group(params, group))
        for run in steps:
            run()
        return loss

    def _prepare_group(self, params: list[torch.Tensor], group: dict) -> Callable[[], None]:
        """Check a group's step and decide how each parameter takes it (the fused CPU kernel,
        the compiled maths on a GPU, or the simple path); return the step itself.

        Sharded (DTensor) parameters of a step that is not elementwise always step simply: there
        DTensor's operations reduce the step's sums and means across the shards."""
        sharded = [] if self.elementwise else [param for param in params if isinstance(param, DTensor)]
        if sharded:
            params = [param for param in params if not isinstance(param, DTensor)]
        plan, params = self._fused_plan(params, group)
        for param in params + sharded:
            self._check_inputs(param, group)
            if param.device.type not in compiled.DEVICES and not _local(param).is_cpu:
                self._refuse_if_fused_required(param, group, "no fused step runs on this device")

        def run():
            if plan is not None:
                plan.run(self)
            compiles = params and group.get("fused") is not False and self._compiles(group)
            rest = self._compiled_update(params, group) if compiles else params
            for param in rest + sharded:
                self._update(param, group)
        return run

    def _fused_plan(self, params: list[torch.Tensor], group: dict, kernel_of=None, row_of=None):
        """The group's plan for the fused CPU kernel (kept from the last step where it still
        serves, else made anew: see :class:`_Plan`) and the parameters it leaves to the other
        paths; (None, params) where the group takes no fused step. ``kernel_of`` and ``row_of``:
        as :class:`_Plan`'s, each with a plan of its own."""
        if not params or not _fused_kernels_usable(group, type(self).__name__):
            return None, params
        key = (id(group), getattr(kernel_of, "__name__", None))
        plan = self._plans.get(key)
        if plan is None or not plan.refresh(self, params, group):
            self._plans.pop(key, None)  # let go of what the old plan held before checking anew
            plan = _Plan(self, params, group, kernel_of, row_of)
            if plan.reusable:
                self._plans[key] = plan
        return plan, plan.others

    def _check_inputs(self, param: torch.Tensor, group: dict) -> None:
        """Raise StepRefused if a parameter's gradient or state does not fit it; change nothing."""
        grad = param.grad
        if grad.is_sparse:
            raise StepRefused(f"adamlab.{type(self).__name__} does not support sparse gradients")
        if grad.shape != param.shape or grad.device != param.device:
            raise StepRefused(f"the gradient of {_where(param, group, self.param_groups)} has shape "
                              f"{tuple(grad.shape)} on {grad.device}, the parameter {tuple(param.shape)} on "
                              f"{param.device}")
        if _overlaps(param):
            raise StepRefused(f"{_where(param, group, self.param_groups)} shares memory between its elements "
                              f"(an expanded view?): a step cannot write it")
        state = self.state.get(param)
        if state:
            where = _Where(param, group, self.param_groups)
            self._check_param_state(state, param, group, where)
            for key in self.scalar_state:  # a plain number (no checkpoint's: loading makes it a tensor) cannot be written back
                if key in state and not isinstance(state[key], torch.Tensor):
                    raise StepRefused(f"state {key!r} of {where} must be a tensor, got {_describe(state[key])}")
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and _overlaps(value):
                    raise StepRefused(f"state {key!r} of {where} shares memory between its elements "
                                      f"(an expanded view?): a step cannot write it")

    def _compiles(self, group: dict) -> bool:
        """Whether torch.compile can build this group's step (AdEMAMix's beta3 warmup it cannot)."""
        return True

    def _compiled_update(self, params: list[torch.Tensor], group: dict) -> list[torch.Tensor]:
        """Step the parameters on a GPU with the compiled maths; return the others.

        A parameter whose state is not all there yet (SGD's momentum buffer, born from the
        first gradient) takes the simple path for that one step.
        """
        capturable = group.get("capturable")
        batches, others = {}, []
        for param in params:
            if param.device.type not in compiled.DEVICES:
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
                                # a number kept per parameter (NAdam's mu_product) as a 1-element view:
                                # torch.compile takes a 0-d CPU tensor for a number and drops what
                                # the step writes to it
                                [[state[key].view(1) if key in self.scalar_state else _real(state[key])
                                  for key in keys if key != "step"] for _, state in batch],
                                step_values, hyperparameters)
            except compiled.CompilerUnavailable as error:
                _without_fused_step(group, type(self).__name__, "no fused GPU step", error)
                others.extend(param for param, _ in batch)
                continue
            if steps[0] is not None:
                torch._foreach_add_(steps, 1)
        return others

    def _refuse_if_fused_required(self, param: torch.Tensor, group: dict, why: str) -> None:
        if group.get("fused"):
            raise StepRefused(
                f"adamlab.{type(self).__name__}(fused=True) cannot take {_where(param, group, self.param_groups)} "
                f"(shape {tuple(param.shape)}, {str(param.dtype).removeprefix('torch.')} on {param.device}): {why}")

    def _update(self, param: torch.Tensor, group: dict) -> None:
        """The simple path: the maths on tensors, written back in place."""
        state = self.state.get(param) or self._init_state(param, group)
        real_param = _real(param)
        # Half precision computes in float32 and rounds once, as the kernels and torch's fused
        # steps do (stochastic rounding needs the new weight before any rounding, too).
        stochastic = _rounds_stochastically(param, group)
        work = (lambda tensor: tensor.float()) if param.dtype in _HALF else (lambda tensor: tensor)
        # Numbers (the step, a one-element tensor's learning rate) are read as numbers, in double,
        # as the kernels read them; on a device under capturable they stay there, since reading
        # them would wait for the device.
        on_device = group.get("capturable") and not _local(param).is_cpu
        fields = dict.fromkeys(self.maths.State._fields)
        for key, field in self.state_fields.items():
            if key in self.scalar_state and key in state:
                value = state[key]
                fields[field] = (value.to(torch.promote_types(value.dtype, real_param.dtype))
                                 if on_device else value.item())
            elif key in state:
                fields[field] = work(_real(state[key]))
        hyperparameters = self._hyperparameters(group)
        if not on_device:
            hyperparameters = {name: value.item() if isinstance(value, torch.Tensor) and value.is_cpu else value
                               for name, value in hyperparameters.items()}
        new = self.maths.update(work(_real(param.grad)), self.maths.State(**fields), work(real_param),
                                **hyperparameters)
        real_param.copy_(stochastic_round(new.param) if stochastic else new.param)
        for key, field in self.state_fields.items():
            value = getattr(new.state, field)
            if key == "step" or value is None:
                continue
            if key in self.scalar_state:
                state[key].fill_(value) if not isinstance(value, torch.Tensor) else state[key].copy_(value)
            elif key in state:
                _real(state[key]).copy_(value)
            else:  # a buffer born at the first step (SGD's momentum)
                value = value.to(real_param.dtype, copy=True)
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
        super().load_state_dict(_with_step_tensors(state_dict))

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
        """Raise StepRefused (a ValueError) if one parameter's state does not fit it under this
        optimizer's settings: its keys, each tensor's shape, a one-element step counter."""
        expected = self._param_state_keys(param, group)
        if set(param_state) != set(expected):
            raise StepRefused(f"the state of {where} has keys {sorted(param_state)}, "
                              f"adamlab.{type(self).__name__} with these settings keeps {sorted(expected)}")
        for key, value in param_state.items():
            _check_state_entry(key, value, tuple(param.shape), where, scalar=key in self.scalar_state)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        # torch.optim's __setstate__ gives every optimizer the differentiable flag; one whose
        # constructor has none (Lion, LAMB, ADOPT) keeps its groups as it made them.
        if "differentiable" not in inspect.signature(type(self).__init__).parameters:
            self.defaults.pop("differentiable", None)
        # Checkpoints from older torch versions lack the newer flags.
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        # torch.optim's loading casts every state entry but the step to its parameter's dtype,
        # the other numbers per parameter too (NAdam's mu_product): each is kept as and where
        # the step is, as torch.optim makes it, and the fused step reads it with the step. A
        # plain number (an older checkpoint) becomes such a tensor.
        for group in self.param_groups:
            for param in group["params"]:
                param_state = self.state.get(param, {})
                step = param_state.get("step")
                if isinstance(step, torch.Tensor):
                    dtype, device = step.dtype, step.device
                else:
                    dtype, device = _step_dtype(), param.device if group.get("capturable") else "cpu"
                for key in self.scalar_state:
                    value = param_state.get(key)
                    if key != "step" and value is not None:
                        value = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
                        param_state[key] = value.to(dtype=dtype, device=device)
