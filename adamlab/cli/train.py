"""``adamlab train``: a small GPT learns to make up names."""

import argparse
import dataclasses
import json
import math
import signal
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
import torch.multiprocessing as mp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import distributed
from ..files import atomic_write
from ..lab.training import (DTYPES, OPTIMIZERS, RECIPES, ROUNDINGS, History, TrainConfig, Training,
                             read_checkpoint, saved_config)
from ..maths.hyperparameters import InvalidHyperparameter
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
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="train data-parallel in N processes, the model and optimizer state sharded "
                             "with FSDP2 (gloo on CPU, nccl on GPUs); --save then writes a folder, and "
                             "--resume of a folder takes its number of processes unless N is given")
    parser.add_argument("--samples", type=int, default=10, help="names to sample at the end")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    parser.set_defaults(run=run)


def _config(args) -> TrainConfig:
    given = {name: getattr(args, name) for name in _CONFIG_OPTIONS if getattr(args, name) is not None}
    if args.data is not None:
        given["data"] = str(Path(args.data).resolve())
    return RECIPES[args.recipe].replace(**given)


def _start(args, device: str) -> Training:
    _check_resume(args)
    if args.resume is None:
        return Training(_config(args), device)
    return Training.resume(args.resume, device)


def _check_resume(args) -> None:
    fixed = [f"--{name.replace('_', '-')}" for name in [*_CONFIG_OPTIONS, "data"]
             if getattr(args, name) is not None]
    if args.resume is not None and (fixed or args.recipe != "default"):
        raise ValueError(f"--resume continues a run with its own settings; drop {', '.join(fixed) or '--recipe'}")


def _train(training: Training, label: str, save_to, quiet: bool, stop=None) -> None:
    """Run with a progress bar on stderr. The first Ctrl-C stops cleanly after the current step;
    a rank of a sharded run hears of it from the launching process through the event ``stop``."""
    console = Console(stderr=True, quiet=quiet)
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("lr {task.fields[lr]:.2e}"),
               TextColumn("{task.fields[speed]:,.0f} tok/s"), TimeElapsedColumn()]

    def ask_to_stop(signum, frame):
        training.stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    previous = signal.signal(signal.SIGINT, ask_to_stop) if stop is None else None
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(label, total=training.config.steps, completed=training.step,
                                     loss=float("nan"), lr=0.0, speed=0.0)

            def on_step(run: Training) -> None:
                speed = run.train_tokens / run.train_seconds if run.train_seconds else 0.0
                progress.update(task, completed=run.step, loss=run.history.batch_loss[-1],
                                lr=run.history.lr[-1], speed=speed)
                if stop is not None and stop.is_set():
                    run.stop_requested = True

            training.run(on_step, save_to)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class _Outcome(NamedTuple):
    """What a run leaves for the tables and the plot."""

    label: str
    summary: dict
    history: History
    step: int
    steps: int

    @property
    def stopped(self) -> bool:
        return self.step < self.steps

    @classmethod
    def of(cls, label: str, training: Training, samples: int) -> "_Outcome":
        return cls(label, training.summary(samples), training.history, training.step, training.config.steps)


def _in_this_process(args, device: str, console: Console) -> list[_Outcome]:
    training = _start(args, device)
    runs = [(_label(training.config), training)]
    for changes in args.compare:
        runs.append((_label(training.config, changes), Training(training.config.replace(**changes), device)))
    if not args.json:
        _describe(training, console)
    outcomes = []
    for label, each in runs:
        _train(each, label, args.save, quiet=args.json)
        outcomes.append(_Outcome.of(label, each, args.samples))
        if outcomes[-1].stopped:
            break
    return outcomes


def _on_ranks(args, device: str) -> list[_Outcome]:
    """Each run in ``--nproc`` processes, one after the other; rank 0 reports back."""
    _check_resume(args)
    nproc = args.nproc
    if args.resume is None:
        config = _config(args)
    else:
        if not Path(args.resume).is_dir():
            raise ValueError(f"--nproc resumes a checkpoint folder of a sharded run; {args.resume} is not one "
                             f"(resume a checkpoint file without --nproc)")
        config = saved_config(read_checkpoint(args.resume))
        nproc = nproc or distributed.saved_world(args.resume)
    runs = [(_label(config), config)] + [(_label(config, changes), config.replace(**changes))
                                          for changes in args.compare]
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--nproc trains on cpu, or on cuda with rank r on cuda:r; not on {device}")
    if device == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc} puts one rank on each GPU; this machine has {torch.cuda.device_count()}")
    for _, each in runs:  # refused before any process starts
        if each.batch_size < nproc:
            raise ValueError(f"--nproc {nproc} needs a batch of at least {nproc} names; "
                             f"--batch-size is {each.batch_size}")
    outcomes = []
    for index, (label, each) in enumerate(runs):
        job = {"config": each, "resume": args.resume if index == 0 else None, "device": device, "label": label,
               "save": args.save, "samples": args.samples, "quiet": args.json, "describe": index == 0 and not args.json}
        outcomes.append(_launch(job, nproc))
        if outcomes[-1].stopped:
            break
    return outcomes


def _launch(job: dict, nproc: int) -> _Outcome:
    """One run on ``nproc`` ranks. Ctrl-C here asks the ranks to stop after the same step (they
    ignore the terminal's signal); a second one stops them at once."""
    stop = mp.get_context("spawn").Event()

    def ask_to_stop(signum, frame):
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, ask_to_stop)
    try:
        with tempfile.TemporaryDirectory(prefix="adamlab-train-") as folder:
            report = Path(folder) / "report.json"
            distributed.launch(_rank, nproc, {**job, "report": str(report)}, stop, timeout=math.inf)
            outcome = json.loads(report.read_text())
    finally:
        signal.signal(signal.SIGINT, previous)
    if "hyperparameter" in outcome:
        raise InvalidHyperparameter(*outcome["hyperparameter"])
    if "error" in outcome:
        raise ValueError(outcome["error"])
    return _Outcome(job["label"], outcome["summary"], History(**outcome["history"]), outcome["step"],
                    outcome["steps"])


def _rank(rank: int, world: int, port: int, job: dict, stop) -> None:
    """One rank of ``adamlab train --nproc``: its share of the run; rank 0 shows the progress and
    writes the outcome (or the error that stopped every rank) for the launching process."""
    device = distributed.init(rank, world, port, backend="nccl" if job["device"].startswith("cuda") else "gloo")
    try:
        if job["resume"] is not None:
            training = Training.resume(job["resume"], str(device), sharded=True)
        else:
            training = Training(job["config"], str(device), sharded=True)
        if job["describe"] and rank == 0:
            _describe(training, Console())
        _train(training, job["label"], job["save"], quiet=job["quiet"] or rank != 0, stop=stop)
        outcome = _Outcome.of(job["label"], training, job["samples"])
        report = {"summary": outcome.summary, "history": dataclasses.asdict(outcome.history),
                  "step": outcome.step, "steps": outcome.steps}
    except InvalidHyperparameter as error:  # bad settings or data: every rank meets the same
        report = {"error": str(error), "hyperparameter": [error.name, error.value, error.allowed]}
    except ValueError as error:
        report = {"error": str(error)}
    if rank == 0:
        with atomic_write(job["report"]) as file:
            file.write(json.dumps(report).encode())


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
    if args.nproc is not None and args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.compare and (args.save or args.resume):
        raise ValueError("--compare runs two trainings; it cannot be combined with --save or --resume")
    for option, path in (("--plot", None if args.no_plot else args.plot), ("--save", args.save)):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise ValueError(f"{option} {path}: {Path(path).resolve().parent} is not a directory")
    device = usable_device(args.device)
    console = Console()
    sharded = args.nproc is not None or (args.resume is not None and Path(args.resume).is_dir())
    outcomes = _on_ranks(args, device) if sharded else _in_this_process(args, device, console)
    summaries = [outcome.summary for outcome in outcomes]
    if not args.no_plot:
        from ..lab.plots import plot_losses  # matplotlib loads only when a plot is drawn

        title = f"adamlab train, recipe {args.recipe if not args.resume else 'resumed'}"
        plot_losses([(outcome.label, outcome.history) for outcome in outcomes], args.plot, title)
    result = dict(summaries[0], plot=None if args.no_plot else str(args.plot))
    if args.compare:
        result["compare"] = summaries[1:]

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summaries(summaries, [outcome.label for outcome in outcomes], console)
        if not args.no_plot:
            console.print(f"loss curves: {args.plot}")
    stopped = [outcome for outcome in outcomes if outcome.stopped]
    if stopped:
        where = f"; resume with: adamlab train --resume {args.save}" if args.save else ""
        print(f"adamlab train: stopped at step {stopped[0].step} of {stopped[0].steps}{where}", file=sys.stderr)
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
