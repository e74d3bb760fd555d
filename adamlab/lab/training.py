"""Training the names GPT: the recipes, one run's state, checkpoints that resume exactly (and
are checked against a digest first), and runs that diverge stopping cleanly.

>>> run = Training(RECIPES["microgpt"].replace(steps=3, eval_every=3))
>>> run.run()
>>> run.summary(samples=2)["steps"]
3
"""

import dataclasses
import hashlib
import inspect
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from .. import distributed, optim, registry
from ..files import Kind, atomic_write, check_output
from ..maths.hyperparameters import InvalidHyperparameter, check
from ..recipe import SCHEDULES, drive, hidden_matrices, param_groups
from .gpt import GPT, GPTConfig
from .names import DEFAULT_CORPUS, Vocabulary, encode_all, read_names, split

#: torch.optim's own classes, to hold adamlab's against (``--compare torch-adamw``): not adamlab's
#: optimizers, so not in the registry.
TORCH_OPTIMIZERS = {"torch-adam": torch.optim.Adam, "torch-adamw": torch.optim.AdamW}
#: Optimizers that train the model as two, by command-line name: Muon for its hidden matrices
#: beside AdamW for the rest (embeddings, head, norms), as the nanoGPT speedrun trains.
#: The optimizers a run can use, by command-line name: the registry's, the hybrids, then torch.optim's.
OPTIMIZERS = (*registry.OPTIMIZERS, *TORCH_OPTIMIZERS)

#: The precisions a run can train in: of the weights, the gradients and the optimizer state alike.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: How bfloat16 weights are rounded after each step (see ``stochastic_rounding`` on the optimizers).
ROUNDINGS = ("stochastic", "nearest")

CHECKPOINT_FORMAT = "adamlab-train-2"
#: Checkpoint files saved before they carried a digest: still read, without the check.
UNCHECKED_FORMAT = "adamlab-train-1"
#: The largest step count, warmup, evaluation interval or model size a run takes: beyond any
#: real run, and small enough for every counter.
LARGEST = 10**9
#: torch's generators take seeds from 0 to 2**64 - 1.
LARGEST_SEED = 2**64 - 1
#: The most names a run draws for ``samples``.
LARGEST_SAMPLES = 10_000
#: Training loss is measured on this many training names (the first of the seeded shuffle), to keep
#: evaluation cheap on large corpora; validation loss on the whole validation split.
TRAIN_EVAL_NAMES = 2000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's numbers."""

    optimizer: str = "adamw"
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.1
    schedule: str = "warmup-cosine"
    warmup: int | None = None  # None: 5% of the steps
    min_lr: float | None = None  # warmup-cosine's floor; None: a tenth of lr
    clip: float = 1.0  # max gradient norm; 0 turns clipping off
    steps: int = 2000
    batch_size: int = 32
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    block_size: int = 16
    norm: str = "rmsnorm"
    init_std: float = 0.02
    seed: int = 1337
    validation_fraction: float = 0.1
    eval_every: int | None = None  # None: 20 evaluations over the run
    data: str | None = None  # a names file; None for adamlab's own corpus
    dtype: str = "float32"  # of weights, gradients and optimizer state: no float32 master copy
    rounding: str = "stochastic"  # of bfloat16 weights after each step

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def settled(self) -> "TrainConfig":
        """This config with the settings left to the run's length filled in."""
        return self.replace(
            warmup=self.steps // 20 if self.warmup is None else self.warmup,
            min_lr=self.lr / 10 if self.min_lr is None else self.min_lr,
            eval_every=max(1, self.steps // 20) if self.eval_every is None else self.eval_every)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        # InvalidHyperparameter names the setting: the command line turns it into its option
        for name in ("steps", "batch_size", "n_layer", "n_embd", "n_head", "block_size", "eval_every", "warmup"):
            _check_whole(name, getattr(self, name), 0 if name == "warmup" else 1, LARGEST)
        _check_whole("seed", self.seed, 0, LARGEST_SEED)
        check(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)
        if not (isinstance(self.clip, (int, float)) and 0 <= self.clip < math.inf):
            raise InvalidHyperparameter("clip", self.clip, "a finite number >= 0 (0: no clipping)")
        if self.min_lr is not None and not (isinstance(self.min_lr, (int, float)) and 0 <= self.min_lr <= self.lr):
            raise InvalidHyperparameter("min_lr", self.min_lr, f"in [0, lr={self.lr:g}]")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")


def _check_whole(name: str, value, low: int, high: int) -> None:
    """None (left to the run's length) or a whole number from ``low`` to ``high``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise InvalidHyperparameter(name, value, f"a whole number from {low} to {high:,}")


RECIPES = {
    # AdamW, warmup then cosine decay, clipping at 1.0, decay on matrices only, 32 names a step.
    "default": TrainConfig(),
    # microgpt's configuration: one layer, 16 channels, one name a step, Adam with linear decay.
    "microgpt": TrainConfig(optimizer="adam", lr=1e-2, betas=(0.85, 0.99), eps=1e-8, weight_decay=0.0,
                            schedule="linear-decay", warmup=0, min_lr=0.0, clip=0.0, steps=1000,
                            batch_size=1, n_layer=1, n_embd=16, n_head=4, block_size=16, init_std=0.08),
}


def read_split(config: TrainConfig) -> tuple[list[str], list[str], list[str]]:
    """The run's names, and its training and validation names. Raises ValueError for data it
    cannot use, and for a batch larger than the training names: a batch draws them with
    replacement, so a larger one would only repeat names (and grow memory without bound)."""
    names = read_names(config.data)
    train_names, val_names = split(names, config.validation_fraction, config.seed)
    if config.batch_size > len(train_names):
        raise InvalidHyperparameter("batch_size", config.batch_size,
                                    f"at most {len(train_names):,}, the number of training names")
    return names, train_names, val_names


def optimizer_class(name: str) -> type:
    """The class an optimizer's name makes: adamlab's (the registry's), or torch.optim's."""
    return TORCH_OPTIMIZERS[name] if name in TORCH_OPTIMIZERS else registry.get(name).make


def make_optimizer(config: TrainConfig, groups: list[dict], model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """The configured optimizer over ``groups``, given only the settings its class takes (and
    those its name fixes: "momentum" is SGD with momentum 0.9). Muon takes ``model``'s hidden
    matrices (AdamW the rest), Adam-mini its named parameters."""
    accepted = inspect.signature(optimizer_class(config.optimizer)).parameters
    settings = {name: getattr(config, name) for name in ("lr", "betas", "eps") if name in accepted}
    if "eps" in accepted and isinstance(accepted["eps"].default, tuple):
        del settings["eps"]  # Adafactor's (eps1, eps2) are no Adam eps: keep its defaults
    if "betas" in settings and len(accepted["betas"].default) > 2:  # AdEMAMix's beta3: its default
        settings["betas"] = (*settings["betas"], *accepted["betas"].default[2:])
    if config.dtype == "bfloat16" and config.rounding == "stochastic":
        if "stochastic_rounding" not in accepted:
            rounding = [name for name in OPTIMIZERS
                        if "stochastic_rounding" in inspect.signature(optimizer_class(name)).parameters]
            raise ValueError(f"{config.optimizer} has no stochastic rounding; use one of {', '.join(rounding)}, "
                             f"or rounding 'nearest'")
        settings["stochastic_rounding"] = True
    if config.optimizer in TORCH_OPTIMIZERS:
        return TORCH_OPTIMIZERS[config.optimizer](groups, **settings)
    entry = registry.get(config.optimizer)
    if entry.matrices_only:
        return muon_with_adamw(config, model)
    if entry.takes_names:  # Adam-mini: the model's names and shape choose its blocks
        return entry.build(model.named_parameters(), **settings, weight_decay=config.weight_decay,
                           dim=config.n_embd, n_heads=config.n_head)
    return entry.build(groups, **settings)


def muon_with_adamw(config: TrainConfig, model: torch.nn.Module) -> optim.Hybrid:
    """Muon over the model's hidden matrices, scaled to AdamW's update size ("match_rms_adamw"), so
    the run's lr and weight decay serve both; AdamW over the rest, decaying its matrices
    (embeddings, head), not its vectors."""
    matrices, others = hidden_matrices(model)
    muon = optim.Muon(matrices, lr=config.lr, weight_decay=config.weight_decay, adjust_lr_fn="match_rms_adamw")
    decayed = [param for param in others if param.dim() >= 2]
    vectors = [param for param in others if param.dim() < 2]
    groups = [{"params": params, "weight_decay": decay}
              for params, decay in ((decayed, config.weight_decay), (vectors, 0.0)) if params]
    return optim.Hybrid(muon, optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps))


@dataclass
class History:
    """What a run has seen: the loss of every step, and both splits' loss at each evaluation."""

    batch_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    diverged_at: int | None = None  # the first step whose loss was not a finite number


class Training:
    """One training run of the names GPT, from a config or from a checkpoint.

    ``sharded``: this process is one rank of a data-parallel run (the process group already
    joined, see :mod:`adamlab.distributed`). Every rank then draws the same batches and trains
    on its share of each; the model is sharded with FSDP2 block by block, and so is the
    optimizer state; checkpoints are folders. The losses, history and summary are the whole
    run's on every rank, and its numbers those of one process, but for the order of sums.

    A loss that is not a finite number (the batch's or an evaluation's) marks the run diverged
    (``history.diverged_at``, the same step on every rank). It then stops before that step's
    update, unless ``stop_on_divergence`` is False, and no checkpoint is written from then on:
    the last one, from before, stays.
    """

    def __init__(self, config: TrainConfig = RECIPES["default"], device: str = "cpu", sharded: bool = False):
        config = config.settled()
        self.config, self.device, self.sharded = config, torch.device(device), sharded
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
        if config.batch_size < self.world:
            raise ValueError(f"a batch of {config.batch_size} names cannot be shared by {self.world} ranks; "
                             f"use batch_size >= {self.world}")
        names, train_names, val_names = read_split(config)
        self.vocabulary = Vocabulary.of(names)
        self.splits = {name: tuple(tensor.to(self.device) for tensor in
                                   encode_all(part, self.vocabulary, config.block_size))
                       for name, part in (("train", train_names), ("val", val_names))}
        self.split_sizes = {"train": len(train_names), "val": len(val_names)}
        self.eval_sets = {"train": tuple(tensor[:TRAIN_EVAL_NAMES] for tensor in self.splits["train"]),
                          "val": self.splits["val"]}

        torch.manual_seed(config.seed)
        self.model = GPT(GPTConfig(self.vocabulary.size, config.block_size, config.n_layer,
                                   config.n_embd, config.n_head, config.norm,
                                   config.init_std)).to(self.device, DTYPES[config.dtype])
        if sharded:
            distributed.shard(self.model, self.model.blocks)
        if sharded and config.optimizer in registry.OPTIMIZERS and registry.get(config.optimizer).matrices_only:
            raise ValueError(f"{config.optimizer} does not train sharded yet (its Newton-Schulz products need whole "
                             f"matrices); leave out --nproc")
        self.groups = param_groups(self.model, config.weight_decay)
        self.optimizer = make_optimizer(config, self.groups.groups, self.model)
        schedule = SCHEDULES[config.schedule]
        settings = {"warmup_steps": config.warmup, "total_steps": config.steps, "min_lr": config.min_lr}
        accepted = inspect.signature(schedule).parameters
        self.scheduler = drive(self.optimizer, schedule,
                               **{name: value for name, value in settings.items() if name in accepted})
        self.batches = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history = History()
        self.seconds = 0.0  # wall time spent in run(), over every segment of the run
        self.train_seconds, self.train_tokens = 0.0, 0
        self.stop_requested = False  # asked for; see ``stopping``
        self._stop_agreed = False
        self.stop_on_divergence = True

    @property
    def diverged(self) -> bool:
        return self.history.diverged_at is not None

    @property
    def stopping(self) -> bool:
        """Whether the run stops before its next step: one process stops when asked
        (``stop_requested``), the ranks of a sharded run when any of them was asked before
        the last step, so that all stop after the same one; and any run when it diverged
        (unless ``stop_on_divergence`` is False)."""
        if self.diverged and self.stop_on_divergence:
            return True
        return self._stop_agreed if self.sharded else self.stop_requested

    def _check_finite(self, loss: float, step: int) -> None:
        """Mark the run diverged at ``step`` if ``loss`` is not a finite number (the first time)."""
        if not math.isfinite(loss) and not self.diverged:
            self.history.diverged_at = step

    @property
    def parameters(self) -> int:
        return sum(param.numel() for param in self.model.parameters())

    def train_step(self) -> float:
        """One optimizer step on a batch of training names; returns the batch's loss. The step
        whose loss is not finite takes no update when the run stops on divergence: the model
        stays the last one with a finite loss."""
        inputs, targets = self.splits["train"]
        index = torch.randint(0, len(inputs), (self.config.batch_size,), generator=self.batches)
        index = index.to(self.device)
        batch_inputs, batch_targets = inputs[index], targets[index]
        tokens = int((batch_targets >= 0).sum())
        started = time.perf_counter()
        self._mode(training=True)
        self.optimizer.zero_grad(set_to_none=True)
        if self.sharded:
            loss = self._share_of_the_batch(batch_inputs, batch_targets, tokens)
        else:
            _, loss = self.model(batch_inputs, batch_targets)
            loss.backward()
        loss = loss.item()  # the same on every rank of a sharded run: all agree on divergence
        self._check_finite(loss, self.step + 1)
        lr = self.optimizer.param_groups[0]["lr"]
        if not (self.diverged and self.stop_on_divergence):
            if self.config.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
            self.optimizer.step()
            self.scheduler.step()
        self.step += 1
        self.train_seconds += time.perf_counter() - started
        self.train_tokens += tokens
        self.history.batch_loss.append(loss)
        self.history.lr.append(float(lr))
        return loss

    def _share_of_the_batch(self, inputs: torch.Tensor, targets: torch.Tensor, tokens: int) -> torch.Tensor:
        """Forward and backward on this rank's rows of the batch; the whole batch's mean loss.

        A rank's loss is the sum over its tokens divided by the whole batch's count, times the
        number of ranks: FSDP averages the ranks' gradients, which makes that the gradient of
        the whole batch's mean, as in one process. The losses are summed across the ranks with
        the ranks' wishes to stop, so every rank stops at the same step.
        """
        logits, _ = self.model(inputs.tensor_split(self.world)[self.rank])
        total = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(),
                                                  targets.tensor_split(self.world)[self.rank].flatten(),
                                                  ignore_index=-1, reduction="sum")
        (total * (self.world / tokens)).backward()
        shared = torch.stack([total.detach(), torch.tensor(float(self.stop_requested), device=self.device)])
        dist.all_reduce(shared)
        self._stop_agreed = bool(shared[1] > 0)
        return shared[0] / tokens

    def _mode(self, training: bool) -> None:
        """The model's mode, and a schedule-free optimizer's with it: its parameters hold y, where
        gradients are taken, while training, and x, the average, to evaluate and sample."""
        self.model.train(training)
        switch = getattr(self.optimizer, "train" if training else "eval", None)
        if callable(switch):
            switch()

    @torch.no_grad()
    def evaluate(self, split_name: str) -> float:
        """Mean cross-entropy per predicted character, over the split's evaluation names."""
        self._mode(training=False)
        inputs, targets = self.eval_sets[split_name]
        total, count = 0.0, 0
        chunk = 1024 * self.world  # each rank takes its share of every chunk (the same number of forwards)
        for start in range(0, len(inputs), chunk):
            logits, _ = self.model(inputs[start:start + chunk].tensor_split(self.world)[self.rank])
            wanted = targets[start:start + chunk].tensor_split(self.world)[self.rank]
            losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), wanted.flatten(),
                                                       ignore_index=-1, reduction="sum")
            total, count = total + losses.item(), count + int((wanted >= 0).sum())
        if self.sharded:
            sums = torch.tensor([total, count], dtype=torch.float64, device=self.device)
            dist.all_reduce(sums)
            total, count = sums.tolist()
        return total / count

    def _record_evaluation(self) -> None:
        if self.history.eval_step and self.history.eval_step[-1] == self.step:
            return
        self.history.eval_step.append(self.step)
        self.history.train_loss.append(self.evaluate("train"))
        self.history.val_loss.append(self.evaluate("val"))
        self._check_finite(self.history.train_loss[-1] + self.history.val_loss[-1], self.step)

    def run(self, on_step: Callable[["Training"], None] | None = None,
            save_to: str | Path | None = None) -> None:
        """Train until ``config.steps`` or until ``stopping`` (``stop_requested`` set; in a sharded
        run, on any rank before the last step).

        ``on_step`` is called after every step (progress display); ``save_to`` receives a
        checkpoint at every evaluation and when the run ends or stops, until it diverges.
        """
        clock_base, started = self.seconds, time.perf_counter()
        if self.step == 0:
            self._record_evaluation()
        while self.step < self.config.steps and not self.stopping:
            self.train_step()
            if self.step % self.config.eval_every == 0 or self.step == self.config.steps:
                self._record_evaluation()
            self.seconds = clock_base + time.perf_counter() - started
            if save_to is not None and self.step % self.config.eval_every == 0 and not self.diverged:
                self.save(save_to)
            if on_step is not None:
                on_step(self)
        if save_to is not None and not self.diverged:
            self.save(save_to)

    def samples(self, count: int = 10, temperature: float = 0.8) -> list[str]:
        """``count`` names drawn from the model; none from a run that diverged, whose model may
        give no probabilities to draw from."""
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= LARGEST_SAMPLES:
            raise InvalidHyperparameter("samples", count, f"a whole number from 0 to {LARGEST_SAMPLES:,}")
        if self.diverged:
            return []
        generator = torch.Generator().manual_seed(self.config.seed)
        self._mode(training=False)
        return [self.vocabulary.decode(tokens) for tokens in self.model.sample(count, generator, temperature)]

    def summary(self, samples: int = 10) -> dict:
        """The run's results: the keys of ``adamlab train --json``."""
        history = self.history
        finished = bool(history.eval_step) and history.eval_step[-1] == self.step
        train_loss = history.train_loss[-1] if finished else self.evaluate("train")
        val_loss = history.val_loss[-1] if finished else self.evaluate("val")
        self._check_finite(train_loss + val_loss, self.step)
        return {
            "final_train_loss": train_loss,
            "final_val_loss": val_loss,
            "diverged_at_step": history.diverged_at,
            "steps": self.step,
            "seconds": self.seconds,
            "tokens_per_s": self.train_tokens / self.train_seconds if self.train_seconds else 0.0,
            "samples": self.samples(samples),
            "optimizer": self.config.optimizer,
            "parameters": self.parameters,
            "param_groups": self.groups.counts,
            "data": self.config.data or DEFAULT_CORPUS,
        }

    # --- checkpoints --------------------------------------------------------------

    def checkpoint(self) -> dict:
        """Everything needed to continue this run exactly, as tensors and plain values only."""
        return {**self._run_state(), "batches": self.batches.get_state(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def _run_state(self) -> dict:
        """The checkpoint but for the model, the optimizer and the data order: plain values."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": dataclasses.asdict(self.config),
            "vocabulary": list(self.vocabulary.characters),
            "step": self.step,
            "scheduler": self.scheduler.state_dict(),
            "history": dataclasses.asdict(self.history),
            "clock": {"seconds": self.seconds, "train_seconds": self.train_seconds,
                      "train_tokens": self.train_tokens},
        }

    def save(self, path: str | Path) -> None:
        """Write a checkpoint atomically: a reader finds the old one or the new one, never half of
        one. One process writes a file; the ranks of a sharded run write a folder together
        (``adamlab.distributed.save``), the run's plain values in its JSON marker. Either holds
        the sha256 of its contents, checked when it is read. Only a checkpoint adamlab saved may
        be at ``path`` already (ValueError otherwise)."""
        if self.sharded:
            batches = bytes(self.batches.get_state().tolist()).hex()  # JSON: one line, not 5,000 numbers
            distributed.save(path, self.model, self.optimizer, extra={**self._run_state(), "batches": batches})
            return
        check_output(path, CHECKPOINT_FILE)
        # The checkpoint is saved as bytes inside the file, with their digest beside them: the
        # bytes are checked before a single one of them is unpickled.
        buffer = io.BytesIO()
        torch.save(self.checkpoint(), buffer)
        payload = torch.frombuffer(bytearray(buffer.getbuffer()), dtype=torch.uint8)
        with atomic_write(path) as file:
            torch.save({"format": CHECKPOINT_FORMAT, "sha256": hashlib.sha256(buffer.getbuffer()).hexdigest(),
                        "payload": payload}, file)

    @classmethod
    def resume(cls, path: str | Path, device: str = "cpu", sharded: bool = False) -> "Training":
        """The run saved in ``path``, ready to continue where it stopped.

        A sharded run's checkpoint folder resumes on any number of ranks, or in one process;
        a one-process checkpoint file resumes in one process."""
        path = Path(path)
        if sharded and not path.is_dir():
            raise ValueError(f"{path}: a checkpoint file of a run in one process resumes in one process "
                             f"(sharded=False); a sharded run's checkpoint is a folder")
        checkpoint = read_checkpoint(path)
        run = cls(saved_config(checkpoint), device, sharded)
        if list(run.vocabulary.characters) != checkpoint.get("vocabulary"):
            raise ValueError(f"{path}: the data file no longer gives the vocabulary this run was trained with")
        if path.is_dir():
            distributed.load(path, run.model, run.optimizer)
        try:  # checked by its digest; but a checkpoint of the format before digests is not
            if not path.is_dir():
                run.model.load_state_dict(checkpoint["model"])
                run.optimizer.load_state_dict(checkpoint["optimizer"])
            run.scheduler.load_state_dict(checkpoint["scheduler"])
            batches = checkpoint["batches"]  # a tensor, or hexadecimal in a folder's JSON
            run.batches.set_state(torch.tensor(list(bytes.fromhex(batches)), dtype=torch.uint8)
                                  if isinstance(batches, str) else batches)
            run.step = checkpoint["step"]
            run.history = History(**checkpoint["history"])
            clock = checkpoint["clock"]
            run.seconds, run.train_seconds, run.train_tokens = (clock["seconds"], clock["train_seconds"],
                                                                 clock["train_tokens"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: damaged ({type(error).__name__} while restoring the run)") from None
        return run


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint: a file of one process's run, or the plain values of a sharded run's
    folder (its tensors load with ``adamlab.distributed.load``). No code from it runs."""
    path = Path(path)
    if not path.is_dir():
        return load_checkpoint(path)
    checkpoint = distributed.read_extra(path)
    if checkpoint.get("format") not in (CHECKPOINT_FORMAT, UNCHECKED_FORMAT):
        raise ValueError(f"{path}: not an adamlab train checkpoint")
    return checkpoint


def saved_config(checkpoint: dict) -> TrainConfig:
    """The settings of a checkpoint's run."""
    try:
        return TrainConfig(**{**checkpoint["config"], "betas": tuple(checkpoint["config"]["betas"])})
    except (KeyError, TypeError) as error:
        raise ValueError(f"not the settings of an adamlab train run ({type(error).__name__}: {error})") from None


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint without running any code from it, its contents checked
    against the digest saved with them first."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ValueError(f"{path}: is not a checkpoint file")
    outer = _torch_load(path, path)
    if not isinstance(outer, dict) or outer.get("format") not in (CHECKPOINT_FORMAT, UNCHECKED_FORMAT):
        raise ValueError(f"{path}: not an adamlab train checkpoint")
    if outer["format"] == UNCHECKED_FORMAT:
        return outer
    payload = outer.get("payload")
    if not (isinstance(payload, torch.Tensor) and payload.dtype == torch.uint8 and payload.dim() == 1
            and hashlib.sha256(payload.numpy()).hexdigest() == outer.get("sha256")):
        raise ValueError(f"{path}: damaged (its contents do not match the sha256 saved with them)")
    checkpoint = _torch_load(io.BytesIO(payload.numpy().tobytes()), path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an adamlab train checkpoint")
    return checkpoint


def _torch_load(source, path: Path):
    """``torch.load`` with ``weights_only=True``: tensors and plain values, never code."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except Exception as error:  # torch raises many kinds for a file it cannot unpickle
        raise ValueError(f"{path}: not a readable adamlab checkpoint ({type(error).__name__})") from None


def is_checkpoint_file(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint file ``adamlab train`` saved (damaged or not). Its
    tensors are mapped, not read: a large file of someone else's is refused quickly."""
    try:
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
                return False
        outer = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(outer, dict) and outer.get("format") in (CHECKPOINT_FORMAT, UNCHECKED_FORMAT)


#: A checkpoint file as an output: only one adamlab saved may be replaced (adamlab.files).
CHECKPOINT_FILE = Kind("a checkpoint file adamlab saved", False, is_checkpoint_file)
