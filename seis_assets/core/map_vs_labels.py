"""A section's facies map beside its interpreters' labels: find the labels, score the map, draw the two side by side.

Interpreters' labels of a section are a ``.npy`` file beside its SEG-Y, named ``<stem>_labels.npy`` (``inline_241.sgy``
→ ``inline_241_labels.npy``): one integer unit per sample, samples x traces in the file's trace order. The map is
read back from the ``facies_labels.sgy`` the ``facies_map`` asset wrote (cluster index per sample, the input's own
geometry and samples), so what is scored is exactly what a user gets. The labels are read only here, after the map
is made: nothing upstream sees them. :func:`score_section` does it all for one mapped section (the ``facies_map``
asset calls it when labels lie beside the file). No Dagster imports here.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import segyio
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from seis_assets.core.facies_figures import DPI, distinct_colours, with_no_class
from seis_assets.core.section_scores import NO_CLASS, SCORE_NAMES, baseline_scores, hungarian_miou, score_map
from seis_assets.core.segy import byte_order, survey_name
from seis_assets.core.storage import atomic_write_bytes, to_upath

__all__ = ["labels_beside", "read_section", "read_map_segy", "load_labels", "compare_map", "map_vs_labels_figure",
           "png_bytes", "score_section", "clear_scores", "SCORES_FILE", "FIGURE_FILE"]

#: What :func:`score_section` writes into the map's folder.
SCORES_FILE, FIGURE_FILE = "map_vs_labels.json", "map_vs_labels.png"


def labels_beside(segy_path: str | os.PathLike) -> Path | None:
    """``<stem>_labels.npy`` beside a local SEG-Y file, or None when there is none."""
    path = Path(segy_path)
    candidate = path.with_name(f"{path.stem}_labels.npy")
    return candidate if candidate.is_file() else None


def read_section(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every sample of a SEG-Y file in trace order, samples x traces, and the sample times (ms)."""
    with segyio.open(str(path), ignore_geometry=True, endian=byte_order(path)) as f:
        return f.trace.raw[:].T, np.asarray(f.samples, dtype=float)


def read_map_segy(path: str | os.PathLike) -> np.ndarray:
    """The cluster index of every sample of a labels SEG-Y (``facies_labels.sgy``), samples x traces, int64.

    Raises ValueError naming the file when a value is not a whole number from -1 (no class) up (not a labels
    SEG-Y)."""
    values, _ = read_section(path)
    if (values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < NO_CLASS)
            or np.any(values != np.round(values))):
        raise ValueError(f"{path}: not a labels SEG-Y (values must be whole cluster indices, or -1 for no class)")
    return values.astype(np.int64)


def load_labels(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """Interpreters' labels (samples x traces integers) checked against the map's shape; ValueError names the file."""
    labels = np.load(str(path), allow_pickle=False)
    if labels.shape != tuple(shape):
        raise ValueError(f"{path}: labels have shape {labels.shape}, the section's map {tuple(shape)} (samples x traces)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be integers, got {labels.dtype}")
    return labels.astype(np.int64)


def compare_map(cluster_map: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """The map's ARI / NMI / Hungarian mIoU against the labels, the depth-band baseline at the same ``k``, and the
    Hungarian matching ``{unit: cluster}`` the figure colours by."""
    scores = score_map(cluster_map, labels)
    base = baseline_scores(labels, k)
    _, matching = hungarian_miou(cluster_map, labels)
    return {**scores, **{f"depth_band_{s}": base[s] for s in SCORE_NAMES}, "k": int(k), "matching": matching}


def map_vs_labels_figure(section: np.ndarray, cluster_map: np.ndarray, labels: np.ndarray, matching: dict[int, int],
                         title: str, scores: dict, *, t0_ms: float = 0.0, dt_ms: float = 4.0,
                         clip_percentile: float = 99.0, map_class: str = "cluster",
                         trace_axis: tuple[str, float, float] | None = None):
    """Two panels over the grey section (all samples x traces): the interpreters' units and the map.

    Each unit gets a colour; a cluster matched to a unit (Hungarian, one to one) takes that unit's colour, so equal
    colours mean matched classes; clusters left unmatched get further colours of their own. The title gives the
    scores and the depth-band baseline. ``map_class`` names the map's classes in its legend (``cluster``, ``unit``).
    ``trace_axis`` ``(name, first, last)`` numbers the traces (``("crossline", 300, 1250)`` for an inline whose
    traces are evenly numbered); None numbers them 0, 1, ... as ``trace``.
    """
    units = sorted(int(u) for u in np.unique(labels))
    clusters = sorted(int(c) for c in np.unique(cluster_map) if c != NO_CLASS)  # no class: left uncoloured
    unmatched = [c for c in clusters if c not in matching.values()]
    colours = distinct_colours(len(units) + len(unmatched))
    unit_colour = {u: colours[i] for i, u in enumerate(units)}
    cluster_colour = {c: unit_colour[u] for u, c in matching.items()}
    cluster_colour.update({c: colours[len(units) + i] for i, c in enumerate(unmatched)})
    n_samples, n_traces = labels.shape
    axis_name, first, last = trace_axis or ("trace", 0.0, n_traces - 1.0)
    half = 0.5 * (last - first) / max(n_traces - 1, 1)
    extent = [first - half, last + half, t0_ms + (n_samples - 0.5) * dt_ms, t0_ms - 0.5 * dt_ms]
    fig = Figure(figsize=(min(16.0, max(7.0, 3.0 + n_traces / 70)), 9.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, sharex=True, sharey=True)
    clip = float(np.percentile(np.abs(section), clip_percentile)) or 1.0
    panels = [(labels, units, unit_colour, "interpreters' units", "unit"),
              (cluster_map, clusters, cluster_colour, "survey map (no labels used)", map_class)]
    for ax, (values, names, colour, name, prefix) in zip(axes, panels):
        lut = {v: i for i, v in enumerate(names)} | {NO_CLASS: -1}
        codes = np.ma.masked_less(np.vectorize(lut.__getitem__, otypes=[np.int64])(values), 0)
        ax.imshow(section, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent, interpolation="bilinear")
        ax.imshow(codes, cmap=ListedColormap([colour[v] for v in names]), vmin=-0.5, vmax=len(names) - 0.5,
                  alpha=0.55, aspect="auto", extent=extent, interpolation="nearest")
        ax.set_ylabel("time (ms)")
        ax.set_title(name)
        handles = with_no_class([Patch(facecolor=colour[v], alpha=0.8, label=f"{prefix} {v}") for v in names], values)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    axes[-1].set_xlabel(axis_name)
    fig.suptitle(f"{title}: ARI {scores['ari']:.2f}, NMI {scores['nmi']:.2f}, mIoU {scores['miou']:.2f} "
                 f"(k = {scores['k']} depth bands: ARI {scores['depth_band_ari']:.2f}, NMI "
                 f"{scores['depth_band_nmi']:.2f}, mIoU {scores['depth_band_miou']:.2f})")
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes at the facies maps' resolution."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def score_section(segy_path: str | os.PathLike, map_segy: str | os.PathLike, folder, k: int,
                  map_class: str = "cluster", trace_numbers: tuple[str, np.ndarray] | None = None) -> dict | None:
    """Score the map ``map_segy`` (a local ``facies_labels.sgy`` of ``k`` classes) against the labels beside
    ``segy_path``: None when there are none. Writes :data:`FIGURE_FILE` (the two side by side) and
    :data:`SCORES_FILE` (the scores, the depth-band baseline, the labels' path, the matching of units to the map's
    classes) into ``folder`` (local or a bucket) and returns the scores with ``figure``. ``trace_numbers`` ``(name,
    numbers)`` (``("crossline", the inline's crosslines)``) numbers the figure's traces when they are evenly spaced.

    Raises ValueError naming the labels file when its shape is not the section's or it holds no integers.
    """
    labels_path = labels_beside(segy_path)
    if labels_path is None:
        return None
    cluster_map = read_map_segy(map_segy)
    labels = load_labels(labels_path, cluster_map.shape)
    result = compare_map(cluster_map, labels, k)
    section, times = read_section(segy_path)
    dt_ms = float(times[1] - times[0])  # a mapped section holds at least a window's samples
    axis = None
    if trace_numbers is not None:
        name, numbers = trace_numbers[0], np.asarray(trace_numbers[1], dtype=float)
        if len(numbers) == labels.shape[1] and len(numbers) > 1 and np.all(np.diff(numbers) == numbers[1] - numbers[0]):
            axis = (name, float(numbers[0]), float(numbers[-1]))
    fig = map_vs_labels_figure(section, cluster_map, labels, result["matching"], survey_name(segy_path), result,
                               t0_ms=float(times[0]), dt_ms=dt_ms, map_class=map_class, trace_axis=axis)
    folder = to_upath(folder)
    figure = atomic_write_bytes(folder / FIGURE_FILE, png_bytes(fig))
    scores = {name: value for name, value in result.items() if name != "matching"} | {"labels": str(labels_path)}
    scores["matching"] = {str(u): int(c) for u, c in result["matching"].items()}  # unit -> the map's class
    atomic_write_bytes(folder / SCORES_FILE, json.dumps(scores, indent=1).encode())
    return scores | {"figure": figure}


def clear_scores(folder) -> None:
    """Remove an earlier :func:`score_section`'s files from ``folder``, so a map that is not scored (no labels now,
    labels that do not fit) never sits beside the scores of an older one."""
    folder = to_upath(folder)
    for name in (SCORES_FILE, FIGURE_FILE):
        if (folder / name).exists():
            (folder / name).unlink()
