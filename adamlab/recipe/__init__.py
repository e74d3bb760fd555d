"""The standard training recipe: schedules and the weight-decay split of parameters."""

from .groups import ParamGroups, param_groups
from .schedules import SCHEDULES, drive, linear_decay, warmup_constant, warmup_cosine

__all__ = ["SCHEDULES", "ParamGroups", "drive", "linear_decay", "param_groups",
           "warmup_constant", "warmup_cosine"]
