"""Printing helpers shared by the commands."""

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def print_table(table: Table) -> None:
    """Print a rich table whole: wider than the terminal rather than with truncated numbers."""
    console = Console()
    wanted = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if wanted > console.width:
        console = Console(width=wanted)
    console.print(table)
