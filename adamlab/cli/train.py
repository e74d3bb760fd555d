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

from .. import distributed, registry
from ..files import PNG, atomic_write, check_outputs
from ..lab.names import CorpusError
from ..lab.training import (CHECKPOINT_FILE, DTYPES, LARGEST_SAMPLES, OPTIMIZERS, RECIPES, ROUNDINGS, History,
                             TrainConfig, Training, read_checkpoint, read_split, saved_config)
from ..maths.hyperparameters import InvalidHyperparameter
from ..recipe import SCHEDULES
from ..lab.trace import finite
from .output import DIVERGED, print_table, usable_device

# Options that set the run's numbers: they default to the recipe's value and may not
# be given with --resume, which continues a run with its own settings.
_CONFIG_OPTIONS = {
    "optimizer": dict(choices=OPTIMIZERS, help="adamlab's optimizers, or torch.optim's as torch-adam(w)"),
    "lr": dict(type=float, help="peak learning rate"),
    "steps": dict(type=int, help="optimizer steps"),
    "batch_size": dict(type=int, help="names per step (at most the training split's names)"),
    "schedule": dict(choices=SCHEDULES, help="learning-rate schedule"),
    "warmup": dict(type=int, help="warmup steps"),
    "min_lr": dict(type=float, help="warmup-cosine's final learning rate"),
    "weight_decay": dict(type=float, help="decay of the weight matrices (never of norms)"),
    "clip": dict(type=float, help="max gradient norm, 0 for none"),
    "seed": dict(type=int, help="seed of the initialization, the split and the data order (0 to 2**64 - 1)"),
    "eval_every": dict(type=int, help="steps between evaluations of the loss on both splits"),
    "dtype": dict(choices=DTYPES, help="precision of weights, gradients and optimizer state (bfloat16: "
                                       "no float32 master copy)"),
    "rounding": dict(choices=ROUNDINGS, help="how bfloat16 weights are rounded after each step "
                                             "(default stochastic)"),
}


#: The most processes --nproc starts.
LARGEST_NPROC = 64

def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train", help="train a small GPT on names and show what it learned",
        description="Train a character-level GPT on a corpus of names: AdamW, warmup and cosine "
                    "decay, clipping, weight decay on matrices only (the default recipe), or "
                    "microgpt's configuration (--recipe microgpt). Unset options take the recipe's "
                    "values.",
        epilog=f"exit status: 0 when every run finished; {DIVERGED} when a run diverged (its loss was not a "
               f"finite number; the summary, JSON and plot are still written); 130 when stopped by Ctrl-C; "
               f"2 for bad input (nothing trained, nothing written); 1 when a rank of --nproc failed. "
               f"Outputs (--save, --plot) may replace only what adamlab wrote there earlier, and never "
               f"an input.")
    parser.add_argument("--recipe", choices=RECIPES, help="default (AdamW, the standard recipe; the default) "
                                                          "or microgpt")
    parser.add_argument("--data", metavar="FILE",
                        help="names, one per line, a regular file of at most 16 MiB (default: 5,163 US census "
                             "first names that ship with adamlab); the vocabulary is built from the file's "
                             "characters")
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
    parser.add_argument("--samples", type=int, default=10,
                        help=f"names to sample at the end (0 to {LARGEST_SAMPLES:,}; none from a run that diverged)")
    parser.add_argument("--on-divergence", choices=("stop", "finish"), default="stop",
                        help=f"when the loss is not a finite number: stop there (default) or train on to "
                             f"--steps; either way no checkpoint is written after it, and the exit status "
                             f"is {DIVERGED}")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")
    parser.set_defaults(run=run)


def _config(args) -> TrainConfig:
    """The run's settings: the options over the recipe's, or those of the run to resume."""
    if args.resume is not None:
        return saved_config(read_checkpoint(args.resume))
    given = {name: getattr(args, name) for name in _CONFIG_OPTIONS if getattr(args, name) is not None}
    if args.data is not None:
        given["data"] = str(Path(args.data).absolute())  # the same file when resumed from elsewhere
    return RECIPES[args.recipe or "default"].replace(**given)


def _start(args, config: TrainConfig, device: str) -> Training:
    training = Training(config, device) if args.resume is None else Training.resume(args.resume, device)
    training.stop_on_divergence = args.on_divergence == "stop"
    return training


def _check_options(args) -> None:
    """The options' ranges and combinations, before anything is read."""
    if not 0 <= args.samples <= LARGEST_SAMPLES:
        raise ValueError(f"--samples must be a whole number from 0 to {LARGEST_SAMPLES:,}, got {args.samples}")
    if args.nproc is not None and not 1 <= args.nproc <= LARGEST_NPROC:
        raise ValueError(f"--nproc must be a whole number from 1 to {LARGEST_NPROC}, got {args.nproc}")
    if args.nproc is not None and args.resume is not None and not Path(args.resume).is_dir():
        raise ValueError(f"--nproc resumes a checkpoint folder of a sharded run; {args.resume} is not one "
                         f"(resume a checkpoint file without --nproc)")
    if args.nproc is not None and args.optimizer in registry.OPTIMIZERS and registry.get(args.optimizer).matrices_only:
        raise ValueError(f"--optimizer {args.optimizer} does not train sharded yet (Muon's Newton-Schulz products "
                         f"need whole matrices); leave out --nproc")
    if args.compare and (args.save or args.resume):
        raise ValueError("--compare runs two trainings; it cannot be combined with --save or --resume")
    fixed = [f"--{name.replace('_', '-')}" for name in ["recipe", "data", *_CONFIG_OPTIONS]
             if getattr(args, name) is not None]
    if args.resume is not None and fixed:
        raise ValueError(f"--resume continues a run with its own settings; drop {', '.join(fixed)}")


def _check_paths(args, config: TrainConfig, sharded: bool) -> None:
    """Every output checked against the inputs, each other and what is there (adamlab.files)."""
    checkpoint = distributed.CHECKPOINT_FOLDER if sharded else CHECKPOINT_FILE
    check_outputs([("--save", args.save, checkpoint), ("--plot", None if args.no_plot else args.plot, PNG)],
                  inputs=[("--resume", args.resume),
                          ("--data", args.data) if args.data else ("the resumed run's data", config.data)],
                  may_share=[("--save", "--resume")])  # a run continued into its own checkpoint


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
    def diverged_at(self) -> int | None:
        return self.summary["diverged_at_step"]

    @property
    def stopped(self) -> bool:
        """Stopped on request (Ctrl-C) before the end."""
        return self.step < self.steps and self.diverged_at is None

    @classmethod
    def of(cls, label: str, training: Training, samples: int) -> "_Outcome":
        return cls(label, training.summary(samples), training.history, training.step, training.config.steps)


def _in_this_process(args, config: TrainConfig, device: str, console: Console) -> list[_Outcome]:
    training = _start(args, config, device)
    runs = [(_label(training.config), training)]
    for changes in args.compare:  # on the settings as given: what follows from them (warmup, min_lr) follows anew
        runs.append((_label(config, changes), Training(config.replace(**changes), device)))
        runs[-1][1].stop_on_divergence = training.stop_on_divergence
    if not args.json:
        _describe(training, console)
    outcomes = []
    for label, each in runs:
        _train(each, label, args.save, quiet=args.json)
        outcomes.append(_Outcome.of(label, each, args.samples))
        if outcomes[-1].stopped:
            break
    return outcomes


def _on_ranks(args, config: TrainConfig, device: str) -> list[_Outcome]:
    """Each run in ``--nproc`` processes, one after the other; rank 0 reports back."""
    nproc = args.nproc or distributed.saved_world(args.resume)  # resuming a folder: as many as saved it
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
        read_split(each)  # the data, and the batch against it
    outcomes = []
    for index, (label, each) in enumerate(runs):
        job = {"config": each, "resume": args.resume if index == 0 else None, "device": device, "label": label,
               "save": args.save, "samples": args.samples, "quiet": args.json, "describe": index == 0 and not args.json,
               "stop_on_divergence": args.on_divergence == "stop"}
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
        training.stop_on_divergence = job["stop_on_divergence"]
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
    # Everything that can be refused is refused here, before any work starts.
    _check_options(args)
    config = _config(args)
    sharded = args.nproc is not None or (args.resume is not None and Path(args.resume).is_dir())
    _check_paths(args, config, sharded)
    device = usable_device(args.device)
    console = Console()
    try:
        outcomes = _on_ranks(args, config, device) if sharded else _in_this_process(args, config, device, console)
    except CorpusError as error:  # met while the names are read, before any training
        raise ValueError(f"--data {error}" if args.data else str(error)) from None
    summaries = [outcome.summary for outcome in outcomes]
    if not args.no_plot:
        from ..lab.plots import plot_losses  # matplotlib loads only when a plot is drawn

        title = "adamlab train, " + ("resumed" if args.resume else f"recipe {args.recipe or 'default'}")
        plot_losses([(outcome.label, outcome.history) for outcome in outcomes], args.plot, title)
    result = dict(summaries[0], plot=None if args.no_plot else str(args.plot))
    if args.compare:
        result["compare"] = summaries[1:]

    if args.json:
        print(json.dumps(finite(result), indent=2, allow_nan=False))
    else:
        _print_summaries(summaries, [outcome.label for outcome in outcomes], console)
        if not args.no_plot:
            console.print(f"loss curves: {args.plot}")
    stopped = [outcome for outcome in outcomes if outcome.stopped]
    if stopped:
        where = f"; resume with: adamlab train --resume {args.save}" if args.save else ""
        print(f"adamlab train: stopped at step {stopped[0].step} of {stopped[0].steps}{where}", file=sys.stderr)
        return 130
    diverged = [outcome for outcome in outcomes if outcome.diverged_at is not None]
    for outcome in diverged:
        how = ("stopped there" if outcome.step == outcome.diverged_at
               else f"trained on to step {outcome.step} as --on-divergence finish asks")
        kept = f"; {args.save} holds the run from before it" if args.save and Path(args.save).exists() else ""
        print(f"adamlab train: {outcome.label} diverged: its loss was not a finite number at step "
              f"{outcome.diverged_at}; {how}{kept}", file=sys.stderr)
    return DIVERGED if diverged else 0


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
        if summary["diverged_at_step"] is not None and not summary["samples"]:
            console.print(f"[bold]{label}[/] samples: none (the run diverged at step {summary['diverged_at_step']})")
        else:
            console.print(f"[bold]{label}[/] samples: {', '.join(summary['samples'])}")
