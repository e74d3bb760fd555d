"""Learning-rate schedules: pure functions of the step, and one line to drive an optimizer with them.

Each schedule maps the step (0 for the first optimizer step) to a learning rate,
given the peak rate ``lr``. :func:`drive` hands one to
``torch.optim.lr_scheduler.LambdaLR``, so it saves, loads and steps like any
torch scheduler.

>>> [warmup_cosine(step, lr=1.0, warmup_steps=2, total_steps=6) for step in (0, 1, 2, 4, 6)]
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

import math
from collections.abc import Callable

import torch


def _check(lr: float, **steps: int) -> None:
    if not lr >= 0:
        raise ValueError(f"lr must be >= 0, got {lr!r}")
    for name, value in steps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")


def linear_decay(step: int, *, lr: float, total_steps: int) -> float:
    """From ``lr`` at step 0 straight down to 0 at ``total_steps`` (microgpt's schedule)."""
    _check(lr, total_steps=total_steps)
    return lr * max(0.0, 1 - step / total_steps) if total_steps else 0.0


def warmup_constant(step: int, *, lr: float, warmup_steps: int) -> float:
    """From 0 up to ``lr`` over ``warmup_steps``, then ``lr``."""
    _check(lr, warmup_steps=warmup_steps)
    return lr * min(1.0, step / warmup_steps) if warmup_steps else lr


def warmup_cosine(step: int, *, lr: float, warmup_steps: int, total_steps: int,
                  min_lr: float = 0.0) -> float:
    """From 0 up to ``lr`` over ``warmup_steps``, then half a cosine down to ``min_lr`` at ``total_steps``."""
    _check(lr, warmup_steps=warmup_steps, total_steps=total_steps)
    if not 0 <= min_lr <= lr:
        raise ValueError(f"min_lr must be in [0, lr={lr!r}], got {min_lr!r}")
    if step < warmup_steps:
        return lr * step / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = min(1.0, (step - warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


SCHEDULES = {"linear-decay": linear_decay, "warmup-cosine": warmup_cosine,
             "warmup-constant": warmup_constant}


def drive(optimizer: torch.optim.Optimizer, schedule: Callable[..., float],
          **settings) -> torch.optim.lr_scheduler.LambdaLR:
    """Make ``optimizer`` follow ``schedule``, each parameter group from its own lr as the peak.

    >>> model = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    >>> scheduler = drive(optimizer, warmup_cosine, warmup_steps=10, total_steps=100)
    >>> optimizer.param_groups[0]["lr"]
    0.0

    Call ``scheduler.step()`` after each ``optimizer.step()``, as with any torch scheduler.
    ``min_lr``, where the schedule takes one, is absolute and applies to the first group's
    peak; other groups are scaled alike.
    """
    peaks = [float(group["lr"]) for group in optimizer.param_groups]
    schedule(0, lr=peaks[0], **settings)  # check the settings once, before anything changes
    first_peak = peaks[0]

    def factor(step: int) -> float:
        # LambdaLR multiplies each group's own initial lr by this factor.
        return schedule(step, lr=first_peak, **settings) / first_peak if first_peak else 0.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
