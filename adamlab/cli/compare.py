"""``adamlab compare``: every optimizer on the same small workloads; which one wins where.

A table per workload goes to stdout when the workload is done (or, with ``--json``, one JSON
object at the end); progress and the time left go to stderr.
"""

import json
import math
import time

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .. import registry
from ..files import PNG, check_outputs
from ..lab import compare
from .bench import _names, _say, duration

#: Where stderr is not a terminal, the longest silence, in seconds.
QUIET_AT_MOST_S = 30


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "compare", help="every optimizer on small real workloads: which one wins where",
        description="Train every optimizer on small real workloads (the names GPT, scikit-learn's digits, "
                    "the lessons' flip network), each at four learning rates around its family's usual one "
                    "and from several seeds; report at each optimizer's best learning rate the final "
                    "validation loss, the steps and seconds to the workload's target loss, and the state "
                    "it keeps. A table per workload, a plot, or --json.")
    parser.add_argument("--workloads", default=",".join(compare.WORKLOADS),
                        help=f"comma-separated, from {', '.join(compare.WORKLOADS)} (default: all)")
    parser.add_argument("--optimizers", default=",".join(registry.OPTIMIZERS),
                        help=f"comma-separated, from {', '.join(registry.OPTIMIZERS)} (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per learning rate, from seeds 0, 1, ... (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a quarter of each workload's steps and one seed: a first look, not a verdict")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: the summaries at the best learning rates, and every run")
    parser.add_argument("--plot", metavar="FILE", default="adamlab-compare.png",
                        help="the final losses as bars, a panel per workload (default adamlab-compare.png)")
    parser.add_argument("--no-plot", action="store_true", help="draw no plot")
    parser.set_defaults(run=run)


def run(args) -> int:
    workloads = [compare.WORKLOADS[name] for name in _names("--workloads", args.workloads, list(compare.WORKLOADS))]
    optimizers = _names("--optimizers", args.optimizers, list(registry.OPTIMIZERS))
    if isinstance(args.seeds, bool) or not 1 <= args.seeds <= 20:
        raise ValueError(f"--seeds must be a whole number from 1 to 20, got {args.seeds}")
    seeds, scale = (1, 0.25) if args.quick else (args.seeds, 1.0)
    check_outputs([("--plot", None if args.no_plot else args.plot, PNG)])
    errors = Console(stderr=True)
    compare.check(workloads, optimizers)
    runs = compare.plan(workloads, optimizers, seeds)
    _say(errors, f"adamlab compare: {len(runs)} runs ({len(optimizers)} optimizers x {len(compare.SWEEP)} learning "
                 f"rates x {seeds} seed{'s' * (seeds != 1)} on {', '.join(w.name for w in workloads)})"
                 + (" -- --quick: a quarter of the steps, one seed" if args.quick else ""))
    started = last_said = time.monotonic()
    output = Console()
    if not output.is_terminal:  # a file or a pipe: wide enough for the table's nine columns
        output = Console(width=140)
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("left"), TimeRemainingColumn(), console=errors, transient=True) as progress:
        task = progress.add_task("compare", total=len(runs))

        def on_run(result, *_):
            nonlocal last_said
            progress.update(task, advance=1, description=f"{result.workload}: {result.optimizer} lr {result.lr:.2g} "
                                                         f"seed {result.seed}")
            now = time.monotonic()
            if not errors.is_terminal and now - last_said > QUIET_AT_MOST_S:  # no bar to watch: a line
                finished = progress.tasks[0].completed
                left = (now - started) / finished * (len(runs) - finished)
                _say(errors, f"adamlab compare: {finished:.0f} of {len(runs)} runs done, {duration(now - started)} "
                             f"in, about {duration(left)} left")
                last_said = now

        for workload in workloads:
            progress.update(task, description=f"{workload.name}")
            done = compare.run([workload], optimizers, seeds, scale, on_run=on_run)
            results.extend(done)
            if not args.json:
                output.print(_table(workload, compare.summarise(done)))
            elif not errors.is_terminal:
                _say(errors, f"adamlab compare: {workload.name} done, {duration(time.monotonic() - started)} in")
    summaries = compare.summarise(results)
    if args.json:
        print(json.dumps({"workloads": {workload.name: {"summary": workload.summary, "target": workload.target,
                                                         "steps": max(1, round(workload.steps * scale))}
                                        for workload in workloads},
                          "summaries": [summary.as_dict() for summary in summaries],
                          "runs": [_finite(result.__dict__) for result in results]}, indent=1))
    if not args.no_plot:
        from ..lab.plots import plot_comparison
        plot_comparison(summaries, {workload.name: workload.summary for workload in workloads}, args.plot)
        _say(errors, f"adamlab compare: final losses plotted in {args.plot}")
    _say(errors, f"adamlab compare: done in {duration(time.monotonic() - started)}")
    output.file.flush()
    return 0


def _finite(values: dict) -> dict:
    """JSON has no infinity: a diverged run's losses are null."""
    return {key: [None if isinstance(item, float) and not math.isfinite(item) else item for item in value]
            if isinstance(value, list) else value for key, value in values.items()}


def _table(workload, summaries) -> Table:
    table = Table(title=f"{workload.name}: {workload.summary}. At each optimizer's best lr: the final validation "
                        f"loss (mean and spread over the seeds), the seeds that reached {workload.target:g}, their "
                        f"median steps and training seconds to it, the seconds of a run, the optimizer's state "
                        f"(lr*: the sweep's smallest or largest, a better one may lie beyond)",
                  box=box.SIMPLE_HEAD, title_justify="left")
    for heading in ("optimizer", "lr", "val loss", "±", "reached", "steps", "seconds", "s/run", "state"):
        table.add_column(heading, justify="left" if heading == "optimizer" else "right", no_wrap=True)
    for summary in sorted(summaries, key=lambda summary: summary.final_val_loss):
        finite = math.isfinite(summary.final_val_loss)
        table.add_row(summary.optimizer, f"{summary.best_lr:.3g}" + ("*" if summary.at_edge else ""),
                      f"{summary.final_val_loss:.4f}" if finite else "diverged",
                      f"{summary.final_val_loss_std:.4f}" if finite else "", f"{summary.reached}/{summary.seeds}",
                      "" if summary.steps_to_target is None else f"{summary.steps_to_target:.0f}",
                      "" if summary.seconds_to_target is None else f"{summary.seconds_to_target:.2f}",
                      f"{summary.seconds_per_run:.2f}", _bytes(summary.state_bytes))
    return table


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"
