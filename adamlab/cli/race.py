"""``adamlab race``: adamlab's optimizers side by side on one of the lessons' problems."""

import argparse
import json
import math

from rich.table import Table

from .. import registry
from ..files import PNG, check_outputs
from ..lab import race as lab
from .output import numbers, print_table


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in registry.OPTIMIZERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown optimizer {unknown[0] if unknown else text!r}; "
                                         f"choose from {', '.join(registry.OPTIMIZERS)}")
    return names


def _rate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in registry.OPTIMIZERS:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(registry.OPTIMIZERS)}, "
                                         f"got {text!r}")
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with a number, got {text!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise argparse.ArgumentTypeError(f"a learning rate must be positive, got {text!r}")
    return name, lr


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "race", help="race optimizers on one of the lessons' problems: a table and a picture",
        description="Run several of adamlab's optimizers on one small problem; print where each ends "
                    "and write a picture of the race.",
        epilog="problems: " + "; ".join(f"{name}: {problem.summary}" for name, problem in lab.PROBLEMS.items()))
    parser.add_argument("problem", nargs="?", metavar="PROBLEM", help=f"one of {', '.join(lab.PROBLEMS)}")
    parser.add_argument("--list", action="store_true", help="list the problems, a line each")
    parser.add_argument("--optimizers", type=_names, help=f"comma-separated, from {', '.join(registry.OPTIMIZERS)} "
                                                          "(default: the problem's own field)")
    parser.add_argument("--lr", type=_rate, action="append", default=[], metavar="NAME=VALUE",
                        help="one optimizer's learning rate (repeatable; default: the problem's)")
    parser.add_argument("--steps", type=_positive, help="steps to run (default: the problem's)")
    parser.add_argument("--start", type=numbers("-1.5,2"), help="starting point, e.g. -1.5,2 (2-D problems) or 5 (1-D)")
    for knob in registry.KNOBS:
        parser.add_argument(f"--{knob.replace('_', '-')}", type=float,
                            help=f"{registry.knob_help(knob)}, for every optimizer it applies to")
    parser.add_argument("--mean", type=float, help="moments: the gradients' mean (default 0.5)")
    parser.add_argument("--spread", type=float, help="moments: their standard deviation (default 1)")
    parser.add_argument("--out", help="the picture's file (default adamlab-race-PROBLEM.png)")
    parser.add_argument("--json", action="store_true", help="print JSON (per optimizer: final parameters, "
                                                            "final loss, the loss at every step) instead of a table")
    parser.set_defaults(run=run)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run(args) -> int:
    if args.list:
        for name, problem in lab.PROBLEMS.items():
            print(f"{name:14s} {problem.summary}")
        return 0
    if args.problem is None:
        raise ValueError(f"name a problem: one of {', '.join(lab.PROBLEMS)} (or --list)")
    out = args.out or f"adamlab-race-{args.problem}.png"
    check_outputs([("--out", out, PNG)])  # before the race runs: the picture must have somewhere to go
    options = {name: getattr(args, name) for name in ("mean", "spread") if getattr(args, name) is not None}
    race = lab.run(args.problem, args.optimizers, dict(args.lr), args.steps, args.start, options,
                   beta1=args.beta1, beta2=args.beta2, eps=args.eps, weight_decay=args.weight_decay)
    from ..lab.race_plots import plot_race  # matplotlib: only when drawing
    plot_race(race, out)
    if args.json:
        print(json.dumps({**race.to_json(), "picture": out}))
        return 0
    dimensions = lab.PROBLEMS[args.problem].dimensions
    table = Table(title=race.title)
    for header in ("optimizer", "final parameters", "final loss", *(header for _, header in race.columns)):
        table.add_column(header, justify="left" if header == "optimizer" else "right")
    for run_ in race.runs:
        final = (", ".join(f"{value:.4g}" for value in run_.params[-1]) if dimensions <= 2
                 else f"{dimensions} weights")
        table.add_row(run_.label, final, _format(run_.losses[-1]), *(_format(run_.extra[key]) for key, _ in race.columns))
    if race.by_step:
        table = Table(title=race.title)
        for header in race.by_step[0]:
            table.add_column(header, justify="right")
        for row in race.by_step[1]:
            table.add_row(*(_format(value) for value in row))
    print_table(table)
    for note in race.notes:
        print(note)
    print(f"wrote {out}")
    return 0
