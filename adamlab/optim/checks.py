"""What adamlab's optimizers check of a step's and a checkpoint's state, and how their messages
name a parameter: apart from the step loop of ``base.py``, which uses them."""

from numbers import Real
from typing import NamedTuple

import torch
from torch.distributed.tensor import DTensor


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a DTensor (a view of its storage), or the tensor itself."""
    return tensor._local_tensor if isinstance(tensor, DTensor) else tensor


class StepRefused(RuntimeError, ValueError):
    """A step adamlab will not take as asked (a gradient or state that does not fit its
    parameter, a parameter ``fused=True`` cannot take, a sparse gradient); raised before anything
    changes. A ``RuntimeError``, as torch.optim raises for these, and a ``ValueError``, as
    adamlab's other refusals of bad input."""


def _where(param: torch.Tensor, group: dict, groups: list[dict]) -> str:
    """'parameter i of group j', found by identity (only when something is wrong)."""
    position = next(index for index, each in enumerate(group["params"]) if each is param)
    return f"parameter {position} of group {next(index for index, each in enumerate(groups) if each is group)}"


class _Where(NamedTuple):
    """:func:`_where`, worked out only when a message shows it: the checks of every step pass it
    along, and finding a parameter's position on every step would cost a scan of its group."""

    param: torch.Tensor
    group: dict
    groups: list

    def __str__(self) -> str:
        return _where(self.param, self.group, self.groups)


def _step_dtype() -> torch.dtype:
    # torch.optim's convention for the "step" counter, kept so checkpoints match.
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _with_step_tensors(state_dict: dict) -> dict:
    """``state_dict`` with every "step" that is a plain number (older torch checkpoints keep it
    so) as the tensor torch.optim keeps now, as torch.optim converts it."""
    states = {}
    for param_id, param_state in state_dict["state"].items():
        if param_state and "step" in param_state and not isinstance(param_state["step"], torch.Tensor):
            # on the CPU; torch's loading moves a capturable or fused one to its parameter's device
            step = torch.tensor(float(param_state["step"]), dtype=_step_dtype())
            param_state = {**param_state, "step": step}
        states[param_id] = param_state
    return {**state_dict, "state": states}


def _check_state_entry(key: str, value, shape: tuple, where: str, param_shape: tuple | None = None,
                       scalar: bool | None = None) -> None:
    """Raise StepRefused if one state entry is not what its parameter (of ``param_shape``, by
    default ``shape``) needs: the step counter and other ``scalar`` entries one number (a
    one-element tensor, or a plain number from an old checkpoint), every other entry a tensor of
    ``shape``."""
    param_shape = shape if param_shape is None else param_shape
    if key == "step" if scalar is None else scalar:
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
            return
        if isinstance(value, Real) and not isinstance(value, bool):
            return
        what = "a step count" if key == "step" else "one number"
        raise StepRefused(f"state {key!r} of {where} must be {what}, got {_describe(value)}")
    if not isinstance(value, torch.Tensor):
        raise StepRefused(f"state {key!r} of {where} must be a tensor, got {_describe(value)}")
    if tuple(value.shape) != shape:
        raise StepRefused(f"state {key!r} of {where} has shape {tuple(value.shape)}, " + (
            f"the parameter has shape {param_shape}" if shape == param_shape else
            f"adamlab keeps {shape} for a parameter of shape {param_shape}"))


def _overlaps(tensor: torch.Tensor) -> bool:
    """Whether two elements of ``tensor`` may share memory (an expanded view, a strided view
    folded onto itself): writing one would write the other, so no step writes such a tensor.
    Checked the simple, sufficient way: dimensions by stride, each stride past the reach of the
    dimensions inside it."""
    tensor = _local(tensor)
    reach = 1
    for stride, size in sorted((stride, size) for size, stride in zip(tensor.shape, tensor.stride()) if size > 1):
        if stride < reach:
            return True
        reach += stride * (size - 1)
    return False


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__} ({value!r})"
