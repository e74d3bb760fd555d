"""``adamlab train``: a small GPT learns to make up names."""

import argparse
import json
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..lab.training import DTYPES, OPTIMIZERS, RECIPES, ROUNDINGS, TrainConfig, Training
from ..recipe import SCHEDULES
from .output import print_table, usable_device

# Options that set the run's numbers: they default to the recipe's value and may not
# be given with --resume, which continues a run with its own settings.
_CONFIG_OPTIONS = {
    "optimizer": dict(choices=OPTIMIZERS, help="adamlab's optimizers, or torch.optim's as torch-adam(w)"),
    "lr": dict(type=float, help="peak learning rate"),
    "steps": dict(type=int, help="optimizer steps"),
    "batch_size": dict(type=int, help="names per step"),
    "schedule": dict(choices=SCHEDULES, help="learning-rate schedule"),
    "warmup": dict(type=int, help="warmup steps"),
    "min_lr": dict(type=float, help="warmup-cosine's final learning rate"),
    "weight_decay": dict(type=float, help="decay of the weight matrices (never of norms)"),
    "clip": dict(type=float, help="max gradient norm, 0 for none"),
    "seed": dict(type=int, help="seed of the initialization, the split and the data order"),
    "eval_every": dict(type=int, help="steps between evaluations of the loss on both splits"),
    "dtype": dict(choices=DTYPES, help="precision of weights, gradients and optimizer state (bfloat16: "
                                       "no float32 master copy)"),
    "rounding": dict(choices=ROUNDINGS, help="how bfloat16 weights are rounded after each step "
                                             "(default stochastic)"),
}


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a small GPT on names and show what it learned",
        description="Train a character-level GPT on a corpus of names: AdamW, warmup and cosine "
                    "decay, clipping, weight decay on matrices only (the default recipe), or "
                    "microgpt's configuration (--recipe microgpt). Unset options take the recipe's "
                    "values.")
    parser.add_argument("--recipe", choices=RECIPES, default="default")
    parser.add_argument("--data", metavar="FILE",
                        help="names, one per line (default: 5,163 US census first names that ship "
                             "with adamlab); the vocabulary is built from the file's characters")
    for name, settings in _CONFIG_OPTIONS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, **settings)
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--compare", metavar="OPTIMIZER|SETTING=VALUE,...", action="append", default=[],
                        type=_comparison,
                        help="train again with another optimizer, or other settings (e.g. "
                             "dtype=bfloat16,rounding=nearest), same seed and data order, and plot "
                             "every run; may be given more than once")
    parser.add_argument("--plot", metavar="FILE", default="adamlab-train.png",
                        help="loss-curve PNG (default adamlab-train.png)")
    parser.add_argument("--no-plot", action="store_true", help="write no plot")
    parser.add_argument("--save", metavar="FILE",
                        help="checkpoint at every evaluation, at the end and on Ctrl-C")
    parser.add_argument("--resume", metavar="FILE", help="continue the run saved in FILE")
    parser.add_argument("--samples", type=int, default=10, help="names to sample at the end")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    parser.set_defaults(run=run)


def _config(args) -> TrainConfig:
    given = {name: getattr(args, name) for name in _CONFIG_OPTIONS if getattr(args, name) is not None}
    if args.data is not None:
        given["data"] = str(Path(args.data).resolve())
    return RECIPES[args.recipe].replace(**given)


def _start(args, device: str) -> Training:
    if args.resume is None:
        return Training(_config(args), device)
    fixed = [f"--{name.replace('_', '-')}" for name in [*_CONFIG_OPTIONS, "data"]
             if getattr(args, name) is not None]
    if fixed or args.recipe != "default":
        raise ValueError(f"--resume continues a run with its own settings; drop {', '.join(fixed) or '--recipe'}")
    return Training.resume(args.resume, device)


def _train(training: Training, label: str, save_to, quiet: bool) -> None:
    """Run with a progress bar on stderr; the first Ctrl-C stops cleanly after the current step."""
    console = Console(stderr=True, quiet=quiet)
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("lr {task.fields[lr]:.2e}"),
               TextColumn("{task.fields[speed]:,.0f} tok/s"), TimeElapsedColumn()]

    def stop(signum, frame):
        training.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    previous = signal.signal(signal.SIGINT, stop)
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(label, total=training.config.steps, completed=training.step,
                                     loss=float("nan"), lr=0.0, speed=0.0)

            def on_step(run: Training) -> None:
                speed = run.train_tokens / run.train_seconds if run.train_seconds else 0.0
                progress.update(task, completed=run.step, loss=run.history.batch_loss[-1],
                                lr=run.history.lr[-1], speed=speed)

            training.run(on_step, save_to)
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe(training: Training, console: Console) -> None:
    counts = training.groups.counts
    console.print(f"[bold]{training.config.optimizer}[/] on {training.parameters:,} parameters: "
                  f"weight decay {training.config.weight_decay:g} on {counts['decayed']['tensors']} "
                  f"matrices ({counts['decayed']['parameters']:,} parameters), none on "
                  f"{counts['not_decayed']['tensors']} norm gains ({counts['not_decayed']['parameters']:,})")
    console.print(f"data: {training.config.data or 'adamlab names corpus'} — "
                  f"{training.split_sizes['train']:,} training names, "
                  f"{training.split_sizes['val']:,} validation names, {training.vocabulary.size} tokens")


def _comparison(text: str) -> dict:
    """A --compare value as config changes: an optimizer name, or SETTING=VALUE pairs."""
    if "=" not in text:
        if text not in OPTIMIZERS:
            raise argparse.ArgumentTypeError(f"unknown optimizer {text!r}; choose from {', '.join(OPTIMIZERS)}")
        return {"optimizer": text}
    changes = {}
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if key not in _CONFIG_OPTIONS:
            raise argparse.ArgumentTypeError(f"unknown setting {key!r} in {text!r}; "
                                             f"choose from {', '.join(_CONFIG_OPTIONS)}")
        settings = _CONFIG_OPTIONS[key]
        try:
            changes[key] = settings.get("type", str)(value.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}={value!r} is not a {settings['type'].__name__}") from None
        if "choices" in settings and changes[key] not in settings["choices"]:
            raise argparse.ArgumentTypeError(f"{key} must be one of {', '.join(settings['choices'])}, "
                                             f"got {value!r}")
    return changes


def _label(config: TrainConfig, changes: dict | None = None) -> str:
    """A run's name in tables and plots: its optimizer, or what a comparison changed."""
    if changes is not None:
        return changes["optimizer"] if list(changes) == ["optimizer"] else \
            ", ".join(f"{key}={value}" for key, value in changes.items())
    if config.dtype == "bfloat16":
        return f"{config.optimizer}, bfloat16 ({config.rounding} rounding)"
    return config.optimizer


def run(args) -> int:
    if args.samples < 0:
        raise ValueError(f"--samples must be >= 0, got {args.samples}")
    if args.compare and (args.save or args.resume):
        raise ValueError("--compare runs two trainings; it cannot be combined with --save or --resume")
    for option, path in (("--plot", None if args.no_plot else args.plot), ("--save", args.save)):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise ValueError(f"{option} {path}: {Path(path).resolve().parent} is not a directory")
    device = usable_device(args.device)
    training = _start(args, device)
    runs = [(_label(training.config), training)]
    for changes in args.compare:
        runs.append((_label(training.config, changes), Training(training.config.replace(**changes), device)))

    console = Console()
    if not args.json:
        _describe(training, console)
    summaries = []
    for label, each in runs:
        _train(each, label, args.save, quiet=args.json)
        summaries.append(each.summary(args.samples))
        if each.stop_requested:
            break
    stopped = training.stop_requested or (len(runs) > 1 and runs[1][1].stop_requested)

    if not args.no_plot:
        from ..lab.plots import plot_losses  # matplotlib loads only when a plot is drawn

        title = f"adamlab train, recipe {args.recipe if not args.resume else 'resumed'}"
        plot_losses([(label, each.history) for label, each in runs][: len(summaries)], args.plot, title)
    result = dict(summaries[0], plot=None if args.no_plot else str(args.plot))
    if args.compare:
        result["compare"] = summaries[1:]

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summaries(summaries, [label for label, _ in runs], console)
        if not args.no_plot:
            console.print(f"loss curves: {args.plot}")
    if stopped:
        where = f"; resume with: adamlab train --resume {args.save}" if args.save else ""
        print(f"adamlab train: stopped at step {training.step} of {training.config.steps}{where}",
              file=sys.stderr)
        return 130
    return 0


def _print_summaries(summaries: list[dict], labels: list[str], console: Console) -> None:
    table = Table(title="after training")
    table.add_column("")
    for label in labels[: len(summaries)]:
        table.add_column(label, justify="right")
    rows = [("steps", "{:,}", "steps"), ("train loss", "{:.4f}", "final_train_loss"),
            ("validation loss", "{:.4f}", "final_val_loss"), ("seconds", "{:.1f}", "seconds"),
            ("tokens/s", "{:,.0f}", "tokens_per_s")]
    for title, form, key in rows:
        table.add_row(title, *(form.format(summary[key]) for summary in summaries))
    print_table(table)
    for label, summary in zip(labels, summaries):
        console.print(f"[bold]{label}[/] samples: {', '.join(summary['samples'])}")
