"""Galleries of patches: a grid with titles, a row per cluster, the most anomalous patches, novel patches beside
their nearest training patches. Only the patches shown are read (``patches`` may be a callable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from seis_assets.core.plots._figure import (
    FONT_SIZE, PATCH_CMAP, Patches, PathLike, cell_size, draw_patch, get_patch, new_figure, save_figure,
)


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
    imgs = [get_patch(patches, i) for i in range(n)]
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    cw, ch = cell_size(imgs[0].shape)
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = new_figure(cw * ncols + 0.3, (ch + 0.35) * nrows + (0.4 if suptitle else 0.1))
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k < n:
                draw_patch(ax, imgs[k], cmap)
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
    ids = sorted(np.unique(clusters).tolist())
    if not ids:
        raise ValueError("no clusters to show")
    chosen = _sample_members(clusters, ids, n_per_cluster, random_state)
    first = get_patch(patches, int(chosen[ids[0]][0]))
    cw, ch = cell_size(first.shape, width=1.3)
    ncols = max(len(v) for v in chosen.values())
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = new_figure(cw * ncols + 1.4, (ch + 0.4) * len(ids) + 0.5)
        axes = fig.subplots(len(ids), ncols, squeeze=False)
        for r, c in enumerate(ids):
            heading = f"cluster {c} → {m[c]}" if c in m else f"cluster {c}"
            heading += f"\n(n={int(np.sum(clusters == c))})"
            for j, ax in enumerate(axes[r]):
                if j >= len(chosen[c]):
                    ax.set_visible(False)
                    continue
                i = int(chosen[c][j])
                draw_patch(ax, first if (r == 0 and j == 0) else get_patch(patches, i), cmap)
                if labels is not None:
                    wrong = c in m and labels[i] != m[c]
                    ax.set_title(labels[i], fontsize=FONT_SIZE - 1, color="tab:red" if wrong else "black")
                if j == 0:
                    ax.set_ylabel(heading, rotation=0, ha="right", va="center", fontsize=FONT_SIZE)
        fig.suptitle(title + (" (tile title: true class, red = differs from cluster's class)"
                              if labels is not None and m else ""), fontsize=FONT_SIZE + 1)
    return fig


def _sample_members(clusters: np.ndarray, ids: list[int], n_per_cluster: int, random_state: int | None) -> dict:
    """Up to ``n_per_cluster`` members of each cluster, drawn without replacement in cluster order, sorted."""
    rng = np.random.default_rng(random_state)
    chosen = {}
    for c in ids:
        members = np.flatnonzero(clusters == c)
        chosen[c] = np.sort(rng.choice(members, size=min(n_per_cluster, len(members)), replace=False))
    return chosen


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
    return patch_gallery_figure(lambda k: get_patch(patches, int(top[k])), titles, ncols=ncols, cmap=cmap,
                                suptitle=title)


def anomaly_gallery(patches: Patches, scores, path: PathLike, **kwargs) -> str:
    """Write :func:`anomaly_gallery_figure` as a PNG; return the path.

    Keyword arguments (``labels``, ``n``, ``names``, ...) as for the figure.
    """
    return save_figure(anomaly_gallery_figure(patches, scores, **kwargs), path)


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
    first = get_patch(patches, 0)
    cw, ch = cell_size(first.shape)
    with matplotlib.rc_context({"font.size": FONT_SIZE - 1}):
        fig = new_figure(cw * (m + 1) + 0.6, (ch + 0.55) * n + 0.5)
        axes = fig.subplots(n, m + 1, squeeze=False)
        for r in range(n):
            draw_patch(axes[r, 0], get_patch(patches, r), cmap)
            axes[r, 0].set_title(str(titles[r]), fontsize=FONT_SIZE - 1, color="tab:red")
            for j in range(m):
                ax = axes[r, j + 1]
                if j < len(neighbour_titles[r]):
                    draw_patch(ax, get_patch(neighbours[r], j), cmap)
                    ax.set_title(str(neighbour_titles[r][j]), fontsize=FONT_SIZE - 2)
                else:
                    ax.set_visible(False)
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    return fig


def novelty_neighbours_gallery(patches: Patches, neighbours, titles, neighbour_titles, path: PathLike,
                               **kwargs) -> str:
    """Write :func:`novelty_neighbours_figure` as a PNG; return the path."""
    return save_figure(novelty_neighbours_figure(patches, neighbours, titles, neighbour_titles, **kwargs), path)
