"""The standard training recipe: schedules and the weight-decay split of parameters."""

from .groups import HiddenSplit, ParamGroups, hidden_matrices, param_groups
from .schedules import SCHEDULES, drive, linear_decay, warmup_constant, warmup_cosine

__all__ = ["SCHEDULES", "HiddenSplit", "ParamGroups", "drive", "hidden_matrices", "linear_decay", "param_groups",
           "warmup_constant", "warmup_cosine"]
