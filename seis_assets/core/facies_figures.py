"""Figures of a facies map: the seismic section in grey under translucent class colours, and the anomaly heat map.

Colours: the LANDMASS / F3 categories have fixed colours (:data:`CATEGORY_COLOURS`); other names, and the clusters
of a map coloured by cluster, get :func:`distinct_colours`: as many colours as there are classes, spread apart in
CIELAB and away from grey and the fixed colours, so no two classes share a colour (tab10 / tab20 repeat after 10 /
20 entries, and tab10 without the fixed colours after 6). Figures are plain
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
    "distinct_colours",
    "srgb_to_lab",
    "NO_CLASS_LABEL",
    "with_no_class",
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
#: Legend entry of the samples a map leaves without a class (drawn as the bare seismic).
NO_CLASS_LABEL = "no class (no data or no window)"
DPI = 110


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours ``(n, 3)`` in [0, 1]; Euclidean distance there is the CIE76 colour difference."""
    rgb = np.asarray(rgb, dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _candidates() -> tuple[np.ndarray, np.ndarray]:
    """sRGB grid colours (and their Lab) light and saturated enough to read over a grey section at ``ALPHA``."""
    g = np.linspace(0.0, 1.0, 18)
    rgb = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = srgb_to_lab(rgb)
    keep = (lab[:, 0] >= 35) & (lab[:, 0] <= 88) & (np.hypot(lab[:, 1], lab[:, 2]) >= 30)
    return rgb[keep], lab[keep]


def distinct_colours(n: int, avoid: Sequence[str] = ()) -> list[str]:
    """``n`` hex colours, each as far in CIELAB from the others (and from grey and ``avoid``) as the greedy
    farthest-point rule gets (glasbey-style): the first pick is the candidate farthest from grey, each next one the
    candidate whose nearest chosen colour is farthest. Deterministic; the first ``m`` colours of ``n`` are the
    colours of ``m``, so a cluster keeps its colour when k grows."""
    rgb, lab = _candidates()
    fixed = [srgb_to_lab(np.array([matplotlib.colors.to_rgb(c)]))[0] for c in avoid] + [np.array([60.0, 0.0, 0.0])]
    nearest = np.min([np.linalg.norm(lab - f, axis=1) for f in fixed], axis=0)
    out = []
    for _ in range(n):
        i = int(np.argmax(nearest))
        out.append(to_hex(rgb[i]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return out


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """One colour per category: the fixed LANDMASS colours, :func:`distinct_colours` (away from those) for others,
    in sorted order."""
    names = sorted(set(categories))
    others = [c for c in names if c not in CATEGORY_COLOURS]
    spare = dict(zip(others, distinct_colours(len(others), avoid=sorted(set(CATEGORY_COLOURS.values())))))
    return {c: CATEGORY_COLOURS.get(c) or spare[c] for c in names}


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
    """Each sample's cluster, the legend handles (``cluster i → category``, or ``cluster i`` for clusters without a
    category) and a distinct colour per cluster (:func:`distinct_colours`)."""
    k = len(legend)
    cols = distinct_colours(k)
    classes = cluster_map.astype(int)
    names = [c if c in (f"cluster {i}", f"unit {i}") else f"cluster {i} → {c}" for i, c in enumerate(legend["category"])]
    handles = [Patch(facecolor=cols[i], alpha=0.8, label=names[i]) for i in range(k)]
    return classes, handles, ListedColormap(cols), k


def with_no_class(handles: list, classes: np.ndarray) -> list:
    """``handles`` plus a "no class" entry where some sample has none (-1: a corrupt or dead trace, samples only
    left-out windows cover), which the figures leave uncoloured."""
    if not (np.asarray(classes) < 0).any():
        return handles
    return [*handles, Patch(facecolor="none", edgecolor="0.5", label=NO_CLASS_LABEL)]


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
    ``"cluster"`` by cluster (a distinct colour per cluster, named ``cluster i → category``), ``"unit"`` by
    stratigraphic unit (``unit i``, a distinct colour each).
    """
    fig, ax, extent = _section_axes(section, info, line_other, clip_percentile)
    paint = _classes_by_category if by == "category" else _classes_by_cluster
    classes, handles, cmap, n_classes = paint(cluster_map, legend)
    masked = np.ma.masked_less(classes.T, 0)
    ax.imshow(masked, cmap=cmap, vmin=-0.5, vmax=n_classes - 0.5, alpha=ALPHA, aspect="auto", extent=extent,
              interpolation="nearest")
    handles = with_no_class(handles, classes)
    other_name = "crossline" if direction == "inline" else "inline"
    ax.set_xlabel(other_name)
    ax.set_ylabel("time (ms)")
    ax.set_title(f"{info.name}: {direction} {number}, facies by {by}")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title=by)
    return fig


def _heat_panel(fig: Figure, ax, section: np.ndarray, values: np.ndarray, extent, cmap: str, label: str,
                clip_percentile: float, **limits) -> None:
    """One heat map (n_traces, n_samples) over the grey section on ``ax``, with its colour bar."""
    clip = float(np.percentile(np.abs(section), clip_percentile)) or 1.0
    ax.imshow(section.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent, interpolation="bilinear")
    im = ax.imshow(np.ma.masked_invalid(values.T), cmap=cmap, alpha=0.55, aspect="auto", extent=extent,
                   interpolation="nearest", **limits)
    fig.colorbar(im, ax=ax, label=label)


def anomaly_map_figure(section: np.ndarray, score_map: np.ndarray | None, info: SurveyInfo, direction: str,
                       number: int, line_other: np.ndarray, *, confidence: np.ndarray | None = None) -> Figure:
    """The anomaly score (mean over covering windows) and, beside it, the confidence (the winning class's vote share
    per sample, 0..1), each as a heat map over the grey section on the facies map's axes, each with a colour bar.

    Either map may be None (no anomaly scores; no confidence); at least one is drawn.
    """
    panels = [(score_map, "inferno", "anomaly score (robust z, mean of covering windows)", "anomaly score", {}),
              (confidence, "viridis", "confidence (vote share of the winning class)", "confidence",
               {"vmin": 0.0, "vmax": 1.0})]
    panels = [p for p in panels if p[0] is not None]
    if not panels:
        raise ValueError("anomaly_map_figure: neither an anomaly map nor a confidence map to draw")
    extent = _section_extent(line_other, info)
    width = min(16.0, max(6.0, 2.0 + len(line_other) / 70))
    fig = _new_figure(width, 4.5 * len(panels))
    axes = fig.subplots(len(panels), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, (values, cmap, label, title, limits) in zip(axes, panels):
        _heat_panel(fig, ax, section, values, extent, cmap, label, 99.0, **limits)
        ax.set_xlabel("crossline" if direction == "inline" else "inline")
        ax.set_ylabel("time (ms)")
        ax.set_title(f"{info.name}: {direction} {number}, {title}")
    return fig
