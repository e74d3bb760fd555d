"""``adamlab bench``: optimizer step times as ratios to torch.optim and to the memory floor.

Rows go to stdout as each series is measured (a table per layout, or one JSON array written a
row at a time); what it is doing and how long it has left go to stderr.
"""

import dataclasses
import json
import sys
import textwrap
import threading
import time

import torch
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .. import bench, kernels, registry
from .output import usable_device

#: Where stderr is not a terminal, the longest silence within a series, in seconds.
QUIET_AT_MOST_S = 10


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench", help="time optimizer steps against torch.optim and the memory floor",
        description="Time one step of each optimizer (the median of repeated steps after warm-up) "
                    "for adamlab's fused and simple paths, torch.optim's single-tensor, foreach and "
                    "fused steps, and pytorch-optimizer, heavyball and bitsandbytes where installed, "
                    "on three layouts of float32 parameters; report each as a ratio to torch's "
                    "fused step and to an in-place stream over the same bytes, and the memory "
                    "bandwidth it reaches. Rows are printed as they are measured; an estimate of "
                    "the time it takes, and progress, go to stderr.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller layouts, without adamlab's simple path, nor peers where torch.optim "
                             "has the optimizer (about a minute on two quiet cores)")
    parser.add_argument("--optimizers", default=",".join(registry.OPTIMIZERS),
                        help=f"comma-separated, from {', '.join(registry.OPTIMIZERS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per measurement (>= 10)")
    parser.add_argument("--layouts", default=None,
                        help="comma-separated, from 10-large, gpt2-small (gpt2-quarter with --quick), "
                             "1000-small (default: all)")
    parser.add_argument("--device", default="cpu", help="where the parameters live: cpu (default) or cuda")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON array of one object per measurement, each as it is measured")
    parser.set_defaults(run=run)


def _names(option: str, text: str, known) -> list[str]:
    """A comma-separated option's names, each one of ``known``, each once."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"{option}: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(known)}")
    return names


def duration(seconds: float) -> str:
    if seconds < 100:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def quick_note(optimizers) -> str:
    """What ``--quick`` does differently, naming the implementations installed here it leaves out."""
    left_out = {}
    for optimizer in optimizers:
        quick = bench.contenders(optimizer, quick=True)
        for impl in bench.contenders(optimizer):
            if impl not in quick:
                left_out.setdefault(impl, []).append(optimizer)
    if not left_out:
        return "--quick: smaller layouts"
    named = "; ".join(impl if names == list(optimizers) else f"{impl} for {', '.join(names)}"
                      for impl, names in left_out.items())
    return f"--quick: smaller layouts, and not timed: {named} (the slow rows; run without --quick to time them)"


def run(args) -> int:
    optimizers = _names("--optimizers", args.optimizers, list(registry.OPTIMIZERS))
    only_layouts = None if args.layouts is None else _names("--layouts", args.layouts, list(bench.layouts(args.quick)))
    if args.repeats < 10:
        raise ValueError(f"--repeats must be >= 10 (a median of fewer steps says little), got {args.repeats}")
    device = usable_device(args.device)
    if torch.device(device).type == "cpu":
        try:
            kernels.library()  # the floor is their stream: built now, or the reason it cannot be
        except kernels.KernelsUnavailable as error:
            raise ValueError(f"--device {device}: the memory floor needs adamlab's fused CPU kernels, and "
                             f"{str(error).splitlines()[0]}") from None
    series_list = bench.plan(optimizers, args.quick, only_layouts)
    seconds_per_byte = bench.calibrate(device)
    estimates = bench.estimate_seconds(series_list, args.repeats, seconds_per_byte, device)
    errors = Console(stderr=True)
    layouts = len(dict.fromkeys(series.layout for series in series_list))
    _say(errors, f"adamlab bench: estimated time about {duration(sum(estimates))} (an estimate, from the bytes "
                 f"each step moves at the memory bandwidth measured just now and each implementation's typical "
                 f"cost; {len(series_list)} series on {layouts} layout{'s' * (layouts != 1)}, each contender "
                 f"taking {bench.WARMUP} warm-up and {args.repeats} timed steps, in turns)")
    notes = [quick_note(optimizers)] if args.quick else []
    for note in notes:
        _say(errors, f"adamlab bench {note}")
    started = time.monotonic()
    with _Progress(errors, series_list, estimates, bench.WARMUP + args.repeats) as progress:
        rows_out = _JsonArray() if args.json else _Tables(series_list, device, notes, progress.screen)
        try:
            bench.run(series_list, args.repeats, device, on_series=progress.series, on_round=progress.round,
                      on_rows=rows_out.add)
        finally:
            rows_out.close()
    _say(errors, f"adamlab bench: done in {duration(time.monotonic() - started)} "
                 f"(estimated {duration(sum(estimates))})")
    return 0


def _on_a_screen(file) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no file, or a closed one
        return False


def _say(console: Console, text: str) -> None:
    """A line on ``console`` as written: no markup, and wrapped by the terminal, not by rich."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class _Progress:
    """Where the run is, on stderr: on a screen, a bar with the time left; elsewhere a line as
    each series starts, and while one runs, a line whenever QUIET_AT_MOST_S seconds pass without
    one (whatever holds it up: a slow step, a compile, a peer's import).

    Progress is counted in estimated seconds, so the time left scales the estimate of what
    remains by how fast the estimate has been worked off so far.
    """

    def __init__(self, console: Console, series_list: list[bench.Series], estimates: list[float], rounds: int):
        self.console, self.series_list, self.estimates, self.rounds = console, series_list, estimates, rounds
        self.index, self.rounds_done = -1, 0
        self.started = self.series_started = self.said = time.monotonic()
        self.bar = self.screen = None
        if console.is_interactive:
            # Whatever else is printed meanwhile goes above the bar: stdout's rows too, but only
            # where stdout is this screen, not a pipe or a file that must get them; tables are
            # printed through ``screen`` then, as rich writes a console's output past the bar.
            on_a_screen = _on_a_screen(sys.stdout)
            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                TimeElapsedColumn(), TextColumn("left: about"), TimeRemainingColumn(),
                                console=console, transient=True, redirect_stdout=on_a_screen)
            self.screen = console if on_a_screen else None
            self.task = self.bar.add_task("benchmarking", total=sum(estimates))
        self.stopped = threading.Event()
        self.heartbeat = threading.Thread(target=self._beat, name="adamlab bench progress", daemon=True)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        else:
            self.heartbeat.start()
        return self

    def __exit__(self, *exception):
        if self.bar is not None:
            self.bar.stop()
        else:
            self.stopped.set()
            self.heartbeat.join()

    def _done(self) -> float:
        return sum(self.estimates[:self.index])

    def series(self, series: bench.Series) -> None:
        self.index, self.rounds_done, self.series_started = self.index + 1, 0, time.monotonic()
        what = f"{series.layout}: {series.optimizer}" + (" (settling the layout: timed, thrown away)"
                                                         if series.settling else "")
        if self.bar is not None:
            self.bar.update(self.task, description=what, completed=self._done())
            return
        done, elapsed = self._done(), time.monotonic() - self.started
        left = sum(self.estimates) - done
        if done > 0:  # the estimate, corrected by how it has held so far
            left *= elapsed / done
        _say(self.console, f"[{self.index + 1}/{len(self.series_list)}] {what}: "
                           f"{len(series.contenders)} contenders and the floor; about {duration(left)} left")
        self.said = time.monotonic()

    def round(self, done: int, rounds: int) -> None:
        self.rounds_done = done
        if self.bar is not None:
            self.bar.update(self.task, completed=self._done() + self.estimates[self.index] * done / rounds)

    def _beat(self) -> None:
        while not self.stopped.wait(min(1.0, QUIET_AT_MOST_S)):
            now = time.monotonic()
            if self.index >= 0 and now - self.said >= QUIET_AT_MOST_S:
                series = self.series_list[self.index]
                _say(self.console, f"    {series.layout}: {series.optimizer}: {self.rounds_done} of {self.rounds} "
                                   f"rounds done, {duration(now - self.series_started)} into the series")
                self.said = now


class _JsonArray:
    """The rows as one JSON array on stdout, written as they are measured, whole lines at a time:
    the text ``json.dumps(rows, indent=2)`` prints, closed on an interrupt too. A row's closing
    brace waits for the next row or the end, which tell whether a comma follows it."""

    def __init__(self):
        self.pending = None  # the last row's last line
        print("[", flush=True)

    def add(self, series: bench.Series, rows: list[bench.Result]) -> None:
        for row in rows:
            lines = textwrap.indent(json.dumps(dataclasses.asdict(row), indent=2), "  ").split("\n")
            if self.pending is not None:
                lines.insert(0, self.pending + ",")
            *lines, self.pending = lines
            print("\n".join(lines), flush=True)

    def close(self) -> None:
        print(("" if self.pending is None else self.pending + "\n") + "]", flush=True)


class _Tables:
    """A table per layout on stdout, its rows printed as each series is done: the title and
    header with the first, the notes on what the columns mean under the last."""

    HEADERS = ("optimizer", "implementation", "ms / step", "vs torch", "vs floor", "GB/s")

    def __init__(self, series_list: list[bench.Series], device: str, notes: list[str], screen: Console | None):
        self.device, self.notes = device, notes
        self.waiting = {}  # each layout's series still to come
        for series in series_list:
            self.waiting[series.layout] = self.waiting.get(series.layout, 0) + (not series.settling)
        self.widths = (
            max(len(name) for name in ("optimizer", "floor", *(series.optimizer for series in series_list))),
            max(len(name) for name in ("implementation", "stream", *(bench.label(series.optimizer, impl)
                for series in series_list for impl in series.contenders))),
            9, 8, 8, 4,
        )
        self.console = screen or Console()  # ``screen``: stdout is the screen the progress bar is on
        wanted = Measurement.get(self.console, self.console.options.update_width(10_000), self._table(True)).maximum
        if screen is None and wanted > self.console.width:  # wider than the terminal, not truncated numbers
            self.console = Console(width=wanted)
        self.rows: list[bench.Result] = []

    def _table(self, header: bool, title: str | None = None, caption: str | None = None) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, show_header=header,
                      title=title, caption=caption, title_justify="left", caption_justify="left")
        for name, width in zip(self.HEADERS, self.widths):
            table.add_column(name, width=width, no_wrap=True,
                             justify="left" if name in ("optimizer", "implementation") else "right")
        return table

    def add(self, series: bench.Series, rows: list[bench.Result]) -> None:
        first = not self.rows
        self.rows += rows
        self.waiting[series.layout] -= 1
        last = self.waiting[series.layout] == 0
        title = f"{series.layout}: {series.params:,} float32 parameters on {self.device}, one step" if first else None
        table = self._table(first, title, "\n".join(self._notes()) if last else None)
        for row in rows:
            ratio = "" if row.ratio_vs_torch_fused is None else f"{row.ratio_vs_torch_fused:.2f}x"
            table.add_row(Text(row.optimizer), Text(bench.label(row.optimizer, row.impl)), f"{row.ms_per_step:.2f}",
                          ratio, f"{row.ratio_vs_floor:.2f}x", f"{row.gb_per_s:.0f}")
        self.console.print(table)
        if last:
            self.console.print()
            self.rows = []

    def close(self) -> None:
        pass  # every row is out already

    def _notes(self) -> list[str]:
        """What the columns mean, for the optimizers of this table."""
        exceptions = []
        for row in self.rows:
            if row.impl != "adamlab" or row.reference == "torch-fused":
                continue
            if row.reference is None:
                exceptions.append(f"{row.optimizer}: none, as no peer is installed")
            elif row.reference.startswith("torch-fused"):
                exceptions.append(f"{row.optimizer}: {row.reference}")
            elif row.reference.startswith("torch-"):
                exceptions.append(f"{row.optimizer}: {row.reference}, torch's fastest, as torch has no fused one")
            else:
                exceptions.append(f"{row.optimizer}: {row.reference}, as torch.optim has no {row.optimizer}")
        by_bytes = {}
        for optimizer in dict.fromkeys(row.optimizer for row in self.rows if row.optimizer != "floor"):
            by_bytes.setdefault(bench.bytes_per_parameter(optimizer), []).append(optimizer)
        floor_bytes = bench.FLOOR_BYTES
        return [
            "vs torch: time over torch.optim's fused step of the same optimizer"
            + (f" (for {'; '.join(exceptions)})" if exceptions else "") + ".",
            f"vs floor: time over an in-place stream that reads 4 and writes 3 float32 arrays of the layout's "
            f"size, timed in the same turns: the memory-bandwidth limit of a {floor_bytes}-byte-per-parameter "
            f"step such as Adam's.",
            "GB/s: the bytes a step must move over its time ("
            + "; ".join(f"{count} a parameter for {', '.join(names)}" for count, names in by_bytes.items()) + ").",
            "Ratios compare within this run; milliseconds from different runs do not.",
            *self.notes,
        ]
