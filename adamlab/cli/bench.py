"""``adamlab bench``: optimizer step times as ratios to torch.optim and to the memory floor."""

import dataclasses
import json

from rich.console import Console
from rich.table import Table

from .. import bench
from .output import print_table, usable_device


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "bench", help="time optimizer steps against torch.optim and the memory floor",
        description="Time one step of each optimizer (the median of repeated steps after warm-up) "
                    "for adamlab's fused and simple paths, torch.optim's single-tensor, foreach and "
                    "fused steps, and pytorch-optimizer, heavyball and bitsandbytes where installed, "
                    "on three layouts of float32 parameters; report each as a ratio to torch's "
                    "fused step and to an in-place stream over the same bytes, and the memory "
                    "bandwidth it reaches.")
    parser.add_argument("--quick", action="store_true", help="a scaled-down GPT-2 layout (under 3 minutes)")
    parser.add_argument("--optimizers", default=",".join(bench.OPTIMIZERS),
                        help=f"comma-separated, from {', '.join(bench.OPTIMIZERS)} (default: all)")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps per measurement (>= 10)")
    parser.add_argument("--layouts", default=None,
                        help="comma-separated, from 10-large, gpt2-small (gpt2-quarter with --quick), "
                             "1000-small (default: all)")
    parser.add_argument("--device", default="cpu", help="where the parameters live: cpu (default) or cuda")
    parser.add_argument("--json", action="store_true", help="print one JSON object per measurement")
    parser.set_defaults(run=run)


def _names(option: str, text: str, known) -> list[str]:
    """A comma-separated option's names, each one of ``known``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"{option}: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(known)}")
    return names


def run(args) -> int:
    optimizers = _names("--optimizers", args.optimizers, list(bench.OPTIMIZERS))
    only_layouts = None if args.layouts is None else _names("--layouts", args.layouts, list(bench.layouts(args.quick)))
    if args.repeats < 10:
        raise ValueError(f"--repeats must be >= 10 (a median of fewer steps says little), got {args.repeats}")
    device = usable_device(args.device)
    console = Console(stderr=True)
    with console.status("benchmarking") as status:
        results = bench.run(optimizers, args.quick, args.repeats,
                            on_progress=lambda message: status.update(f"benchmarking {message}"), device=device,
                            only_layouts=only_layouts)
    if args.json:
        print(json.dumps([dataclasses.asdict(result) for result in results], indent=2))
        return 0
    for layout in dict.fromkeys(result.layout for result in results):
        rows = [result for result in results if result.layout == layout]
        table = Table(title=f"{layout}: {rows[0].params:,} float32 parameters on {device}, one step")
        for header in ("optimizer", "implementation", "ms / step", "vs torch fused", "vs floor", "GB/s"):
            table.add_column(header, justify="left" if header in ("optimizer", "implementation") else "right")
        for result in rows:
            ratio = "" if result.ratio_vs_torch_fused is None else f"{result.ratio_vs_torch_fused:.2f}x"
            table.add_row(result.optimizer, result.impl, f"{result.ms_per_step:.2f}", ratio,
                          f"{result.ratio_vs_floor:.2f}x", f"{result.gb_per_s:.0f}")
        print_table(table)
    return 0
