"""Figures of a facies map: the seismic section in grey under translucent class colours, and the anomaly heat map.

Colours: the LANDMASS / F3 categories have fixed colours (:data:`CATEGORY_COLOURS`), other names get tab10 colours
in sorted order; a map coloured by cluster gives each cluster its own tab20 colour. Figures are plain
:class:`matplotlib.figure.Figure` objects on the Agg canvas (no ``pyplot``), as in :mod:`seis_assets.core.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import ListedColormap, to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from seis_assets.core.segy import SurveyInfo  # noqa: E402

__all__ = [
    "CATEGORY_COLOURS",
    "category_colours",
    "facies_map_figure",
    "anomaly_map_figure",
]

#: Colours of the LANDMASS / F3 categories (other names get tab10 colours in sorted order).
CATEGORY_COLOURS = {
    "salt dome": "#d62728",
    "chaotic": "#ff7f0e",
    "fault": "#9467bd",
    "other": "#2ca02c",
    "horizon": "#2ca02c",
}
ALPHA = 0.45
DPI = 110


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """One colour per category: the fixed LANDMASS colours, tab10 for other names."""
    tab = matplotlib.colormaps["tab10"].colors
    spare = [to_hex(c) for c in tab if to_hex(c) not in CATEGORY_COLOURS.values()]
    out, j = {}, 0
    for c in sorted(set(categories)):
        if c in CATEGORY_COLOURS:
            out[c] = CATEGORY_COLOURS[c]
        else:
            out[c] = spare[j % len(spare)]
            j += 1
    return out


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _section_extent(other: np.ndarray, info: SurveyInfo) -> list[float]:
    t_end = info.time_ms(info.n_samples - 1)
    return [float(other[0]) - 0.5, float(other[-1]) + 0.5, float(t_end) + info.sample_interval_ms / 2,
            info.t0_ms - info.sample_interval_ms / 2]


def _section_axes(section: np.ndarray, info: SurveyInfo, line_other: np.ndarray, clip_percentile: float):
    """A figure sized to the line with the section drawn in grey; returns ``(fig, ax, extent)``."""
    extent = _section_extent(line_other, info)
    width = min(16.0, max(6.0, 2.0 + len(line_other) / 70))
    fig = _new_figure(width, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    clip = float(np.percentile(np.abs(section), clip_percentile)) or 1.0
    ax.imshow(section.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent, interpolation="bilinear")
    return fig, ax, extent


def _classes_by_category(cluster_map: np.ndarray, legend: pd.DataFrame):
    """Each sample's category code (-1 uncovered), the legend handles and the colour map, one entry per category."""
    k = len(legend)
    names = sorted(set(legend["category"]))
    colours = category_colours(names)
    code = {n: i for i, n in enumerate(names)}
    lut = np.array([code[c] for c in legend["category"]] + [-1])
    classes = np.where(cluster_map >= 0, lut[np.clip(cluster_map, 0, k - 1)], -1)
    handles = [Patch(facecolor=colours[n], alpha=0.8, label=n) for n in names]
    return classes, handles, ListedColormap([colours[n] for n in names]), len(names)


def _classes_by_cluster(cluster_map: np.ndarray, legend: pd.DataFrame):
    """Each sample's cluster, the legend handles (``cluster i → category``) and a colour per cluster."""
    k = len(legend)
    tab = matplotlib.colormaps["tab20"].colors
    cols = [to_hex(tab[i % len(tab)]) for i in range(k)]
    classes = cluster_map.astype(int)
    handles = [Patch(facecolor=cols[i], alpha=0.8, label=f"cluster {i} → {legend['category'].iloc[i]}") for i in range(k)]
    return classes, handles, ListedColormap(cols), k


def facies_map_figure(
    section: np.ndarray,
    cluster_map: np.ndarray,
    legend: pd.DataFrame,
    info: SurveyInfo,
    direction: str,
    number: int,
    line_other: np.ndarray,
    *,
    by: str = "category",
    clip_percentile: float = 99.0,
) -> Figure:
    """The seismic in grey with translucent class colours, a legend with names, crossline (or inline) and time axes.

    ``section`` and ``cluster_map`` are (n_traces, n_samples); ``by="category"`` colours by mapped category,
    ``"cluster"`` by cluster (a distinct colour per cluster, named ``cluster i → category``).
    """
    fig, ax, extent = _section_axes(section, info, line_other, clip_percentile)
    paint = _classes_by_category if by == "category" else _classes_by_cluster
    classes, handles, cmap, n_classes = paint(cluster_map, legend)
    masked = np.ma.masked_less(classes.T, 0)
    ax.imshow(masked, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, alpha=ALPHA, aspect="auto", extent=extent,
              interpolation="nearest")
    other_name = "crossline" if direction == "inline" else "inline"
    ax.set_xlabel(other_name)
    ax.set_ylabel("time (ms)")
    ax.set_title(f"{info.name}: {direction} {number}, facies by {by}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=by)
    return fig


def anomaly_map_figure(section: np.ndarray, score_map: np.ndarray, info: SurveyInfo, direction: str, number: int,
                       line_other: np.ndarray) -> Figure:
    """The anomaly score (mean over covering windows) as a heat map over the grey section."""
    fig, ax, extent = _section_axes(section, info, line_other, 99.0)
    im = ax.imshow(np.ma.masked_invalid(score_map.T), cmap="inferno", alpha=0.55, aspect="auto", extent=extent,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label="anomaly score (robust z, mean of covering windows)")
    ax.set_xlabel("crossline" if direction == "inline" else "inline")
    ax.set_ylabel("time (ms)")
    ax.set_title(f"{info.name}: {direction} {number}, anomaly score")
    return fig
