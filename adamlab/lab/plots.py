"""Pictures of training runs, drawn with matplotlib, marked as adamlab's and written atomically."""

import io
import math
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
