"""Facies maps: paint each window's cluster (and its category) back onto the section at sample resolution.

Voting
------
Every window votes for its cluster on every sample it covers; a sample takes the cluster with the most votes (ties:
the lowest cluster index), and its category is that cluster's mapped category. Windows along crosslines of a 3-D
cube vote on the inlines they cross as well. The anomaly map is the mean anomaly score of the windows covering a
sample. One line is painted at a time, so memory is one line's ``k x n_traces x n_samples`` counts.

Outputs (:func:`write_facies_outputs`)
--------------------------------------
``facies_map.png`` (first page), ``facies_map.pdf`` (one page per line), ``anomaly_map.png``,
``facies_labels.sgy`` (the input's headers, samples = cluster index), ``facies_legend.csv`` (index, cluster,
category, colour), ``section_assignments.csv`` (one row per window).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.colors import ListedColormap, to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from seis_assets.core.segy import Survey, SurveyInfo, write_like  # noqa: E402
from seis_assets.core.storage import atomic_path, atomic_write_bytes  # noqa: E402

__all__ = [
    "CATEGORY_COLOURS",
    "SECTION_ASSIGNMENT_COLUMNS",
    "category_colours",
    "legend_table",
    "vote_line",
    "region_share",
    "facies_map_figure",
    "anomaly_map_figure",
    "write_facies_outputs",
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
#: Window rows of ``section_assignments.csv``: the window's position, then the assignment columns.
SECTION_ASSIGNMENT_COLUMNS = [
    "survey", "direction", "inline", "xline", "sample", "time_ms", "n_traces", "n_samples",
    "cluster", "predicted_label", "anomaly_score", "anomaly_percentile",
]


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """One colour per category: the fixed LANDMASS colours, tab10 for other names."""
    import matplotlib as mpl

    tab = mpl.colormaps["tab10"].colors
    spare = [to_hex(c) for c in tab if to_hex(c) not in CATEGORY_COLOURS.values()]
    out, j = {}, 0
    for c in sorted(set(categories)):
        if c in CATEGORY_COLOURS:
            out[c] = CATEGORY_COLOURS[c]
        else:
            out[c] = spare[j % len(spare)]
            j += 1
    return out


def legend_table(cluster_to_category: Mapping[int, str], k: int) -> pd.DataFrame:
    """``facies_legend.csv``: one row per cluster, ``index`` (the value in facies_labels.sgy), cluster, category,
    colour (the category's; clusters of one category share it)."""
    names = [cluster_to_category.get(c, f"cluster {c}") for c in range(k)]
    colours = category_colours(names)
    return pd.DataFrame(
        {"index": range(k), "cluster": range(k), "category": names, "colour": [colours[n] for n in names]}
    )


def _line_windows(windows: pd.DataFrame, direction: str, number: int, line_other: np.ndarray) -> Iterator[tuple[int, slice, slice]]:
    """(row, trace slice in the line, sample slice) of every window that covers part of the line."""
    if direction == "inline":
        along = windows[(windows["direction"] == "inline") & (windows["inline"] == number)]
        across = windows[(windows["direction"] == "xline")] if "xline" in set(windows["direction"]) else windows.iloc[:0]
    else:
        along = windows[(windows["direction"] == "xline") & (windows["xline"] == number)]
        across = windows[(windows["direction"] == "inline")]
    pos = {int(v): i for i, v in enumerate(line_other)}
    key_along = "xline" if direction == "inline" else "inline"
    for row, first, s0, nt, ns in zip(along.index, along[key_along], along["sample"], along["n_traces"], along["n_samples"]):
        t0 = pos[int(first)]
        yield row, slice(t0, t0 + int(nt)), slice(int(s0), int(s0) + int(ns))
    # windows of the other direction cross this line in one trace (if their span contains it)
    key_line = "inline" if direction == "inline" else "xline"
    for row, first, cross, s0, nt, ns, step in zip(
        across.index, across[key_line], across[key_along], across["sample"], across["n_traces"], across["n_samples"],
        across["trace_step"],
    ):
        if int(first) <= number <= int(first) + (int(nt) - 1) * int(step) and int(cross) in pos:
            t = pos[int(cross)]
            yield row, slice(t, t + 1), slice(int(s0), int(s0) + int(ns))


def vote_line(
    windows: pd.DataFrame,
    clusters: np.ndarray,
    scores: np.ndarray | None,
    k: int,
    n_traces: int,
    n_samples: int,
    direction: str,
    number: int,
    line_other: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cluster (and mean anomaly score) of every sample of one line.

    Parameters
    ----------
    windows : DataFrame with the window columns of :data:`seis_assets.core.segy.WINDOW_COLUMNS`, index 0..n-1
    clusters : ndarray (n,) int, each window's cluster in 0..k-1
    scores : ndarray (n,) or None, each window's anomaly score
    n_traces, n_samples : size of the line
    direction, number : the line ("inline", 362)
    line_other : ndarray (n_traces,), the other number of each trace of the line (crosslines of an inline)

    Returns
    -------
    cluster_map : ndarray (n_traces, n_samples) int16, -1 where no window covers a sample
    score_map : ndarray (n_traces, n_samples) float32 (NaN where uncovered), or None without scores
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    votes = np.zeros((k, n_traces, n_samples), dtype=np.int32)
    ssum = np.zeros((n_traces, n_samples), dtype=np.float64) if scores is not None else None
    count = np.zeros((n_traces, n_samples), dtype=np.int32)
    for row, ts, ss in _line_windows(windows, direction, number, line_other):
        votes[clusters[row], ts, ss] += 1
        count[ts, ss] += 1
        if ssum is not None:
            ssum[ts, ss] += float(scores[row])
    out = votes.argmax(axis=0).astype(np.int16)
    out[count == 0] = -1
    score_map = None
    if ssum is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            score_map = (ssum / count).astype(np.float32)
    return out, score_map


def region_share(category_map: np.ndarray, category: str, xlines: np.ndarray, times_ms: np.ndarray,
                 xline_range: tuple[float, float] | None = None, time_range: tuple[float, float] | None = None) -> float:
    """Share of samples in a crossline x time box whose category is ``category``.

    ``category_map`` is (n_traces, n_samples) of category names; ranges are inclusive; None = the whole axis.
    """
    xm = np.ones(len(xlines), bool) if xline_range is None else (xlines >= xline_range[0]) & (xlines <= xline_range[1])
    tm = np.ones(len(times_ms), bool) if time_range is None else (times_ms >= time_range[0]) & (times_ms <= time_range[1])
    box = category_map[np.ix_(xm, tm)]
    if box.size == 0:
        raise ValueError("the region holds no sample")
    return float((box == category).mean())


# --------------------------------------------------------------------------- figures
def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _section_extent(other: np.ndarray, info: SurveyInfo) -> list[float]:
    t_end = info.time_ms(info.n_samples - 1)
    return [float(other[0]) - 0.5, float(other[-1]) + 0.5, float(t_end) + info.sample_interval_ms / 2,
            info.t0_ms - info.sample_interval_ms / 2]


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
    extent = _section_extent(line_other, info)
    width = min(16.0, max(6.0, 2.0 + len(line_other) / 70))
    fig = _new_figure(width, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    clip = float(np.percentile(np.abs(section), clip_percentile)) or 1.0
    ax.imshow(section.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent, interpolation="bilinear")
    k = len(legend)
    if by == "category":
        names = sorted(set(legend["category"]))
        colours = category_colours(names)
        code = {n: i for i, n in enumerate(names)}
        lut = np.array([code[c] for c in legend["category"]] + [-1])
        classes = np.where(cluster_map >= 0, lut[np.clip(cluster_map, 0, k - 1)], -1)
        handles = [Patch(facecolor=colours[n], alpha=0.8, label=n) for n in names]
        cmap = ListedColormap([colours[n] for n in names])
        n_classes = len(names)
    else:
        import matplotlib as mpl

        tab = mpl.colormaps["tab20"].colors
        cols = [to_hex(tab[i % len(tab)]) for i in range(k)]
        classes = cluster_map.astype(int)
        handles = [Patch(facecolor=cols[i], alpha=0.8, label=f"cluster {i} → {legend['category'].iloc[i]}") for i in range(k)]
        cmap = ListedColormap(cols)
        n_classes = k
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
    extent = _section_extent(line_other, info)
    width = min(16.0, max(6.0, 2.0 + len(line_other) / 70))
    fig = _new_figure(width, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    clip = float(np.percentile(np.abs(section), 99.0)) or 1.0
    ax.imshow(section.T, cmap="gray", vmin=-clip, vmax=clip, aspect="auto", extent=extent, interpolation="bilinear")
    im = ax.imshow(np.ma.masked_invalid(score_map.T), cmap="inferno", alpha=0.55, aspect="auto", extent=extent,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label="anomaly score (robust z, mean of covering windows)")
    ax.set_xlabel("crossline" if direction == "inline" else "inline")
    ax.set_ylabel("time (ms)")
    ax.set_title(f"{info.name}: {direction} {number}, anomaly score")
    return fig


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def write_facies_outputs(
    survey: Survey,
    windows: pd.DataFrame,
    clusters: np.ndarray,
    scores: np.ndarray | None,
    cluster_to_category: Mapping[int, str],
    k: int,
    out_dir: str | os.PathLike,
    *,
    map_xlines: bool = False,
    extra_columns: pd.DataFrame | None = None,
    keep_maps: bool = False,
) -> dict:
    """Paint every line, write the map files into ``out_dir``; return what was written and each line's maps.

    Parameters
    ----------
    survey : an open :class:`~seis_assets.core.segy.Survey`
    windows : the survey's window positions (index 0..n-1)
    clusters, scores : each window's cluster and anomaly score (scores may be None)
    cluster_to_category : cluster -> category name (empty: clusters only, named ``cluster i`` in the legend and
        with an empty ``predicted_label``)
    map_xlines : add one page per crossline to the PDF (3-D cubes)
    extra_columns : more per-window columns for ``section_assignments.csv`` (e.g. ``anomaly_percentile``)
    keep_maps : return every inline's cluster map (memory grows with the survey: for small surveys and tests)

    Returns
    -------
    dict with ``files`` (name -> path), ``legend`` (DataFrame), ``maps`` ({("inline", number): (cluster_map,
    line_other)} when ``keep_maps``), ``category_share`` (share of samples per category over the survey) and
    ``assignments`` (the rows of section_assignments.csv)
    """
    from upath import UPath

    out = UPath(str(out_dir))
    info = survey.info
    windows = windows.reset_index(drop=True)
    clusters = np.asarray(clusters, dtype=np.int64)
    legend = legend_table(dict(cluster_to_category), k)
    files: dict[str, str] = {}
    maps: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    pages = [("inline", n) for n in info.inlines] + ([("xline", n) for n in info.xlines] if map_xlines and info.structured else [])
    counts = np.zeros(k + 1, dtype=np.int64)
    first_png = first_anomaly = None

    def paint(direction: str, number: int):
        section, idx = survey.read_line(direction, number)
        other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
        cmap, smap = vote_line(windows, clusters, scores, k, len(idx), info.n_samples, direction, number, other)
        if (cmap < 0).any():
            raise RuntimeError(f"{info.path}: {direction} {number} has samples no window covers")
        return section, idx, other, cmap, smap

    with atomic_path(out / "facies_map.pdf") as tmp_pdf, tmp_pdf.open("wb") as pdf_handle, PdfPages(pdf_handle) as pdf:
        for direction, number in pages:
            section, idx, other, cmap, smap = paint(direction, number)
            fig = facies_map_figure(section, cmap, legend, info, direction, number, other)
            pdf.savefig(fig, dpi=DPI)
            if first_png is None:
                first_png = _png_bytes(fig)
                if smap is not None:
                    first_anomaly = _png_bytes(anomaly_map_figure(section, smap, info, direction, number, other))
            if direction == "inline":
                counts += np.bincount(cmap.ravel().astype(np.int64), minlength=k + 1)[: k + 1]
                if keep_maps:
                    maps[(direction, number)] = (cmap, other)
    files["facies_map.pdf"] = str(out / "facies_map.pdf")
    files["facies_map.png"] = atomic_write_bytes(out / "facies_map.png", first_png)
    if first_anomaly is not None:
        files["anomaly_map.png"] = atomic_write_bytes(out / "anomaly_map.png", first_anomaly)
    # second pass, one inline at a time, so the labels never sit in memory as a cube
    def label_blocks():
        for n in info.inlines:
            _, idx, _, cmap, _ = paint("inline", n)
            yield idx, cmap.astype(np.float32)

    files["facies_labels.sgy"] = write_like(info.path, out / "facies_labels.sgy", label_blocks(),
                                            iline_byte=info.iline_byte, xline_byte=info.xline_byte)
    files["facies_legend.csv"] = atomic_write_bytes(out / "facies_legend.csv", legend.to_csv(index=False).encode())
    table = windows[[c for c in SECTION_ASSIGNMENT_COLUMNS if c in windows.columns]].copy()
    table["cluster"] = clusters
    table["predicted_label"] = [cluster_to_category.get(int(c), "") for c in clusters]
    if scores is not None:
        table["anomaly_score"] = np.asarray(scores, dtype=float)
    if extra_columns is not None:
        for col in extra_columns.columns:
            table[col] = extra_columns[col].to_numpy()
    files["section_assignments.csv"] = atomic_write_bytes(
        out / "section_assignments.csv", table.to_csv(index=False).encode()
    )
    cats = legend["category"].tolist()
    share: dict[str, float] = {}
    total = counts[:k].sum()
    for c, n in zip(cats, counts[:k]):
        share[c] = share.get(c, 0.0) + float(n) / float(total)
    return {"files": files, "legend": legend, "maps": maps, "category_share": share, "assignments": table}
