"""How good the clustering is: the confusion matrix and the k sweep (silhouette, Davies-Bouldin, inertia,
stability against k)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seis_assets.core.plots._figure import FONT_SIZE, PathLike, new_figure, save_figure


def confusion_figure(cm, *, classes: Sequence[str] | None = None, title: str = "Confusion matrix") -> Figure:
    """Heat map of a confusion matrix: counts written in each cell.

    Parameters
    ----------
    cm : DataFrame (rows true, columns predicted, as from ``evaluate.confusion``)
        or ndarray (n_classes, n_classes) with ``classes``.
    classes : sequence of str, needed for an ndarray.
    title : str

    Returns
    -------
    fig : Figure. Cell colour = share of the true class (row-normalised, so
        small classes are as visible as large ones); text = count and share.
    """
    if isinstance(cm, pd.DataFrame):
        rows, cols = [str(c) for c in cm.index], [str(c) for c in cm.columns]
        counts = cm.to_numpy()
    else:
        counts = np.asarray(cm)
        if classes is None:
            raise ValueError("classes are required when cm is not a DataFrame")
        rows = cols = [str(c) for c in classes]
    counts = counts.astype(np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape, float), where=totals > 0)
    nr, nc = counts.shape
    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        fig = new_figure(max(5.0, 1.2 * nc + 2.6), max(4.2, 1.0 * nr + 1.8))
        ax = fig.add_subplot()
        im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(nr):
            for j in range(nc):
                ax.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                        color="white" if share[i, j] > 0.55 else "black", fontsize=FONT_SIZE)
        ax.set_xticks(range(nc), cols, rotation=30, ha="right")
        ax.set_yticks(range(nr), rows)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} (n={int(counts.sum())})")
        fig.colorbar(im, ax=ax, shrink=0.8, label="share of true class")
    return fig


def confusion_heatmap(cm, path: PathLike, *, classes: Sequence[str] | None = None,
                      title: str = "Confusion matrix") -> str:
    """Write :func:`confusion_figure` as a PNG; return the path."""
    return save_figure(confusion_figure(cm, classes=classes, title=title), path)


def k_sweep_figure(sweep: pd.DataFrame, *, configured_k: int | None = None, title: str = "k-means sweep",
                   auto_k: int | None = None, k_rule: str | None = None) -> Figure:
    """Silhouette, Davies-Bouldin, inertia (and stability across seeds, when the sweep has it) against k, the
    configured k marked.

    Parameters
    ----------
    sweep : DataFrame with columns k, silhouette, davies_bouldin, inertia[, stability]
        (from ``cluster.k_sweep``)
    configured_k : int, optional; drawn as a dashed vertical line in each panel
    auto_k : int, optional; what ``k = auto`` picks, drawn as a dotted red line (when it differs from the
        configured k; otherwise the configured line's legend says so)
    k_rule : str, optional; how the configured k was chosen, shown in its legend
    """
    missing = {"k", "silhouette", "davies_bouldin", "inertia"} - set(sweep.columns)
    if missing:
        raise ValueError(f"sweep lacks columns {sorted(missing)}")
    ks = sweep["k"].to_numpy()
    panels = [
        ("silhouette", "silhouette (higher is better)", "tab:blue"),
        ("davies_bouldin", "Davies-Bouldin (lower is better)", "tab:orange"),
        ("inertia", "inertia (within-cluster SS)", "tab:green"),
    ]
    if "stability" in sweep.columns:
        panels.append(("stability", "stability: ARI between seeds (higher is better)", "tab:purple"))
    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        fig = new_figure(4.0 * len(panels), 3.8)
        axes = fig.subplots(1, len(panels))
        for ax, (col, label, color) in zip(axes, panels):
            ax.plot(ks, sweep[col].to_numpy(), marker="o", color=color)
            if configured_k is not None:
                text = f"configured k={configured_k}" + (f" ({k_rule})" if k_rule else "")
                ax.axvline(configured_k, color="black", linestyle="--", linewidth=1, label=text)
            if auto_k is not None and auto_k != configured_k:
                ax.axvline(auto_k, color="tab:red", linestyle=":", linewidth=1.5, label=f"auto would pick k={auto_k}")
            if configured_k is not None or auto_k is not None:
                ax.legend(loc="best", frameon=False)
            ax.set_xlabel("k (number of clusters)")
            ax.set_title(label)
            ax.set_xticks(ks)
            ax.grid(True, alpha=0.3)
        fig.suptitle(title)
    return fig


def k_sweep_plot(sweep: pd.DataFrame, path: PathLike, *, configured_k: int | None = None,
                 title: str = "k-means sweep", auto_k: int | None = None, k_rule: str | None = None) -> str:
    """Write :func:`k_sweep_figure` as a PNG; return the path."""
    return save_figure(
        k_sweep_figure(sweep, configured_k=configured_k, title=title, auto_k=auto_k, k_rule=k_rule), path
    )
