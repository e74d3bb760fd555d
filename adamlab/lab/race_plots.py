"""Pictures of races: two panels each, what the problem is about on the left and the loss (or
the quantity the problem is about) against step on the right."""

from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import LogNorm

from .plots import plt, save_png
from .race import PROBLEMS, Race


def _steps(values) -> range:
    return range(len(values))


def _drawable(values) -> np.ndarray:
    """``values`` as floats, those that are not finite or beyond what an axis can label
    (matplotlib's log-scale ticks overflow near 1e290) left out of the line: a diverged run
    draws up to where it left the picture."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(values) < 1e250, values, np.nan)


def _loss(race: Race, axes, *, log: bool = True) -> None:
    for index, run in enumerate(race.runs):
        style = "--" if run.extra.get("other_lr") else "-"
        losses = _drawable(run.losses)
        axes.plot(_steps(losses), np.abs(losses) if log else losses, style, color=f"C{index}", label=run.label)
    if log:
        axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("loss" + (" (log scale)" if log else ""))
    axes.set_title("loss against step")


def _parameter(race: Race, axes, *, ylabel: str = "w") -> None:
    for index, run in enumerate(race.runs):
        axes.plot(_steps(run.params), _drawable([p[0] for p in run.params]), color=f"C{index}",
                  marker="." if race.steps <= 50 else None, label=run.label)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.set_title(f"{ylabel} against step")


def _surface(race: Race, axes) -> None:
    problem = PROBLEMS[race.problem]
    x_low, x_high, y_low, y_high = problem.bounds
    xs, ys = np.linspace(x_low, x_high, 300), np.linspace(y_low, y_high, 300)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys)), dtype=torch.float64)
    values = problem.loss(grid).numpy()  # the loss reads w[0] and w[1]: a grid of points works alike
    levels = np.logspace(np.log10(max(values.min(), 1e-3)), np.log10(values.max()), 20)
    shaded = axes.contourf(xs, ys, np.maximum(values, levels[0]), levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.7)
    axes.contour(xs, ys, values, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
    decades = 10.0 ** np.arange(np.ceil(np.log10(levels[0])), np.log10(levels[-1]) + 1)
    plt.colorbar(shaded, ax=axes, label="loss (log colour scale)", ticks=decades, format="%g")
    for index, run in enumerate(race.runs):
        path = _drawable(run.params)
        axes.plot(path[:, 0], path[:, 1], color=f"C{index}", linewidth=1.5, label=run.label)
        axes.plot(path[-1, 0], path[-1, 1], "o", color=f"C{index}", markersize=5)
    axes.plot(*race.runs[0].params[0], "k^", markersize=8, label="start")
    axes.set_xlim(x_low, x_high)
    axes.set_ylim(y_low, y_high)
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title("paths over the loss surface")


def _flip(race: Race, axes) -> None:
    sizes = race.runs[0].extra["gradient_magnitude"]
    axes.bar(range(len(sizes)), list(sizes.values()), color="C0")
    axes.set_xticks(range(len(sizes)), [name.replace(" ", "\n", 1) for name in sizes], fontsize=8)
    axes.set_yscale("log")
    axes.set_ylabel("mean |gradient| at the start (log scale)")
    axes.set_title("gradient size by tensor: one lr cannot suit all")


def _effective_lr(race: Race, axes) -> None:
    for index, run in enumerate(race.runs):
        axes.plot(range(1, len(run.extra["effective_lr"]) + 1), _drawable(run.extra["effective_lr"]),
                  color=f"C{index}", label=run.label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("step (log scale)")
    axes.set_ylabel("lr / (sqrt(accumulator) + eps) (log scale)")
    axes.set_title("effective learning rate")


def _decay(race: Race, axes) -> None:
    problem = PROBLEMS[race.problem]
    for index, run in enumerate(race.runs):
        path = _drawable(run.params)
        for weight, (scale, style) in enumerate(zip(problem.scales, ("-", ":"))):
            axes.plot(_steps(path), np.abs(path[:, weight]), style, color=f"C{index}",
                      label=f"{run.label}, |g| = {scale:g}")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("|w| (log scale)")
    axes.set_title("each weight's decay")


def _moments(race: Race, axes_pair) -> None:
    run = race.runs[0]
    steps = range(1, len(run.extra["m"]) + 1)
    for axes, (raw, corrected, truth, name) in zip(axes_pair, (("m", "m_hat", race.truth["mean"], "mean"),
                                                               ("v", "v_hat", race.truth["mean_square"], "mean square"))):
        axes.plot(steps, run.extra[raw], color="C0", label=f"{raw} (no bias correction)")
        axes.plot(steps, run.extra[corrected], color="C1", label=f"{corrected} (bias-corrected)")
        axes.axhline(truth, color="k", linestyle="--", label=f"true {name} {truth:g}")
        axes.set_xlabel("step")
        axes.set_ylabel(name)
        axes.set_title(f"estimating the gradients' {name}")


def plot_race(race: Race, path: str | Path) -> None:
    """Draw ``race`` to a PNG at ``path`` (written atomically)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)
    problem = PROBLEMS[race.problem]
    if race.problem == "moments":
        _moments(race, (left, right))
    elif race.problem == "weight-decay":
        _decay(race, left)
        _loss(race, right)
        right.set_ylabel("||w||^2 / 2 (log scale)")
    elif race.problem == "flip":
        _flip(race, left)
        _loss(race, right)
        right.set_ylabel("MSE, mean of the seeds (log scale)")
    elif race.problem == "adagrad-decay":
        _effective_lr(race, left)
        _parameter(race, right)
    elif problem.bounds is not None:
        _surface(race, left)
        _loss(race, right)
    else:
        _parameter(race, left)
        _loss(race, right, log=race.problem != "amsgrad")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.suptitle(race.title, fontsize=11)
    save_png(figure, path)
