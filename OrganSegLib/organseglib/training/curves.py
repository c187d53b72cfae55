"""Learning-curve PNG (the paper's figure 6 in shape): training loss averaged over windows of
iterations, validation loss, and a line where data augmentation was switched on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..atomic import atomic_path


def window_means(values: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of consecutive full windows and the iteration at each window's end."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v) // window
    if n == 0:
        return np.zeros(0), np.zeros(0)
    return np.arange(1, n + 1) * window, v[: n * window].reshape(n, window).mean(1)


def plot_learning_curve(path: str | os.PathLike, history: dict, window: int,
                        augment_start: Optional[int] = None, title: str = "") -> Path:
    """Write the learning curve to ``path`` atomically; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    train = history.get("train", [])
    w = max(1, min(window, len(train) // 4 or 1))
    its, means = window_means(train, w)
    if len(its):
        ax.plot(its, means, label=f"training loss (mean of {w} iterations)", color="tab:blue")
    val = history.get("val", [])
    if val:
        ax.plot([v["iteration"] for v in val], [v["loss"] for v in val], "o-", color="tab:orange",
                label="validation loss")
    if augment_start is not None:
        ax.axvline(augment_start, color="gray", linestyle="--", label="augmentation on")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
