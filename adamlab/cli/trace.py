"""``adamlab trace``: one scalar parameter through an optimizer, step by step."""

import json
import sys

from rich.table import Table

from .. import registry
from ..lab import trace as lab
from .output import DIVERGED, numbers, print_table


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "trace", help="show an optimizer's internals step by step on one parameter",
        description="Show every internal quantity of an optimizer, step by step, on one scalar "
                    "parameter. The defaults reproduce the classic worked example of Adam.",
        epilog="optimizers: " + "; ".join(f"{name}: {entry.summary}" for name, entry in registry.OPTIMIZERS.items())
               + f". Exit status: 0; 2 for bad input; {DIVERGED} when a quantity overflowed float64 (the trace "
                 f"is printed, with null in JSON for numbers that are not finite, and a line on stderr says "
                 f"at which step).")
    parser.add_argument("--optimizer", choices=registry.OPTIMIZERS, default="adam")
    parser.add_argument("--grads", type=numbers("0.5,0.3"), default=lab.WORKED_EXAMPLE_GRADS,
                        help="the gradient at each step (default 0.5,0.3,0.8,0.6)")
    parser.add_argument("--theta", type=float, default=1.0, help="starting parameter (default 1.0)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
    for knob in registry.KNOBS:
        parser.add_argument(f"--{knob.replace('_', '-')}", type=float,
                            help=f"{registry.knob_help(knob)}; default: the optimizer's")
    parser.add_argument("--bias-table", action="store_true",
                        help="print Adam's bias-correction multipliers 1/(1-beta^t) instead")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def _format(value) -> str:
    return "" if value is None else f"{value:.6g}"


def run(args) -> int:
    if args.bias_table:
        rows = lab.bias_table(0.9 if args.beta1 is None else args.beta1,
                              0.999 if args.beta2 is None else args.beta2)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        table = Table(title="Adam's bias corrections: m_hat = m * A, v_hat = v * B")
        for header in ("t", "A = 1/(1-beta1^t)", "B = 1/(1-beta2^t)"):
            table.add_column(header, justify="right")
        for row in rows:
            table.add_row(str(row["step"]), f"{row['m_multiplier']:.4f}", f"{row['v_multiplier']:.4f}")
        print_table(table)
        return 0

    knobs = dict(lr=args.lr, weight_decay=args.weight_decay, beta1=args.beta1,
                 beta2=args.beta2, eps=args.eps)
    rows = lab.trace(args.optimizer, args.grads, args.theta, **knobs)
    if args.json:
        print(json.dumps(lab.finite(rows), indent=2))  # a non-finite number is null: JSON has no inf
    else:
        print_rows(args, rows, knobs)
    diverged = lab.diverged_at(rows)
    if diverged:
        step, name, value = diverged
        why = "not a number" if value != value else "beyond float64's range"
        print(f"adamlab trace: diverged at step {step}: {lab.COLUMNS.get(name, name)} is {value} ({why})",
              file=sys.stderr)
        return DIVERGED
    return 0


def print_rows(args, rows: list[dict], knobs: dict) -> None:
    """The trace as a table, a column per quantity the optimizer has."""
    entry = registry.get(args.optimizer)
    arguments = lab.hyperparameters(args.optimizer, **knobs)
    knob_arguments = {"lr", *(knob.maths for knob in entry.knobs.values())}  # what the options set
    shown = ", ".join(f"{name} = {value:g}" for name, value in arguments.items()
                      if value is not None and name in knob_arguments)
    table = Table(title=f"{args.optimizer} on one parameter, theta0 = {args.theta:g}: {shown}",
                  caption=entry.summary)
    columns = [(key, header) for key, header in lab.COLUMNS.items()
               if any(row.get(key) is not None for row in rows)
               and not (key == "g" and all(row["g"] == row["grad"] for row in rows))]
    for _, header in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(str(row[key]) if key == "step" else _format(row.get(key)) for key, _ in columns))
    print_table(table)
