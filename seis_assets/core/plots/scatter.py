"""Scatter plots of the 2-d embedding, coloured by true class or by cluster, with named legends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from seis_assets.core.plots._figure import FONT_SIZE, PathLike, new_figure, palette, save_figure


def scatter_figure(
    xy,
    groups,
    *,
    title: str = "",
    order: Sequence | None = None,
    names: Mapping | None = None,
    legend_title: str | None = None,
) -> Figure:
    """2-d scatter coloured by a categorical variable, with a named legend.

    Parameters
    ----------
    xy : array-like of shape (n_samples, 2)
        2-d embedding (e.g. UMAP 2-d).
    groups : array-like of shape (n_samples,)
        Category per point (class names or cluster ids).
    title : str
    order : sequence, optional
        Legend / colour order; default sorted unique values of ``groups``.
    names : mapping, optional
        Legend text per group value; default ``str(value)``.
    legend_title : str, optional

    Returns
    -------
    fig : Figure (one axes, legend entries ``"<name> (n=<count>)"``).
    """
    xy = np.asarray(xy, dtype=float)
    groups = np.asarray(groups)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) != len(groups):
        raise ValueError(f"xy must be (n, 2) matching groups (n,), got {xy.shape} and {groups.shape}")
    values = list(order) if order is not None else sorted(pd.unique(groups).tolist())
    colors = palette(len(values))
    n = len(xy)
    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        fig = new_figure(8.6, 6.2)
        ax = fig.add_subplot()
        _draw_points(ax, xy, groups, values, colors)
        ax.legend(handles=_legend_handles(groups, values, colors, names), title=legend_title, loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{title} ({n} patches)" if title else f"{n} patches")
        ax.grid(True, alpha=0.2)
    return fig


def _draw_points(ax, xy: np.ndarray, groups: np.ndarray, values: list, colors: list) -> None:
    """The points in a seeded shuffled order, so no class hides the others; grey for a group not in ``values``."""
    n = len(xy)
    size = float(np.clip(6000.0 / max(n, 1), 3.0, 40.0))
    rng = np.random.default_rng(0)
    draw = rng.permutation(n)
    col_idx = {v: i for i, v in enumerate(values)}
    point_colors = np.array([colors[col_idx[g]] if g in col_idx else (0.6, 0.6, 0.6, 1.0) for g in groups.tolist()])
    if n:
        ax.scatter(xy[draw, 0], xy[draw, 1], c=point_colors[draw], s=size, alpha=0.75, linewidths=0)


def _legend_handles(groups: np.ndarray, values: list, colors: list, names: Mapping | None) -> list[Line2D]:
    """One legend entry per group value: ``"<name> (n=<count>)"`` in its colour."""
    handles = []
    for v, c in zip(values, colors):
        label = str(names[v]) if names is not None and v in names else str(v)
        count = int(np.sum(groups == v))
        handles.append(Line2D([], [], marker="o", linestyle="", markersize=8, color=c, label=f"{label} (n={count})"))
    return handles


def scatter_labels(xy, labels, title: str, path: PathLike, *, classes: Sequence[str] | None = None) -> str:
    """Scatter of the 2-d embedding coloured by true class; legend names the classes.

    ``xy`` (n, 2), ``labels`` (n,) class names, ``classes`` legend order.
    Returns the PNG path.
    """
    labels = np.asarray(labels).astype(str)
    return save_figure(scatter_figure(xy, labels, title=title, order=classes, legend_title="true class"), path)


def scatter_clusters(
    xy, clusters, title: str, path: PathLike, *, mapping: Mapping[int, str] | None = None
) -> str:
    """Scatter of the 2-d embedding coloured by cluster id.

    With ``mapping`` the legend reads ``"cluster 0 → fault (n=...)"``; without it
    ``"cluster 0 (n=...)"``. ``xy`` (n, 2), ``clusters`` (n,) int. Returns the path.
    """
    return save_figure(scatter_clusters_figure(xy, clusters, title=title, mapping=mapping), path)


def scatter_clusters_figure(xy, clusters, *, title: str = "", mapping: Mapping[int, str] | None = None) -> Figure:
    """Figure behind :func:`scatter_clusters`."""
    clusters = np.asarray(clusters).astype(np.int64)
    values = sorted(np.unique(clusters).tolist())
    m = {int(k): str(v) for k, v in (mapping or {}).items()}
    names = {c: f"cluster {c} → {m[c]}" if c in m else f"cluster {c}" for c in values}
    return scatter_figure(xy, clusters, title=title, order=values, names=names, legend_title="k-means cluster")
