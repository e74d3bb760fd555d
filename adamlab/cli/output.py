"""Helpers shared by the commands: the --device option, lists of numbers, printing tables."""

import argparse
import math

import torch
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

#: The exit status of a command whose run diverged, its numbers no longer finite (bad input: 2;
#: Ctrl-C: 130). What was computed is still printed.
DIVERGED = 3


def print_table(table: Table) -> None:
    """Print a rich table whole: wider than the terminal rather than with truncated numbers."""
    console = Console()
    wanted = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if wanted > console.width:
        console = Console(width=wanted)
    console.print(table)


def usable_device(name: str) -> str:
    """The --device option checked: "auto" picks CUDA where there is one; a device that cannot
    hold a tensor here is a ValueError naming it."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"--device {name} is not usable here ({str(error).splitlines()[0]})") from None
    return name


def numbers(example: str):
    """An argparse type for comma-separated finite numbers; ``example`` shows the form in errors."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers like {example}, got {text!r}")
        if not all(math.isfinite(value) for value in values):
            raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
        return values
    return parse
