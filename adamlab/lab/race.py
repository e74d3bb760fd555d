"""Races: adamlab's optimizers side by side on the small problems the lessons teach with.

Every run here is adamlab's own torch optimizer (``adamlab.Adam``, ``adamlab.SGD`` ...) stepping
float64 parameters whose gradients torch's autograd computes: nothing below restates an
optimizer's maths. A problem returns a :class:`Race`, which the ``adamlab race`` command prints
as a table, draws, and writes as JSON, and the explorer serves.

A run whose loss or parameters leave float64's range (a learning rate far too large) is not an
error: the race says at which step it diverged (``Run.diverged_at`` and a note), and its JSON
carries null for the numbers that are no longer finite.

>>> race = run("quadratic")
>>> [(r.optimizer, round(r.params[-1][0], 4)) for r in race.runs]
[('sgd', 4.2538), ('momentum', 2.4421), ('adam', 4.92)]
"""

import copy
import math
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .. import registry
from ..maths import surfaces
from .trace import finite, trace

#: The most steps a race may run: 25 times the longest problem's own, minutes of work at most.
MAX_STEPS = 100_000


def make(optimizer: str, params, lr: float, knobs: dict) -> torch.optim.Optimizer:
    """The registry's ``optimizer`` over ``params``, with the knobs that apply to it: a race sets
    each knob on every optimizer it applies to (beta1 is no knob of AdaGrad's)."""
    entry = registry.get(optimizer)
    return entry.build(params, entry.applicable(knobs), lr=lr)


@dataclass
class Run:
    """One optimizer's run: its parameters and loss after every step (index 0: the start)."""

    optimizer: str
    lr: float
    losses: list[float]
    params: list[list[float]]
    label: str = ""
    #: the problem's own measurements: numbers for the table, lists for the pictures.
    extra: dict = field(default_factory=dict)
    #: the first step whose loss or parameters are not finite (0: the start), None if none is
    diverged_at: int | None = None

    def find_divergence(self) -> int | None:
        """The first step at which the loss or the parameters are inf or NaN, None if none is.

        Problems that keep only the final parameters (flip) are judged by the loss at every
        step and the parameters at the end."""
        every_step = len(self.params) == len(self.losses)
        for t, loss in enumerate(self.losses):
            if not all(map(math.isfinite, [loss, *(self.params[t] if every_step else [])])):
                return t
        return None if all(map(math.isfinite, self.params[-1])) else len(self.losses) - 1

    def to_json(self, *, path: bool = True) -> dict:
        out = {"optimizer": self.optimizer, "label": self.label, "lr": self.lr,
               "final_params": self.params[-1], "final_loss": self.losses[-1], "losses": self.losses,
               "diverged_at": self.diverged_at}
        if path:
            out["params"] = self.params
        return {**out, **self.extra}


@dataclass
class Race:
    problem: str
    title: str
    steps: int
    runs: list[Run]
    #: extra table columns: (key in Run.extra, header)
    columns: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    knobs: dict = field(default_factory=dict)
    #: a table by step rather than by run, for problems that have one: (headers, rows)
    by_step: tuple[list[str], list[list[float]]] | None = None
    #: the true values a problem's runs estimate, for problems that have them (moments)
    truth: dict[str, float] | None = None

    def run_of(self, optimizer: str) -> Run:
        return next(run for run in self.runs if run.optimizer == optimizer)

    def to_json(self) -> dict:
        """The race as JSON-ready values; numbers that are not finite (a diverged run) are None."""
        problem = PROBLEMS[self.problem]
        out = {"problem": self.problem, "title": self.title, "steps": self.steps, "knobs": self.knobs,
               "notes": self.notes, "columns": [{"key": key, "header": header} for key, header in self.columns]}
        if self.by_step:
            out["by_step"] = [dict(zip(self.by_step[0], row)) for row in self.by_step[1]]
        if self.truth:
            out["truth"] = self.truth
        return finite({**out, "runs": [run.to_json(path=problem.dimensions <= 2) for run in self.runs]})


class Cancelled(Exception):
    """A race stopped between two steps because its ``cancel`` event was set: nobody waits for it."""


@dataclass
class Progress:
    """How far a race has gone: ``done`` of ``total`` steps (its runs x its steps), counted by the
    problem as it steps, for another thread to read (the explorer's ``/api/progress``)."""

    total: float
    done: float = 0.0

    @property
    def share(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0


class Option(NamedTuple):
    """A problem's own setting that a race may change, and the range it may take."""

    about: str
    low: float
    high: float


# --- the problems ------------------------------------------------------------------------------

class Problem:
    """A race course: its loss, where it starts, who runs and at what learning rate by default."""

    name = ""
    summary = ""
    dimensions = 1
    steps = 100
    #: where the parameters start (None: the problem's own initialisation, no --start)
    start: tuple[float, ...] | None = (0.0,)
    #: optimizer -> its default learning rate here; the keys are the default field.
    lrs: dict[str, float] = {}
    #: knobs this problem sets unless told otherwise
    knob_defaults: dict = {}
    #: a box to draw 2-D problems in: (x_low, x_high, y_low, y_high)
    bounds: tuple[float, float, float, float] | None = None
    #: the problem's own settings that a race may change (attribute -> what it is and its range)
    options: dict[str, Option] = {}
    #: the optimizers whose inner workings the problem is about (None: any)
    only: tuple[str, ...] | None = None
    #: its parameters are several seeds' tensors stacked (flip): an optimizer of matrices cannot race
    stacks_seeds = False
    #: the work of one optimizer's step here, in steps of one optimizer on one parameter
    work_per_step = 1.0
    #: set by the one who runs the race (see Plan.run): the race stops at the next step once it is
    cancel: threading.Event | None = None
    #: set by the one who runs the race: the steps done so far, counted as the race goes
    progress: "Progress | None" = None

    def check_cancel(self, steps: float = 1.0) -> None:
        """Raise Cancelled once ``cancel`` is set, else count ``steps`` steps of one run done (of
        :attr:`Progress.total`); the problems call it between steps."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"the {self.name} race was cancelled")
        if self.progress is not None:
            self.progress.done += steps

    def runs(self, optimizers) -> int:
        """How many runs a race of ``optimizers`` makes here: one each, unless a problem adds more."""
        return len(optimizers)

    def lr(self, optimizer: str) -> float:
        """``optimizer``'s learning rate here when none is given: its own in ``lrs``, else 1e-2
        (or the multiplier of the step size it finds itself, Prodigy's 1)."""
        return self.lrs.get(optimizer, registry.get(optimizer).own_step_size_lr or 1e-2)

    def loss(self, w: torch.Tensor, t: int | None = None) -> torch.Tensor:
        """The loss at w; ``t`` (0-based step) for problems whose loss changes with time,
        None for the loss to report."""
        raise NotImplementedError

    def start_loss(self, start: tuple[float, ...]) -> float:
        """The loss the race reports at ``start``, before any step."""
        return self.loss(torch.tensor(start, dtype=torch.float64)).item()

    def project(self, w: torch.Tensor) -> None:
        """Put w back where it may be, in place (after every step)."""

    def schedule(self, t: int) -> float:
        """The learning rate's multiplier at step t (0-based; torch's LambdaLR calls it)."""
        return 1.0

    def descend(self, optimizer: str, lr: float, steps: int, start, knobs: dict) -> Run:
        """Run one optimizer on the loss from ``start``."""
        # the point as one row, for an optimizer of matrices (Muon): w below is that row's view
        row = torch.tensor([start] if registry.get(optimizer).matrix_maths else start, dtype=torch.float64,
                           requires_grad=True)
        w = row.view(-1)
        stepper = make(optimizer, [row], lr, knobs)
        schedule = torch.optim.lr_scheduler.LambdaLR(stepper, self.schedule)
        params, losses, grads = [w.tolist()], [self.loss(w.detach()).item()], []
        for t in range(steps):
            self.check_cancel()
            stepper.zero_grad()
            self.loss(row.view(-1), t).backward()
            grads.append(row.grad.view(-1).tolist())
            stepper.step()
            schedule.step()
            with torch.no_grad():
                self.project(w)
            params.append(w.tolist())
            losses.append(self.loss(w.detach()).item())
        # The gradients seen, for 1-D problems: the explorer replays them through adamlab.lab.trace.
        extra = {"grads": [g[0] for g in grads]} if self.dimensions == 1 else {}
        return Run(optimizer, lr, losses, params, extra=extra)

    def race(self, optimizers: list[str], lrs: dict[str, float], steps: int, start, knobs: dict) -> Race:
        runs = [self.descend(name, lrs[name], steps, start, knobs) for name in optimizers]
        return Race(self.name, self.title(start), steps, runs, *self.explain(runs))

    def title(self, start) -> str:
        return self.summary

    def explain(self, runs: list[Run]) -> tuple[list, list[str]]:
        """The problem's table columns and notes for these runs."""
        return [], []


class Quadratic(Problem):
    name = "quadratic"
    summary = "f(w) = w^2 from w0 = 5: momentum races ahead, Adam moves about lr a step"
    steps = 8
    start = (5.0,)
    lrs = {"sgd": 0.01, "momentum": 0.01, "adam": 0.01}

    def loss(self, w, t=None):
        return surfaces.parabola(w).sum()

    def title(self, start):
        return f"f(w) = w^2 from w0 = {start[0]:g}"

    def explain(self, runs):
        for run in runs:
            run.extra["moved"] = run.params[0][0] - run.params[-1][0]
            run.extra["moved_over_lr"] = run.extra["moved"] / run.lr
        notes = []
        if any(run.optimizer in ("adam", "adamw", "amsgrad") for run in runs):
            notes.append("On one parameter Adam's step is m_hat / sqrt(v_hat) ~ g / |g| = 1 times lr, "
                         "whatever the gradient's size: after t steps it has moved about t x lr. "
                         "Momentum's velocity sums the gradients (v = 0.9 v + g), so its steps grow "
                         "to several gradients' worth and it runs far ahead.")
        return [("moved", "moved"), ("moved_over_lr", "moved / lr")], notes


class Surface(Problem):
    """A loss of two parameters from ``adamlab.maths.surfaces``, raced from a start in its box: the
    explorer's page races these itself, on the same function printed in JavaScript."""

    dimensions = 2
    steps = 1000

    def __init__(self, name: str, summary: str, bounds, start, minima, lrs: dict[str, float], steps: int = 1000):
        self.name, self.summary, self.bounds, self.start, self.steps = name, summary, bounds, start, steps
        self.function = getattr(surfaces, name)
        #: where the loss is least (a marker on the page; the distance the table reports)
        self.minima = minima
        self.lrs = lrs

    def lr(self, optimizer):
        """The field's own, else a relative's: the Adam family's is Adam's, AdaGrad's ten times
        RMSprop's (its sum only grows), Lion's a tenth of Adam's (each coordinate moves by lr a
        step, where Adam's moves by about lr only while the gradients agree)."""
        if optimizer in self.lrs:
            return self.lrs[optimizer]
        own = registry.get(optimizer).own_step_size_lr
        if own is not None:
            return own
        if optimizer == "adagrad":
            return 10 * self.lrs["rmsprop"]
        return self.lrs["adam"] / 10 if optimizer == "lion" else self.lrs["adam"]

    def loss(self, w, t=None):
        return self.function(w[0], w[1])

    def title(self, start):
        return f"{self.summary} from ({start[0]:g}, {start[1]:g})"

    def explain(self, runs):
        for run in runs:
            run.extra["distance_to_minimum"] = min(math.dist(run.params[-1], point) for point in self.minima)
        return [("distance_to_minimum", "distance to the nearest minimum")], []


SURFACES = (
    Surface("rosenbrock", "Rosenbrock's valley (1-x)^2 + 100(y-x^2)^2, least at (1, 1)", (-2.0, 2.0, -1.0, 3.0),
            (-1.5, 2.0), [(1.0, 1.0)], {"sgd": 5e-4, "momentum": 1e-4, "rmsprop": 1e-2, "adam": 5e-2}),
    Surface("bowl", "an ill-conditioned bowl 0.05 x^2 + 2 y^2, 40 times steeper across than along",
            (-5.0, 5.0, -2.5, 2.5), (-4.5, 2.0), [(0.0, 0.0)], {"sgd": 0.2, "momentum": 0.05, "rmsprop": 0.05,
                                                                 "adam": 0.1}, steps=300),
    Surface("saddle", "a saddle x^2 - y^2 + y^4/4 at (0, 0), least at (0, +-sqrt 2)", (-2.5, 2.5, -2.5, 2.5),
            (-2.2, 0.01), [(0.0, 2 ** 0.5), (0.0, -(2 ** 0.5))], {"sgd": 0.05, "momentum": 0.01, "rmsprop": 0.01,
                                                                   "adam": 0.05}, steps=300),
    Surface("beale", "Beale's function: plateaus and steep walls, least at (3, 0.5)", (-1.5, 4.5, -1.5, 2.0),
            (1.0, 1.75), [(3.0, 0.5)], {"sgd": 1e-3, "momentum": 1e-4, "rmsprop": 1e-2, "adam": 5e-2}),
    Surface("himmelblau", "Himmelblau's function: four minima of 0", (-5.0, 5.0, -5.0, 5.0), (0.0, 0.0),
            [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848127)],
            {"sgd": 5e-3, "momentum": 1e-3, "rmsprop": 5e-2, "adam": 0.1}, steps=500),
)


class AMSGradCounterexample(Problem):
    """Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond" (ICLR 2018), section 3."""

    name = "amsgrad"
    summary = "Reddi et al.'s online problem: Adam drifts to +1, AMSGrad finds the optimum -1"
    steps = 3000
    start = (0.0,)
    C = 3.0
    lrs = {"adam": 0.1, "amsgrad": 0.1}
    # The paper's setting: no momentum, and beta2 = 1 / (1 + C^2), so one large gradient every
    # third step is forgotten before it comes again.
    knob_defaults = {"beta1": 0.0, "beta2": 1 / (1 + C ** 2)}

    def loss(self, w, t=None):
        if t is None:  # the average of one period of f_t: (C - 2) x / 3, least at x = -1
            return (self.C - 2) / 3 * w.sum()
        return (self.C if t % 3 == 0 else -1.0) * w.sum()  # the paper's t mod 3 == 1, counting from 1

    def project(self, w):
        w.clamp_(-1.0, 1.0)

    def schedule(self, t):
        return 1 / math.sqrt(t + 1)  # the paper's alpha_t = alpha / sqrt(t)

    def title(self, start):
        return (f"f_t(x) = {self.C:g} x when t mod 3 = 1, else -x, x in [-1, 1]; lr / sqrt(t), "
                f"beta1 0, beta2 1/(1+C^2)")

    def explain(self, runs):
        for run in runs:
            run.extra["final_x"] = run.params[-1][0]
        return [("final_x", "final x")], [
            "The optimum is x = -1. With beta2 = 1/(1+C^2) Adam's v forgets the rare large gradient C "
            "within a step or two, so the two small gradients pushing x up get steps as large as the "
            "one pulling it down: x drifts to +1. AMSGrad divides by the largest v so far and goes to -1."]


class Flip(Problem):
    """The lessons' 31-parameter network: 2x2 binary images to their transposes."""

    name = "flip"
    summary = "a 4-3-4 ReLU network (31 parameters) learns to transpose 2x2 binary images"
    dimensions = 31
    steps = 2000
    start = None
    lrs = {"momentum": 0.05, "adam": 0.001}
    other_lrs = {"momentum": (0.01, 0.2), "adam": (0.01, 0.05), "sgd": (0.05, 0.5), "rmsprop": (0.001, 0.01)}
    seeds = 5
    stacks_seeds = True
    work_per_step = 2.0  # five seeds' networks, stacked: about twice a step on one parameter

    def runs(self, optimizers):
        # at most: an other lr equal to the one asked for is not run twice
        return sum(1 + len(self.other_lrs.get(name, ())) for name in optimizers)

    @staticmethod
    def data() -> tuple[torch.Tensor, torch.Tensor]:
        """The 16 images [a b; c d] flattened to (a, b, c, d), and their transposes (a, c, b, d)."""
        images = torch.tensor([[(k >> bit) & 1 for bit in (3, 2, 1, 0)] for k in range(16)], dtype=torch.float64)
        return images, images[:, [0, 2, 1, 3]]

    @staticmethod
    def network(seed: int) -> torch.nn.Sequential:
        """The 4 -> 3 (ReLU) -> 4 network with torch's default initialisation under ``seed``."""
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 4)).double()

    def train(self, optimizer, lr, steps, knobs) -> dict:
        """Every seed's network trained full-batch: per seed, its losses, accuracy, weights and
        starting gradient sizes.

        The seeds' networks are stacked along a leading dimension and the loss is the sum of their
        MSEs, so each seed's gradients are exactly its own; where the optimizer's update is
        elementwise, each seed takes the very steps it would take alone, in a fifth of the time.
        One whose update reaches across a tensor (LAMB's norms, Adafactor's row and column means)
        would mix the seeds: it trains each network alone."""
        if registry.get(optimizer).make.elementwise:
            return self._train(optimizer, lr, steps, knobs, range(self.seeds))
        alone = [self._train(optimizer, lr, steps, knobs, [seed]) for seed in range(self.seeds)]
        return {key: [value for seed in alone for value in seed[key]] for key in alone[0]}

    def _train(self, optimizer, lr, steps, knobs, seeds) -> dict:
        """The networks of ``seeds``, stacked, trained together (see :meth:`train`)."""
        inputs, targets = self.data()
        networks = [self.network(seed) for seed in seeds]
        w1, b1, w2, b2 = [torch.stack([p.detach() for p in parts]).requires_grad_()
                          for parts in zip(*(network.parameters() for network in networks))]
        stepper = make(optimizer, [w1, b1, w2, b2], lr, knobs)

        def mse():  # each seed's mean squared error, shape (seeds,)
            hidden = torch.relu(inputs @ w1.transpose(1, 2) + b1[:, None])
            outputs = hidden @ w2.transpose(1, 2) + b2[:, None]
            return ((outputs - targets) ** 2).mean(dim=(1, 2)), outputs

        losses, first_gradients = [], None
        for _ in range(steps):
            self.check_cancel(len(seeds) / self.seeds)  # a step of these seeds' networks: that share of the run's
            stepper.zero_grad()
            loss, _ = mse()
            loss.sum().backward()
            losses.append(loss.detach())
            if first_gradients is None:  # the typical |gradient| of each tensor, at the start
                first_gradients = [p.grad.abs().flatten(1).mean(dim=1) for p in (w1, b1, w2, b2)]
            stepper.step()
        with torch.no_grad():
            loss, outputs = mse()
            losses.append(loss)
            correct = ((outputs > 0.5).double() == targets).all(dim=2).double().mean(dim=1)
        names = ("layer 1 weights", "layer 1 biases", "layer 2 weights", "layer 2 biases")
        return {"losses": torch.stack(losses, dim=1).tolist(), "accuracy": correct.tolist(),
                "weights": torch.cat([p.detach().flatten(1) for p in (w1, b1, w2, b2)], dim=1).tolist(),
                "gradients": [dict(zip(names, sizes)) for sizes in torch.stack(first_gradients, 1).tolist()]}

    def descend(self, optimizer, lr, steps, start, knobs):
        # One network can get stuck with a dead ReLU whatever the optimizer: average several seeds.
        trained = self.train(optimizer, lr, steps, knobs)
        losses = [sum(values) / self.seeds for values in zip(*trained["losses"])]
        gradients = {name: sum(seed[name] for seed in trained["gradients"]) / self.seeds
                     for name in trained["gradients"][0]}
        return Run(optimizer, lr, losses, [trained["weights"][0]], extra={
            "accuracy": sum(trained["accuracy"]) / self.seeds,
            "final_mse_by_seed": [seed[-1] for seed in trained["losses"]],
            "gradient_magnitude": gradients,
            "layer_ratio": max(gradients.values()) / min(gradients.values())})

    def race(self, optimizers, lrs, steps, start, knobs):
        runs = [self.descend(name, lrs[name], steps, start, knobs) for name in optimizers]
        for name in optimizers:  # the same race at other learning rates, to be fair to each optimizer
            for lr in self.other_lrs.get(name, ()):
                if lr != lrs[name]:
                    runs.append(self.descend(name, lr, steps, start, knobs))
                    runs[-1].extra["other_lr"] = True
        return Race(self.name, self.title(start), steps, runs, *self.explain(runs))

    def title(self, start):
        return "2x2 images to their transposes: a 4-3-4 ReLU network (31 parameters), MSE, 16 images"

    def explain(self, runs):
        notes = []
        if runs:  # every optimizer starts from the same weights, so from the same gradients
            sizes = ", ".join(f"{name} {value:.3g}" for name, value in runs[0].extra["gradient_magnitude"].items())
            notes.append(f"Mean |gradient| at the start, by tensor: {sizes} ({runs[0].extra['layer_ratio']:.1f}x "
                         f"apart): one learning rate is too big for some or too small for others, unless, as "
                         f"in Adam, each parameter's step is divided by its own gradient scale.")
        best = min(runs, key=lambda run: run.losses[-1])
        notes.append(f"Means over {self.seeds} seeded initialisations (the same for every optimizer). Lowest "
                     f"final loss: {best.optimizer} at lr {best.lr:g} ({best.losses[-1]:.4f}, "
                     f"{best.extra['accuracy']:.0%} of images right). Rows marked * are other learning rates.")
        return [("accuracy", "images right")], notes


class AdagradDecay(Problem):
    name = "adagrad-decay"
    summary = "AdaGrad's effective learning rate dies away; RMSprop's stays alive (the target moves halfway)"
    steps = 4000
    start = (0.0,)
    lrs = {"adagrad": 0.1, "rmsprop": 0.01}
    only = ("adagrad", "rmsprop")  # the two with an accumulator to watch
    seed = 0

    def start_loss(self, start):
        return 0.5 * (start[0] - 3.0) * (start[0] - 3.0)  # the first half's target is 3

    def targets(self, steps: int) -> torch.Tensor:
        """Noisy targets around +3 for the first half of the run, around -3 after."""
        generator = torch.Generator().manual_seed(self.seed)
        means = torch.where(torch.arange(steps) < steps // 2, 3.0, -3.0).double()
        return means + torch.randn(steps, generator=generator, dtype=torch.float64)

    def descend(self, optimizer, lr, steps, start, knobs):
        w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
        stepper = make(optimizer, [w], lr, knobs)
        samples, means = self.targets(steps), [3.0 if t < steps // 2 else -3.0 for t in range(steps)]
        # squares as products: a float's ** 2 raises OverflowError where a product is inf
        params, losses, effective = [w.tolist()], [0.5 * (w.item() - means[0]) * (w.item() - means[0])], []
        for t in range(steps):
            self.check_cancel()
            stepper.zero_grad()
            (0.5 * (w - samples[t]) ** 2).sum().backward()
            stepper.step()
            state, group = stepper.state[w], stepper.param_groups[0]
            # The step divides lr by the root of this accumulator: AdaGrad's sum, RMSprop's average.
            accumulated = state["sum"] if "sum" in state else state["square_avg"]
            effective.append((group["lr"] / (accumulated.sqrt() + group["eps"])).item())
            params.append(w.tolist())
            losses.append(0.5 * (w.item() - means[t]) * (w.item() - means[t]))
        return Run(optimizer, lr, losses, params, extra={"effective_lr": effective})

    def title(self, start):
        return "w tracks noisy targets around +3, then around -3 from halfway; loss (w - mean)^2 / 2"

    def explain(self, runs):
        for run in runs:
            effective = run.extra["effective_lr"]
            run.extra["effective_lr_at_10"] = effective[min(9, len(effective) - 1)]
            run.extra["effective_lr_at_end"] = effective[-1]
            run.extra["final_w"] = run.params[-1][0]
            switch = len(run.params) // 2  # the first step with the new target
            caught = next((t for t in range(switch, len(run.params)) if abs(run.params[t][0] + 3) < 0.5), None)
            run.extra["steps_to_follow"] = "never" if caught is None else caught - switch
        return ([("effective_lr_at_10", "lr_eff at step 10"), ("effective_lr_at_end", "lr_eff at the end"),
                 ("steps_to_follow", "steps to within 0.5 of the new target"), ("final_w", "final w (target -3)")],
                ["lr_eff = lr / (sqrt(accumulator) + eps). AdaGrad's accumulator is the sum of every "
                 "g^2 so far, so its effective learning rate falls like 1/sqrt(t) and it cannot follow the "
                 "target when it moves; RMSprop's is a moving average, so its effective rate stays put."])


class WeightDecay(Problem):
    name = "weight-decay"
    summary = "Adam + L2 against AdamW: how much decay a weight with large or small gradients receives"
    steps = 1000
    start = (1.0, 1.0)
    dimensions = 2
    lrs = {"adam": 0.01, "adamw": 0.01}
    knob_defaults = {"weight_decay": 0.1}
    #: the gradient scale of the two weights: zero-mean gradients of alternating sign
    scales = (10.0, 0.01)

    def loss(self, w, t=None):
        if t is None:  # the gradients average to zero: what is left to report is the weights' size
            return 0.5 * (w ** 2).sum()
        sign = 1.0 if t % 2 == 0 else -1.0
        return sign * (torch.tensor(self.scales, dtype=torch.float64) * w).sum()

    def title(self, start):
        return (f"weights from 1.0 with zero-mean gradients of size {self.scales[0]:g} and {self.scales[1]:g}: "
                f"the decay each receives")

    def explain(self, runs):
        for run in runs:
            for index, scale in enumerate(self.scales):
                final = abs(run.params[-1][index])
                run.extra[f"final_w{index}"] = run.params[-1][index]
                # the decay per step that would shrink 1.0 to the final weight
                run.extra[f"decay_per_step_{index}"] = -math.log(max(final, 1e-300)) / max(len(run.params) - 1, 1)
        columns = []
        for index, scale in enumerate(self.scales):
            columns += [(f"final_w{index}", f"w (|g| = {scale:g})"),
                        (f"decay_per_step_{index}", f"decay per step (|g| = {scale:g})")]
        return columns, [
            "AdamW shrinks every weight by lr x lambda a step, whatever its gradients. Adam + L2 adds "
            "lambda w to the gradient, which is then divided by sqrt(v_hat): a weight with a large "
            "gradient history barely decays, a weight with small gradients decays far faster."]

    def race(self, optimizers, lrs, steps, start, knobs):
        race = super().race(optimizers, lrs, steps, start, knobs)
        race.notes.insert(0, f"lr x lambda = {lrs[optimizers[0]] * knobs['weight_decay']:g} a step.")
        return race


class Moments(Problem):
    """m_hat and v_hat as estimates of a gradient distribution's first and second moment."""

    name = "moments"
    summary = "Adam's m and v estimating the mean and mean square of the gradients, with and without bias correction"
    steps = 100
    lrs = {"adam": 0.001}
    only = ("adam", "adamw", "amsgrad")  # the optimizers with Adam's two moments
    mean, spread, seed = 0.5, 1.0, 0
    # Ranges far beyond any lesson, small enough that g^2, mean^2 + spread^2 and the sums of the
    # moving averages stay inside float64 (about 1.8e308).
    options = {"mean": Option("the gradients' mean", -1e100, 1e100),
               "spread": Option("their standard deviation", 0.0, 1e100)}
    work_per_step = 0.05  # adamlab's reference maths on one float64 number, no torch
    shown_steps = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

    def start_loss(self, start):
        return self.mean * self.mean  # m_hat starts at 0: (0 - mean)^2

    def race(self, optimizers, lrs, steps, start, knobs):
        generator = torch.Generator().manual_seed(self.seed)
        grads = (self.mean + self.spread * torch.randn(steps, generator=generator, dtype=torch.float64)).tolist()
        arguments = {k: v for k, v in knobs.items() if k in ("beta1", "beta2", "eps") and v is not None}
        truth = (self.mean, self.mean ** 2 + self.spread ** 2)
        runs = []
        for name in optimizers:
            self.check_cancel(steps)  # each optimizer's estimates at once: its run's steps
            # adamlab's float64 maths, step by step, as ``adamlab trace`` shows it
            rows = trace(name, grads, theta=start[0], lr=lrs[name], **arguments)
            extra = {key: [row[key] for row in rows] for key in ("m", "v", "m_hat", "v_hat")}
            extra["grads"] = grads
            # The "loss": how far the bias-corrected mean estimate is from the true mean, squared.
            losses = [truth[0] ** 2] + [(row["m_hat"] - truth[0]) ** 2 for row in rows]
            runs.append(Run(name, lrs[name], losses, [[start[0]]] + [[row["param"]] for row in rows], extra=extra))
        headers = ["step", "m", "m_hat", "v", "v_hat"]
        first = runs[0].extra
        table = [[t, first["m"][t - 1], first["m_hat"][t - 1], first["v"][t - 1], first["v_hat"][t - 1]]
                 for t in self.shown_steps if t <= steps]
        return Race(self.name, self.title(start), steps, runs, [], [
            f"True mean {truth[0]:g}, true mean square {truth[1]:g}. m and v start at 0, so early on they "
            f"fall short by the factor 1 - beta^t; m_hat and v_hat divide it out. The loss column is "
            f"(m_hat - mean)^2."], by_step=(headers, table), truth={"mean": truth[0], "mean_square": truth[1]})

    def title(self, start):
        return f"gradients ~ N({self.mean:g}, {self.spread:g}^2): Adam's estimates of their mean and mean square"


PROBLEMS = {problem.name: problem for problem in (Quadratic(), SURFACES[0], Flip(), AdagradDecay(),
                                                   AMSGradCounterexample(), WeightDecay(), Moments(),
                                                   *SURFACES[1:])}


@dataclass(frozen=True)
class Plan:
    """A race checked and not yet run: every default filled in, so two plans that would compute
    the same race have the same :attr:`key`."""

    course: Problem  # the problem, with the race's options set on a copy
    optimizers: tuple[str, ...]
    lrs: dict[str, float]
    steps: int
    start: tuple[float, ...] | None
    knobs: dict[str, float | None]

    @property
    def work(self) -> float:
        """What the race costs, in optimizer steps on one parameter: runs x steps x the problem's
        work per step."""
        return self.course.runs(self.optimizers) * self.steps * self.course.work_per_step

    def progress(self) -> Progress:
        """A count of this race's steps, none done yet, for :meth:`run` to keep."""
        return Progress(self.course.runs(self.optimizers) * self.steps)

    @property
    def key(self) -> tuple:
        """Everything the race's numbers depend on, hashable."""
        options = tuple((name, getattr(self.course, name)) for name in self.course.options)
        return (self.course.name, self.optimizers, tuple(self.lrs.items()), self.steps, self.start,
                tuple(sorted(self.knobs.items())), options)

    def run(self, cancel: threading.Event | None = None, progress: Progress | None = None) -> Race:
        """Run the race; once ``cancel`` is set it stops at the next step with :class:`Cancelled`.
        ``progress`` (of :meth:`progress`) counts its steps as it goes."""
        course = copy.copy(self.course)
        course.cancel, course.progress = cancel, progress
        race = course.race(list(self.optimizers), dict(self.lrs), self.steps, self.start, dict(self.knobs))
        race.knobs = dict(self.knobs)
        for run_ in race.runs:
            run_.label = f"{run_.optimizer} (lr {run_.lr:g})" + (" *" if run_.extra.get("other_lr") else "")
            run_.diverged_at = run_.find_divergence()
            if run_.diverged_at is not None:
                race.notes.append(_divergence_note(run_))
        return race


def _divergence_note(run_: Run) -> str:
    return (f"{run_.label} diverged at step {run_.diverged_at}: its loss or parameters left float64's "
            f"range (inf or nan); a smaller learning rate keeps it finite.")


def plan(problem: str, optimizers: list[str] | None = None, lrs: dict[str, float] | None = None,
         steps: int | None = None, start=None, options: dict | None = None, **knobs) -> Plan:
    """Check a race's arguments (see :func:`run`) and fill in the problem's defaults.

    Bad names or values raise ValueError naming the argument, the value and what is allowed
    (an InvalidHyperparameter for a knob out of an optimizer's range)."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; choose from {', '.join(PROBLEMS)}")
    course = copy.copy(PROBLEMS[problem])
    for name, value in (options or {}).items():
        if name not in course.options:
            raise ValueError(f"{problem} has no setting {name!r}"
                             + (f"; it has {', '.join(course.options)}" if course.options else ""))
        low, high = course.options[name].low, course.options[name].high
        # written so that NaN fails the comparison
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high):
            raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
        setattr(course, name, float(value))
    if optimizers is not None and len(optimizers) == 0:
        raise ValueError(f"choose at least one optimizer from {', '.join(course.only or registry.OPTIMIZERS)}")
    optimizers = tuple(optimizers or course.lrs)
    for name in list(optimizers) + list(lrs or {}):
        registry.get(name)  # an unknown name: ValueError listing the known ones
    refused = [name for name in optimizers if course.only and name not in course.only]
    if refused:
        raise ValueError(f"{problem} races {', '.join(course.only)}, not {refused[0]}")
    for name in optimizers:
        if course.stacks_seeds and registry.get(name).matrices_only:
            raise ValueError(f"{problem} stacks its seeds' weights into 3-D tensors, which {name} (for matrices "
                             f"only) cannot step; race {name} on a surface, or train with it")
    unknown = set(knobs) - set(registry.KNOBS)
    if unknown:
        raise ValueError(f"unknown setting {sorted(unknown)[0]!r}; choose from {', '.join(registry.KNOBS)}")
    rates = {name: course.lr(name) for name in optimizers}
    for name, lr in (lrs or {}).items():
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"the learning rate of {name} must be a positive number, got {lr!r}")
        if name in rates:
            rates[name] = float(lr)
    steps = course.steps if steps is None else steps
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= MAX_STEPS):
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    if start is not None and course.start is None:
        raise ValueError(f"{problem} starts from its own seeded initialisation; it takes no start")
    start = course.start if start is None else tuple(start)
    if start is not None and (len(start) != len(course.start) or not all(math.isfinite(v) for v in start)):
        raise ValueError(f"the start of {problem} is {len(course.start)} finite number(s), got {start!r}")
    if start is not None and not math.isfinite(course.start_loss(start)):
        raise ValueError(f"the loss of {problem} at the start {start!r} is beyond float64's range; "
                         f"start nearer {course.start!r}")
    settings = {**dict.fromkeys(registry.KNOBS), **course.knob_defaults,
                **{k: v for k, v in knobs.items() if v is not None}}
    # Each optimizer checks its knobs when made: make it once now, so that a bad value is refused
    # before any work is done.
    for name in optimizers:
        shape = (1, 1) if registry.get(name).matrix_maths else (1,)
        make(name, [torch.zeros(shape, dtype=torch.float64, requires_grad=True)], rates[name], settings)
    return Plan(course, optimizers, rates, steps, start, settings)


def run(problem: str, optimizers: list[str] | None = None, lrs: dict[str, float] | None = None,
        steps: int | None = None, start=None, options: dict | None = None, **knobs) -> Race:
    """Race ``optimizers`` (default: the problem's field) on ``problem``.

    ``lrs`` overrides learning rates by optimizer name; ``knobs`` sets beta1, beta2, eps or
    weight_decay on every optimizer they apply to; ``options`` the problem's own settings (its
    ``options``, each within its range); ``steps`` is at most :data:`MAX_STEPS`. Bad names or
    values raise ValueError. A run that diverges is reported, not refused (see the module).
    """
    return plan(problem, optimizers, lrs, steps, start, options, **knobs).run()
