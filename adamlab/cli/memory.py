"""``adamlab memory``: the bytes of weights, gradients and optimizer state, per optimizer."""

import dataclasses
import json

from rich.table import Table

from .. import memory
from .output import print_table


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "memory", help="bytes of weights, gradients and optimizer state for each optimizer",
        description="Print the memory a model's training needs for its weights, gradients and "
                    "optimizer state, for each optimizer and precision setup, and per device when "
                    "they are sharded over ranks (ZeRO stages 1, 2, 3). The state is measured: each "
                    "optimizer stepped once over parameters of the model's shapes on the meta device.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--params", type=float, default=None,
                      help=f"a parameter count such as 7e9 (default), taken as square matrices "
                           f"{memory.ASSUMED_WIDTH} wide for Adafactor's factored state")
    size.add_argument("--model", choices=memory.MODELS,
                      help="a model whose parameter shapes are known (names-*: adamlab train's models)")
    parser.add_argument("--ranks", type=int, default=1, help="devices the training is sharded over (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.model is not None:
        shapes, what = memory.model_shapes(args.model), args.model
    else:
        shapes = memory.shapes_for_count(7e9 if args.params is None else args.params)
        what = "the parameters"
    rows = memory.table(shapes, ranks=args.ranks)
    if args.json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0
    table = Table(title=f"{what}: {rows[0].params:,} parameters in {len(shapes):,} tensors"
                        + (f", over {args.ranks} ranks" if args.ranks > 1 else ""))
    headers = ["optimizer", "precision", "weights", "gradients", "optimizer state", "total"]
    if args.ranks > 1:
        headers += ["per device, ZeRO-1", "ZeRO-2", "ZeRO-3"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("optimizer", "precision") else "right")
    for row in rows:
        cells = [row.optimizer, row.precision, memory.human(row.weights_bytes),
                 memory.human(row.gradients_bytes), memory.human(row.state_bytes), memory.human(row.total_bytes)]
        if args.ranks > 1:
            cells += [memory.human(row.per_device_bytes[f"zero{stage}"]) for stage in (1, 2, 3)]
        table.add_row(*cells, end_section=row.precision == list(memory.PRECISIONS)[-1])
    print_table(table)
    return 0
