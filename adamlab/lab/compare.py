"""Which optimizer wins where: every registry optimizer on the same small, real workloads.

Each workload trains one model, from the same seeds, with every optimizer at a small sweep of
learning rates around the one its family usually takes (a third of it, it, three times it),
and records the validation loss as it goes. :func:`summarise` keeps each optimizer's best
learning rate (the lowest mean final validation loss over the seeds) and reports there the
loss, the steps and seconds each seed took to reach the workload's target loss, and the
optimizer's state in bytes. The workloads:

- ``names``: the names GPT of ``adamlab train``, its recipe (warmup, cosine decay, clipping) but
  no weight decay, which means L2 to Adam and decoupled decay to AdamW: it would compare the
  decays, not the optimizers;
- ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, 20% held out), a 64-64-10
  ReLU network, minibatches of 64;
- ``flip``: the lessons' 4-3-4 network that learns to transpose 2x2 images, full batch (its loss
  is the training loss: it has nothing to hold out).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from .. import memory, registry
from .race import Flip

#: The sweep: each optimizer's learning rate times these (up to 9: at 3 most of them chose the
#: top, where the best may lie beyond).
SWEEP = (1 / 3, 1.0, 3.0, 9.0)
#: Each family's learning rate relative to Adam's, where it differs (SGD's steps are the
#: gradient's own size; momentum's sum ten of them; AdaGrad's sum only grows; Lion's
#: coordinates each move by lr).
RELATIVE_LR = {"sgd": 30.0, "momentum": 3.0, "adagrad": 10.0, "lion": 0.1, "adafactor": 3.0}


@dataclass
class Result:
    """One run: a workload, an optimizer, a learning rate, a seed."""

    workload: str
    optimizer: str
    lr: float
    seed: int
    steps: list[int]  # the steps at which the validation loss was taken (0: before any)
    val_loss: list[float]
    seconds: list[float]  # the training time (evaluations left out) at each of those steps
    diverged_at: int | None = None

    @property
    def final(self) -> float:
        return math.inf if self.diverged_at is not None else self.val_loss[-1]

    def reached(self, target: float) -> tuple[int, float] | None:
        """The first evaluation at or below ``target``: (its step, its seconds), or None."""
        for step, loss, seconds in zip(self.steps, self.val_loss, self.seconds):
            if loss <= target:
                return step, seconds
        return None


class Workload:
    """A model, its data, and how long and how well to train it."""

    name: str
    summary: str
    steps: int
    evaluations = 10
    adam_lr: float  # the centre of Adam's sweep
    target: float  # the validation loss whose reaching is timed

    def lrs(self, optimizer: str) -> list[float]:
        """The sweep's learning rates for ``optimizer``."""
        own = registry.get(optimizer).own_step_size_lr
        centre = own if own is not None else self.adam_lr * RELATIVE_LR.get(optimizer, 1.0)
        return [centre * factor for factor in SWEEP]

    def run(self, optimizer: str, lr: float, seed: int, steps: int) -> Result:
        raise NotImplementedError

    def train(self, optimizer: str, lr: float, seed: int, steps: int, model: torch.nn.Module,
              batch_loss: Callable[[], torch.Tensor], held_out_loss: Callable[[], torch.Tensor]) -> Result:
        """``model`` trained ``steps`` steps of ``optimizer`` on ``batch_loss()``, with
        ``held_out_loss()`` taken before the first step and every tenth of the run; stopped at the
        first loss, of either, that is not a finite number."""
        stepper = registry.get(optimizer).for_model(model, lr=lr)
        every = max(1, steps // self.evaluations)
        result = Result(self.name, optimizer, lr, seed, [], [], [])
        seconds = 0.0  # training time, the evaluations left out
        for step in range(steps + 1):
            if step % every == 0 or step == steps:
                with torch.no_grad():
                    held_out = held_out_loss().item()
                result.steps.append(step), result.val_loss.append(held_out), result.seconds.append(seconds)
                if not math.isfinite(held_out):
                    result.diverged_at = step
                    break
            if step == steps:
                break
            started = time.perf_counter()
            stepper.zero_grad()
            loss = batch_loss()
            if not torch.isfinite(loss):
                result.diverged_at = step + 1
                break
            loss.backward()
            stepper.step()
            seconds += time.perf_counter() - started
        return result

    def shapes(self) -> list[tuple[int, ...]]:
        """The model's parameter shapes, for its optimizers' state bytes."""
        raise NotImplementedError


class Names(Workload):
    name = "names"
    summary = "the names GPT (2 layers, 64 wide, 0.1 M parameters), adamlab train's recipe without weight decay"
    steps = 400
    adam_lr = 3e-3
    target = 2.2

    def config(self, optimizer: str, lr: float, seed: int, steps: int):
        from .training import RECIPES
        return RECIPES["default"].replace(optimizer=optimizer, lr=lr, seed=seed, steps=steps, weight_decay=0.0,
                                          eval_every=max(1, steps // self.evaluations))

    def run(self, optimizer, lr, seed, steps):
        from .training import Training
        training = Training(self.config(optimizer, lr, seed, steps))
        times = {}
        training.run(on_step=lambda run: times.__setitem__(run.step, run.train_seconds))
        history = training.history
        return Result(self.name, optimizer, lr, seed, list(history.eval_step), list(history.val_loss),
                      [times.get(step, 0.0) for step in history.eval_step], history.diverged_at)

    def shapes(self):
        from .training import Training
        model = Training(self.config("adamw", self.adam_lr, 0, 1)).model
        return [tuple(param.shape) for param in model.parameters()]


class Digits(Workload):
    name = "digits"
    summary = "scikit-learn's 8x8 digits (1,797 images, 20% held out), a 64-64-10 ReLU network, batches of 64"
    steps = 600
    adam_lr = 3e-3
    target = 0.2
    batch_size = 64

    @staticmethod
    @functools.cache  # read once for every run of the sweep
    def data() -> tuple[torch.Tensor, ...]:
        """Training and held-out images (scaled to [0, 1]) and labels, split the same way always."""
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ValueError("the digits workload needs scikit-learn: pip install scikit-learn") from None
        digits = load_digits()
        images = torch.tensor(digits.data, dtype=torch.float32) / 16
        labels = torch.tensor(digits.target)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        held = len(labels) // 5
        return images[order[held:]], labels[order[held:]], images[order[:held]], labels[order[:held]]

    @staticmethod
    def network(seed: int) -> torch.nn.Sequential:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def run(self, optimizer, lr, seed, steps):
        images, labels, held_images, held_labels = self.data()
        model = self.network(seed)
        batches = torch.Generator().manual_seed(seed)

        def batch_loss():
            index = torch.randint(0, len(labels), (self.batch_size,), generator=batches)
            return torch.nn.functional.cross_entropy(model(images[index]), labels[index])

        return self.train(optimizer, lr, seed, steps, model, batch_loss,
                          lambda: torch.nn.functional.cross_entropy(model(held_images), held_labels))

    def shapes(self):
        return [tuple(param.shape) for param in self.network(0).parameters()]


class FlipNetwork(Workload):
    name = "flip"
    summary = "the lessons' 4-3-4 ReLU network (31 parameters) learning to transpose 2x2 binary images, full batch"
    steps = 1000
    adam_lr = 1e-2
    target = 0.1

    def run(self, optimizer, lr, seed, steps):
        inputs, targets = Flip.data()
        model = Flip.network(seed)

        def loss():  # full batch: the loss to step on is the one reported
            return torch.nn.functional.mse_loss(model(inputs), targets)

        return self.train(optimizer, lr, seed, steps, model, loss, loss)

    def shapes(self):
        return [tuple(param.shape) for param in Flip.network(0).parameters()]


WORKLOADS = {workload.name: workload for workload in (Names(), Digits(), FlipNetwork())}


@dataclass
class Summary:
    """One optimizer on one workload, at its best learning rate."""

    workload: str
    optimizer: str
    best_lr: float
    final_val_loss: float  # the mean over the seeds (inf where a seed diverged)
    final_val_loss_std: float
    reached: int  # seeds that reached the target
    seeds: int
    steps_to_target: float | None  # the median over the seeds that reached it
    seconds_to_target: float | None
    seconds_per_run: float
    state_bytes: int
    lrs: dict[str, float] = field(default_factory=dict)  # every lr of the sweep: its mean final loss

    @property
    def at_edge(self) -> bool:
        """Whether the best lr is the sweep's smallest or largest: a better one may lie beyond."""
        swept = sorted(self.lrs, key=float)  # as lrs names them, to three figures
        return len(swept) > 1 and f"{self.best_lr:.3g}" in (swept[0], swept[-1])

    def as_dict(self) -> dict:
        """As JSON takes it: an infinite loss (a diverged run) is null."""
        def finite(value):
            if isinstance(value, dict):
                return {key: finite(item) for key, item in value.items()}
            return None if isinstance(value, float) and not math.isfinite(value) else value
        return {key: finite(value) for key, value in asdict(self).items()} | {"at_edge": self.at_edge}


def plan(workloads, optimizers, seeds: int) -> list[tuple[Workload, str, float, int]]:
    """Every run: (workload, optimizer, lr, seed)."""
    return [(workload, optimizer, lr, seed) for workload in workloads for optimizer in optimizers
            for lr in workload.lrs(optimizer) for seed in range(seeds)]


def check(workloads, optimizers) -> None:
    """A step of every optimizer on every workload, before the long runs: one that cannot take a
    workload raises here (a ValueError naming both), not an hour in."""
    for workload in workloads:
        for optimizer in optimizers:
            try:
                workload.run(optimizer, workload.lrs(optimizer)[1], 0, 1)
            except ValueError as error:
                raise ValueError(f"{optimizer} cannot train the {workload.name} workload: {error}") from None


def run(workloads, optimizers, seeds: int = 3, steps_scale: float = 1.0,
        on_run: Callable[[Result, int, int], None] | None = None) -> list[Result]:
    """Every run of :func:`plan`, ``steps_scale`` times each workload's steps; ``on_run`` after each."""
    runs = plan(workloads, optimizers, seeds)
    results = []
    for done, (workload, optimizer, lr, seed) in enumerate(runs, 1):
        result = workload.run(optimizer, lr, seed, max(1, round(workload.steps * steps_scale)))
        results.append(result)
        if on_run is not None:
            on_run(result, done, len(runs))
    return results


def summarise(results: list[Result]) -> list[Summary]:
    """Each (workload, optimizer) at its best learning rate, in the order they ran."""
    grouped: dict[tuple[str, str], dict[float, list[Result]]] = {}
    for result in results:
        grouped.setdefault((result.workload, result.optimizer), {}).setdefault(result.lr, []).append(result)
    summaries, shapes = [], {}
    for (workload_name, optimizer), by_lr in grouped.items():
        workload = WORKLOADS[workload_name]
        if workload_name not in shapes:  # the names GPT's shapes take a model built: once per workload
            shapes[workload_name] = workload.shapes()
        means = {lr: statistics.fmean(result.final for result in runs) for lr, runs in by_lr.items()}
        best_lr = min(means, key=lambda lr: (means[lr], lr))
        best = by_lr[best_lr]
        finals = [result.final for result in best]
        reached = [hit for hit in (result.reached(workload.target) for result in best) if hit is not None]
        summaries.append(Summary(
            workload_name, optimizer, best_lr, means[best_lr],
            statistics.pstdev(finals) if all(map(math.isfinite, finals)) else math.inf,
            len(reached), len(best),
            statistics.median(step for step, _ in reached) if reached else None,
            statistics.median(seconds for _, seconds in reached) if reached else None,
            statistics.fmean(result.seconds[-1] for result in best),
            memory.state_bytes(optimizer, shapes[workload_name]),
            {f"{lr:.3g}": mean for lr, mean in sorted(means.items())}))
    return summaries
