"""Figures for the clustering report, written as PNG files.

Every plot comes in two forms:

* ``<name>_figure(...) -> matplotlib.figure.Figure`` builds the figure (tests
  inspect legends and titles on it);
* ``<name>(..., path) -> str`` builds it, writes a PNG atomically (temporary file
  in the same folder, then ``os.replace``) and returns the path.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered with the Agg
canvas: no ``pyplot``, no global figure registry, nothing to close, safe in
worker threads and processes.

Patches are shown as seismic sections: row 0 (shallowest time/depth) on top,
``vmin=-1, vmax=1`` (the loader's normalised range), grey scale by default,
``aspect="equal"`` so a 150 x 300 patch stays twice as wide as tall.

Arguments named ``patches`` accept an ``(n, H, W)`` array, a list of 2-D
arrays, or a callable ``i -> 2-D array`` (e.g. ``lambda i: load_patch(paths[i])``)
so galleries only load the patches they show.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; harmless if already set

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from seis_assets.core.storage import atomic_write_bytes, read_bytes  # noqa: E402

__all__ = [
    "DPI",
    "PATCH_CMAP",
    "anomaly_gallery",
    "anomaly_gallery_figure",
    "cluster_gallery",
    "cluster_gallery_figure",
    "confusion_figure",
    "confusion_heatmap",
    "k_sweep_figure",
    "k_sweep_plot",
    "patch_gallery",
    "patch_gallery_figure",
    "save_figure",
    "scatter_clusters",
    "scatter_clusters_figure",
    "scatter_figure",
    "scatter_labels",
    "thumbnail_markdown",
]

DPI = 110
PATCH_CMAP = "gray"
PATCH_VMIN, PATCH_VMAX = -1.0, 1.0
FONT_SIZE = 10
THUMBNAIL_MAX_PX = 320
THUMBNAIL_MAX_BYTES = 50_000

PathLike = str | os.PathLike
Patches = np.ndarray | Sequence[np.ndarray] | Callable[[int], np.ndarray]


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: PathLike, dpi: int = DPI) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically; return the path as a string.

    ``path`` may be a str, a pathlib.Path or a UPath (bucket URLs work). The PNG
    is rendered in memory and written through
    :func:`seis_assets.core.storage.atomic_write_bytes` (temporary sibling, then
    ``os.replace``), so readers never see a half-written image.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return atomic_write_bytes(path, buf.getvalue())


def _colors(n: int) -> list:
    if n <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _get_patch(patches: Patches, i: int) -> np.ndarray:
    a = patches(int(i)) if callable(patches) else patches[int(i)]
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] in (1, 3):
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"patch {i} is not 2-D: shape {a.shape}")
    return a


# --------------------------------------------------------------------------- scatter


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
    colors = _colors(len(values))
    n = len(xy)
    size = float(np.clip(6000.0 / max(n, 1), 3.0, 40.0))
    with matplotlib.rc_context({"font.size": FONT_SIZE}):
        fig = _new_figure(8.6, 6.2)
        ax = fig.add_subplot()
        rng = np.random.default_rng(0)  # draw order shuffled so no class hides the others
        draw = rng.permutation(n)
        col_idx = {v: i for i, v in enumerate(values)}
        point_colors = np.array([colors[col_idx[g]] if g in col_idx else (0.6, 0.6, 0.6, 1.0) for g in groups.tolist()])
        if n:
            ax.scatter(xy[draw, 0], xy[draw, 1], c=point_colors[draw], s=size, alpha=0.75, linewidths=0)
        handles = []
        for v, c in zip(values, colors):
            label = str(names[v]) if names is not None and v in names else str(v)
            count = int(np.sum(groups == v))
            handles.append(
                Line2D([], [], marker="o", linestyle="", markersize=8, color=c,
                                        label=f"{label} (n={count})")
            )
        ax.legend(handles=handles, title=legend_title, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  frameon=False)
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{title} ({n} patches)" if title else f"{n} patches")
        ax.grid(True, alpha=0.2)
    return fig


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


# --------------------------------------------------------------------------- confusion


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
        fig = _new_figure(max(5.0, 1.2 * nc + 2.6), max(4.2, 1.0 * nr + 1.8))
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


# --------------------------------------------------------------------------- galleries


def _draw_patch(ax, a: np.ndarray, cmap: str) -> None:
    ax.imshow(a, cmap=cmap, vmin=PATCH_VMIN, vmax=PATCH_VMAX, aspect="equal", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _cell_size(shape: tuple[int, int], width: float = 1.6) -> tuple[float, float]:
    """Inches (width, height) of one tile: same aspect as the patch, wide patches get wider tiles."""
    h, w = shape
    width = width * max(1.0, float(np.sqrt(w / h)))
    return width, width * h / w


def patch_gallery_figure(
    patches: Patches,
    titles: Sequence[str],
    *,
    ncols: int = 6,
    cmap: str = PATCH_CMAP,
    suptitle: str | None = None,
) -> Figure:
    """Grid of patches with one title each.

    Parameters
    ----------
    patches : (n, H, W) array, list of 2-D arrays, or callable i -> 2-D array
    titles : sequence of str, length n (the number of patches shown)
    ncols : int, default 6
    cmap : str, default "gray" ("seismic" also works); fixed range -1..1
    suptitle : str, optional
    """
    n = len(titles)
    if n == 0:
        raise ValueError("nothing to show: titles is empty")
    imgs = [_get_patch(patches, i) for i in range(n)]
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    cw, ch = _cell_size(imgs[0].shape)
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = _new_figure(cw * ncols + 0.3, (ch + 0.35) * nrows + (0.4 if suptitle else 0.1))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k < n:
                _draw_patch(ax, imgs[k], cmap)
                ax.set_title(str(titles[k]), fontsize=FONT_SIZE - 1)
            else:
                ax.set_visible(False)
        if suptitle:
            fig.suptitle(suptitle, fontsize=FONT_SIZE + 1)
    return fig


def patch_gallery(patches: Patches, titles: Sequence[str], path: PathLike, **kwargs) -> str:
    """Write :func:`patch_gallery_figure` as a PNG; return the path."""
    return save_figure(patch_gallery_figure(patches, titles, **kwargs), path)


def cluster_gallery_figure(
    patches: Patches,
    clusters,
    *,
    labels=None,
    mapping: Mapping[int, str] | None = None,
    n_per_cluster: int = 8,
    cmap: str = PATCH_CMAP,
    random_state: int | None = 42,
    title: str = "Sample patches per cluster",
) -> Figure:
    """One row per cluster with a seeded random sample of its patches.

    Parameters
    ----------
    patches : (n, H, W) array, list, or callable i -> 2-D array (only sampled
        indices are read)
    clusters : array-like of int, shape (n,)
    labels : array-like of str, shape (n,), optional
        True class per patch, shown above each tile; red when it differs from
        the cluster's mapped class.
    mapping : dict {cluster: class}, optional; row heading "cluster c → class"
    n_per_cluster : int, default 8
    random_state : int or None, default 42
    """
    clusters = np.asarray(clusters).astype(np.int64)
    labels = None if labels is None else np.asarray(labels).astype(str)
    m = {int(k): str(v) for k, v in (mapping or {}).items()}
    rng = np.random.default_rng(random_state)
    ids = sorted(np.unique(clusters).tolist())
    if not ids:
        raise ValueError("no clusters to show")
    chosen = {}
    for c in ids:
        members = np.flatnonzero(clusters == c)
        chosen[c] = np.sort(rng.choice(members, size=min(n_per_cluster, len(members)), replace=False))
    first = _get_patch(patches, int(chosen[ids[0]][0]))
    cw, ch = _cell_size(first.shape, width=1.3)
    ncols = max(len(v) for v in chosen.values())
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = _new_figure(cw * ncols + 1.4, (ch + 0.4) * len(ids) + 0.5)
        axes = fig.subplots(len(ids), ncols, squeeze=False)
        for r, c in enumerate(ids):
            heading = f"cluster {c} → {m[c]}" if c in m else f"cluster {c}"
            heading += f"\n(n={int(np.sum(clusters == c))})"
            for j in range(ncols):
                ax = axes[r, j]
                if j >= len(chosen[c]):
                    ax.set_visible(False)
                    continue
                i = int(chosen[c][j])
                _draw_patch(ax, first if (r == 0 and j == 0) else _get_patch(patches, i), cmap)
                if labels is not None:
                    wrong = c in m and labels[i] != m[c]
                    ax.set_title(labels[i], fontsize=FONT_SIZE - 1, color="tab:red" if wrong else "black")
                if j == 0:
                    ax.set_ylabel(heading, rotation=0, ha="right", va="center", fontsize=FONT_SIZE)
        fig.suptitle(title + (" (tile title: true class, red = differs from cluster's class)"
                              if labels is not None and m else ""), fontsize=FONT_SIZE + 1)
    return fig


def cluster_gallery(patches: Patches, clusters, path: PathLike, **kwargs) -> str:
    """Write :func:`cluster_gallery_figure` as a PNG; return the path."""
    return save_figure(cluster_gallery_figure(patches, clusters, **kwargs), path)


def anomaly_gallery_figure(
    patches: Patches,
    scores,
    *,
    labels=None,
    n: int = 12,
    ncols: int = 6,
    names=None,
    cmap: str = PATCH_CMAP,
    title: str = "Most anomalous patches",
) -> Figure:
    """The ``n`` highest-scoring patches, titled with rank, score and label.

    Parameters
    ----------
    patches : (N, H, W) array, list, or callable i -> 2-D array (only the top n
        are read)
    scores : array-like of float, shape (N,), higher = more anomalous
    labels : array-like of str, shape (N,), optional (class or anomaly kind)
    n : int, default 12
    names : array-like of str, shape (N,), optional (e.g. file names, shown small)
    """
    scores = np.asarray(scores, dtype=float)
    top = np.argsort(-scores, kind="stable")[: min(n, len(scores))]
    titles = []
    for rank, i in enumerate(top, 1):
        t = f"#{rank} score {scores[i]:.2f}"
        if labels is not None:
            t += f"\n{np.asarray(labels)[i]}"
        if names is not None:
            t += f"\n{str(np.asarray(names)[i])[-24:]}"
        titles.append(t)
    return patch_gallery_figure(lambda k: _get_patch(patches, int(top[k])), titles, ncols=ncols, cmap=cmap,
                                suptitle=title)


def anomaly_gallery(patches: Patches, scores, path: PathLike, **kwargs) -> str:
    """Write :func:`anomaly_gallery_figure` as a PNG; return the path.

    Keyword arguments (``labels``, ``n``, ``names``, ...) as for the figure.
    """
    return save_figure(anomaly_gallery_figure(patches, scores, **kwargs), path)


# --------------------------------------------------------------------------- k sweep


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
        fig = _new_figure(4.0 * len(panels), 3.8)
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


# --------------------------------------------------------------------------- thumbnails


def thumbnail_markdown(path: PathLike, max_px: int = THUMBNAIL_MAX_PX,
                       max_bytes: int = THUMBNAIL_MAX_BYTES) -> str:
    """A small inline PNG as Markdown, for Dagster metadata.

    The image is shrunk to at most ``max_px`` on its longer side (halved again
    until the base64 text is under ``max_bytes``), so the UI is never handed a
    large inline blob (dagster issue #17189).

    Returns
    -------
    markdown : str ``"![<file name>](data:image/png;base64,...)"``, len < max_bytes.
    """
    from PIL import Image

    name = str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]

    with Image.open(io.BytesIO(read_bytes(path))) as im:
        im = im.convert("RGB")
        px = max_px
        while True:
            thumb = im.copy()
            thumb.thumbnail((px, px), Image.LANCZOS)
            buf = io.BytesIO()
            thumb.quantize(colors=64).save(buf, format="PNG", optimize=True)
            b64 = base64.b64encode(buf.getvalue()).decode("ascii")
            md = f"![{name}](data:image/png;base64,{b64})"
            if len(md) < max_bytes or px <= 16:
                return md
            px //= 2


# --------------------------------------------------------------------------- novel patches beside their neighbours
def novelty_neighbours_figure(
    patches: Patches,
    neighbours: Sequence[Patches],
    titles: Sequence[str],
    neighbour_titles: Sequence[Sequence[str]],
    *,
    cmap: str = PATCH_CMAP,
    title: str = "Novel patches (left) and their nearest training patches",
) -> Figure:
    """One row per novel patch: the patch, then its nearest training patches, nearest first.

    Parameters
    ----------
    patches : the novel patches (list of 2-D arrays or callable i -> array), one per row
    neighbours : per row, a list (or callable j -> array) of its nearest training patches
    titles : per row, the novel patch's title (rank, score, reason)
    neighbour_titles : per row, one title per neighbour (e.g. its category and file name)
    """
    n = len(titles)
    if n == 0:
        raise ValueError("nothing to show: titles is empty")
    m = max(len(t) for t in neighbour_titles)
    first = _get_patch(patches, 0)
    cw, ch = _cell_size(first.shape)
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = _new_figure(cw * (m + 1) + 0.6, (ch + 0.55) * n + 0.5)
        axes = fig.subplots(n, m + 1, squeeze=False)
        for r in range(n):
            _draw_patch(axes[r, 0], _get_patch(patches, r), cmap)
            axes[r, 0].set_title(str(titles[r]), fontsize=FONT_SIZE - 1, color="tab:red")
            for j in range(m):
                ax = axes[r, j + 1]
                if j < len(neighbour_titles[r]):
                    _draw_patch(ax, _get_patch(neighbours[r], j), cmap)
                    ax.set_title(str(neighbour_titles[r][j]), fontsize=FONT_SIZE - 2)
                else:
                    ax.set_visible(False)
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def novelty_neighbours_gallery(patches: Patches, neighbours, titles, neighbour_titles, path: PathLike,
                               **kwargs) -> str:
    """Write :func:`novelty_neighbours_figure` as a PNG; return the path."""
    return save_figure(novelty_neighbours_figure(patches, neighbours, titles, neighbour_titles, **kwargs), path)
