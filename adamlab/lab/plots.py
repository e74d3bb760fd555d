"""Pictures of training runs, drawn with matplotlib, marked as adamlab's and written atomically."""

import io
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402

from ..files import PNG, PNG_METADATA, atomic_write, check_output  # noqa: E402

if TYPE_CHECKING:  # training imports torch and the data; a picture needs neither
    from .training import History


def _smoothed(values: list[float], window: int) -> list[float]:
    """Trailing mean over ``window`` steps: per-step losses of small batches are noisy. A loss
    that is not finite (a diverged run) leaves a gap from there on."""
    values = [value if math.isfinite(value) else math.nan for value in values]
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def plot_losses(runs: list[tuple[str, "History"]], path: str | Path, title: str) -> None:
    """Training and validation loss against step, one colour per run, to a PNG at ``path``."""
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for index, (label, history) in enumerate(runs):
        colour = f"C{index}"
        steps = range(1, len(history.batch_loss) + 1)
        window = max(1, len(history.batch_loss) // 50)
        axes.plot(steps, _smoothed(history.batch_loss, window), color=colour, alpha=0.35, linewidth=1,
                  label=f"{label}: batch loss (mean of {window} steps)")
        axes.plot(history.eval_step, history.train_loss, color=colour, linestyle="--", marker=".",
                  label=f"{label}: train loss")
        axes.plot(history.eval_step, history.val_loss, color=colour, marker="o", markersize=3,
                  label=f"{label}: validation loss")
        if history.diverged_at is not None:
            axes.axvline(history.diverged_at, color=colour, linestyle=":",
                         label=f"{label}: diverged at step {history.diverged_at}")
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy per character (nats)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    save_png(figure, path)


def save_png(figure, path: str | Path) -> None:
    """Lay ``figure`` out, write it as a PNG at ``path`` atomically, marked as adamlab's, and
    close it. Only a PNG adamlab drew may be at ``path`` already (ValueError otherwise)."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=PNG_METADATA)
    plt.close(figure)
    check_output(path, PNG)
    with atomic_write(path) as file:
        file.write(buffer.getvalue())


def plot_comparison(summaries: list, summaries_of: dict[str, str], path: str | Path) -> None:
    """Each workload's optimizers by final validation loss at their best learning rate (the
    mean over the seeds, and their spread), best at the top; a diverged one is marked, not drawn.
    ``summaries_of``: each workload's one-line description, for its panel's title."""
    workloads = list(dict.fromkeys(summary.workload for summary in summaries))
    rows = max(sum(summary.workload == name for summary in summaries) for name in workloads)
    figure, panels = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 1.2 + 0.28 * rows), dpi=110,
                                  squeeze=False)
    for axes, name in zip(panels[0], workloads):
        ranked = sorted((summary for summary in summaries if summary.workload == name),
                        key=lambda summary: summary.final_val_loss, reverse=True)
        finite = [summary for summary in ranked if math.isfinite(summary.final_val_loss)]
        low = min((summary.final_val_loss for summary in finite), default=0.0)
        labels = [f"{summary.optimizer} (lr {summary.best_lr:.2g})" for summary in ranked]
        values = [summary.final_val_loss if math.isfinite(summary.final_val_loss) else math.nan for summary in ranked]
        spreads = [summary.final_val_loss_std if math.isfinite(summary.final_val_loss_std) else 0.0
                   for summary in ranked]
        axes.barh(labels, values, xerr=spreads, color=["C0" if index < len(ranked) - 1 else "C2"
                                                       for index in range(len(ranked))], alpha=0.8)
        for index, summary in enumerate(ranked):
            if not math.isfinite(summary.final_val_loss):
                axes.text(low, index, " diverged", va="center", fontsize=8, color="C3")
        if finite:
            high = max(summary.final_val_loss + summary.final_val_loss_std for summary in finite)
            axes.set_xlim(low - 0.1 * (high - low) - 1e-3 * abs(low), high + 0.05 * (high - low) + 1e-3 * abs(high))
        axes.set_xlabel("final validation loss (mean over seeds, best lr)")
        axes.set_title(f"{name}\n" + textwrap.fill(summaries_of[name], 60), fontsize=8)
        axes.tick_params(axis="y", labelsize=8)
        axes.grid(axis="x", alpha=0.3)
    save_png(figure, path)
