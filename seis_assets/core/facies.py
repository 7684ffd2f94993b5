"""Facies maps: paint each window's cluster (and its category) back onto the section at sample resolution.

Voting
------
Every window votes for its cluster on every sample it covers; a sample takes the cluster with the most votes (ties:
the lowest cluster index), and its category is that cluster's mapped category. The sample's *confidence* is the
vote share of that winner: its votes over the votes of all windows covering the sample, in (0, 1] (1: every covering
window agrees; 1/k at worst). It is counted with the votes (:func:`count_votes`), not in a second pass. Windows
along crosslines of a 3-D cube vote on the inlines they cross as well. The anomaly map is the mean anomaly score of the windows covering a
sample. One line is painted at a time, so memory is one line's ``k x n_traces x n_samples`` counts.

Outputs (:func:`write_facies_outputs`)
--------------------------------------
``facies_map.png`` (first page), ``facies_map.pdf`` (one page per line), ``anomaly_map.png`` (the first page's
anomaly score and confidence side by side), ``facies_labels.sgy`` (the input's headers, samples = cluster index),
``facies_legend.csv`` (index, cluster, category, colour), ``section_assignments.csv`` (one row per window, with its
``confidence``: the mean vote share over the window's samples). Maps of clusters without categories (survey models)
are coloured by cluster, one distinct colour each; maps with categories by category. The figures are
:mod:`seis_assets.core.facies_figures`'.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from upath import UPath

from seis_assets.core.facies_figures import (
    DPI,
    anomaly_map_figure,
    category_colours,
    distinct_colours,
    facies_map_figure,
)
from seis_assets.core.segy import Survey
from seis_assets.core.segy_write import write_like
from seis_assets.core.stratigraphy import unit_map
from seis_assets.core.storage import atomic_path, atomic_write_bytes

__all__ = [
    "SECTION_ASSIGNMENT_COLUMNS",
    "LineVotes",
    "count_votes",
    "legend_table",
    "unit_legend",
    "vote_line",
    "region_share",
    "write_facies_outputs",
]

#: Window rows of ``section_assignments.csv``: the window's position, then the assignment columns.
SECTION_ASSIGNMENT_COLUMNS = [
    "survey", "direction", "inline", "xline", "sample", "time_ms", "n_traces", "n_samples",
    "cluster", "predicted_label", "confidence", "anomaly_score", "anomaly_percentile",
]


def legend_table(cluster_to_category: Mapping[int, str], k: int) -> pd.DataFrame:
    """``facies_legend.csv``: one row per cluster, ``index`` (the value in facies_labels.sgy), cluster, category,
    colour: the category's (clusters of one category share it), or, when no cluster has a category, the cluster's
    own distinct colour (the one the map is painted with)."""
    names = [cluster_to_category.get(c, f"cluster {c}") for c in range(k)]
    if cluster_to_category:
        by_name = category_colours(names)
        colours = [by_name[n] for n in names]
    else:
        colours = distinct_colours(k)
    return pd.DataFrame({"index": range(k), "cluster": range(k), "category": names, "colour": colours})


def unit_legend(n: int) -> pd.DataFrame:
    """``facies_legend.csv`` of a map of ``n`` stratigraphic units: ``unit i`` (0 at the top), a distinct colour each."""
    return pd.DataFrame({"index": range(n), "cluster": range(n), "category": [f"unit {i}" for i in range(n)],
                         "colour": distinct_colours(n)})


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


@dataclasses.dataclass(frozen=True)
class LineVotes:
    """The votes of one line, counted once.

    cluster_map : ndarray (n_traces, n_samples) int16, the winning cluster, -1 where no window covers a sample
    confidence : ndarray (n_traces, n_samples) float32, the winner's vote share in (0, 1], NaN where uncovered
    score_map : ndarray (n_traces, n_samples) float32, mean anomaly score of the covering windows (NaN where
        uncovered), or None without scores
    spans : list of (window row, trace slice, sample slice), every window's part of the line
    shares : ndarray (k, n_traces, n_samples) float32, each cluster's vote share per sample (0 where uncovered),
        or None unless asked for (``keep_shares``)
    """

    cluster_map: np.ndarray
    confidence: np.ndarray
    score_map: np.ndarray | None
    spans: list[tuple[int, slice, slice]]
    shares: np.ndarray | None = None


def count_votes(
    windows: pd.DataFrame,
    clusters: np.ndarray,
    scores: np.ndarray | None,
    k: int,
    n_traces: int,
    n_samples: int,
    direction: str,
    number: int,
    line_other: np.ndarray,
    keep_shares: bool = False,
) -> LineVotes:
    """Winning cluster, its vote share and the mean anomaly score of every sample of one line.

    Parameters
    ----------
    windows : DataFrame with the window columns of :data:`seis_assets.core.segy_windows.WINDOW_COLUMNS`, index 0..n-1
    clusters : ndarray (n,) int, each window's cluster in 0..k-1
    scores : ndarray (n,) or None, each window's anomaly score
    n_traces, n_samples : size of the line
    direction, number : the line ("inline", 362)
    line_other : ndarray (n_traces,), the other number of each trace of the line (crosslines of an inline)
    keep_shares : also return every cluster's vote share per sample (``LineVotes.shares``)
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    votes = np.zeros((k, n_traces, n_samples), dtype=np.int32)
    ssum = np.zeros((n_traces, n_samples), dtype=np.float64) if scores is not None else None
    count = np.zeros((n_traces, n_samples), dtype=np.int32)
    spans = list(_line_windows(windows, direction, number, line_other))
    for row, ts, ss in spans:
        votes[clusters[row], ts, ss] += 1
        count[ts, ss] += 1
        if ssum is not None:
            ssum[ts, ss] += float(scores[row])
    out = votes.argmax(axis=0).astype(np.int16)
    out[count == 0] = -1
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = (votes.max(axis=0) / count).astype(np.float32)
        score_map = None if ssum is None else (ssum / count).astype(np.float32)
        shares = (votes / np.maximum(count, 1)).astype(np.float32) if keep_shares else None
    return LineVotes(out, confidence, score_map, spans, shares)


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
    """``(cluster_map, score_map)`` of one line: :func:`count_votes` without the confidence (same parameters)."""
    votes = count_votes(windows, clusters, scores, k, n_traces, n_samples, direction, number, line_other)
    return votes.cluster_map, votes.score_map


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


# --------------------------------------------------------------------------- outputs
@dataclasses.dataclass(frozen=True)
class _LinePainter:
    """The windows' clusters and scores of one survey, painted onto one line at a time; with ``units`` > 0 each
    line's map is its ``units`` stratigraphic units (:func:`seis_assets.core.stratigraphy.unit_map`) instead of the
    winning clusters."""

    survey: Survey
    windows: pd.DataFrame
    clusters: np.ndarray
    scores: np.ndarray | None
    k: int
    units: int = 0

    def paint(self, direction: str, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, LineVotes]:
        """``(section, trace indices, other numbers, votes)`` of one line; every sample covered."""
        survey, info = self.survey, self.survey.info
        section, idx = survey.read_line(direction, number)
        other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
        votes = count_votes(self.windows, self.clusters, self.scores, self.k, len(idx), info.n_samples, direction,
                            number, other, keep_shares=self.units > 0)
        if (votes.cluster_map < 0).any():
            raise RuntimeError(f"{info.path}: {direction} {number} has samples no window covers")
        if self.units:
            votes = dataclasses.replace(votes, cluster_map=unit_map(section, self.units, votes.shares), shares=None)
        return section, idx, other, votes

    @property
    def n_classes(self) -> int:
        """Values a map holds: the units, else the clusters."""
        return self.units or self.k

    def label_blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(trace indices, cluster index per sample)`` one inline at a time, so the labels never sit in memory as
        a cube."""
        for n in self.survey.info.inlines:
            _, idx, _, votes = self.paint("inline", n)
            yield idx, self.survey.file_samples(votes.cluster_map).astype(np.float32)  # the file's own samples


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
    units: int = 0,
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
    units : 0, or map each line's ``units`` stratigraphic units (layers followed along the reflectors, cut where
        their character and the clusters' vote shares change; :mod:`seis_assets.core.stratigraphy`) instead of the
        winning cluster; the legend names ``unit i`` from the top, the windows keep their clusters

    Returns
    -------
    dict with ``files`` (name -> path), ``legend`` (DataFrame), ``maps`` ({("inline", number): (cluster_map,
    line_other)} when ``keep_maps``), ``confidence`` ({("inline", number): vote share per sample} when
    ``keep_maps``), ``category_share`` (share of samples per category over the survey) and
    ``assignments`` (the rows of section_assignments.csv)
    """
    out = UPath(str(out_dir))
    info = survey.info
    windows = windows.reset_index(drop=True)
    clusters = np.asarray(clusters, dtype=np.int64)
    if units and cluster_to_category:
        raise ValueError("units map clusters without categories: pass an empty cluster_to_category")
    legend = unit_legend(units) if units else legend_table(dict(cluster_to_category), k)
    painter = _LinePainter(survey, windows, clusters, scores, k, units)
    pages = [("inline", n) for n in info.inlines] + ([("xline", n) for n in info.xlines] if map_xlines and info.structured else [])
    by = "unit" if units else "category" if cluster_to_category else "cluster"
    files, counts, maps, confidence = _write_map_pages(painter, legend, pages, out, keep_maps, by)
    shares = {key: m.pop() for key, m in maps.items()}
    maps = {key: tuple(m) for key, m in maps.items()}
    files["facies_labels.sgy"] = write_like(info.path, out / "facies_labels.sgy", painter.label_blocks(),
                                            iline_byte=info.iline_byte, xline_byte=info.xline_byte)
    files["facies_legend.csv"] = atomic_write_bytes(out / "facies_legend.csv", legend.to_csv(index=False).encode())
    table = _assignment_table(windows, clusters, confidence, scores, cluster_to_category, extra_columns)
    files["section_assignments.csv"] = atomic_write_bytes(
        out / "section_assignments.csv", table.to_csv(index=False).encode()
    )
    share = _category_share(legend["category"].tolist(), counts[: painter.n_classes])
    return {"files": files, "legend": legend, "maps": maps, "confidence": shares, "category_share": share,
            "assignments": table}


class _WindowShares:
    """Each window's mean vote share over its samples, summed line by line as the inlines are painted (every sample
    of every window lies on exactly one inline)."""

    def __init__(self, n: int):
        self.total = np.zeros(n, dtype=np.float64)
        self.count = np.zeros(n, dtype=np.int64)

    def add(self, votes: LineVotes) -> None:
        for row, ts, ss in votes.spans:
            part = votes.confidence[ts, ss]
            self.total[row] += float(part.sum())
            self.count[row] += part.size

    def mean(self) -> np.ndarray:
        if (self.count == 0).any():
            raise RuntimeError(f"{int((self.count == 0).sum())} windows lie on no painted inline")
        return self.total / self.count


def _write_map_pages(painter: _LinePainter, legend: pd.DataFrame, pages: list[tuple[str, int]], out: UPath,
                     keep_maps: bool, by: str) -> tuple[dict[str, str], np.ndarray, dict, np.ndarray]:
    """``facies_map.pdf`` (one page per line), ``facies_map.png`` and ``anomaly_map.png`` (the first page).

    Returns the files written, the samples per cluster over the inlines (``k + 1`` counts), with ``keep_maps``
    each inline's ``(cluster_map, line_other, confidence)``, and each window's mean vote share.
    """
    info, k = painter.survey.info, painter.n_classes
    counts = np.zeros(k + 1, dtype=np.int64)
    shares = _WindowShares(len(painter.windows))
    maps: dict[tuple[str, int], list[np.ndarray]] = {}
    first_png = first_anomaly = None
    with atomic_path(out / "facies_map.pdf") as tmp_pdf, tmp_pdf.open("wb") as pdf_handle, PdfPages(pdf_handle) as pdf:
        for direction, number in pages:
            section, idx, other, votes = painter.paint(direction, number)
            fig = facies_map_figure(section, votes.cluster_map, legend, info, direction, number, other, by=by)
            pdf.savefig(fig, dpi=DPI)
            if first_png is None:
                first_png = _png_bytes(fig)
                first_anomaly = _png_bytes(anomaly_map_figure(section, votes.score_map, info, direction, number, other,
                                                              confidence=votes.confidence))
            if direction == "inline":
                counts += np.bincount(votes.cluster_map.ravel().astype(np.int64), minlength=k + 1)[: k + 1]
                shares.add(votes)
                if keep_maps:
                    maps[(direction, number)] = [votes.cluster_map, other, votes.confidence]
    files = {"facies_map.pdf": str(out / "facies_map.pdf")}
    files["facies_map.png"] = atomic_write_bytes(out / "facies_map.png", first_png)
    files["anomaly_map.png"] = atomic_write_bytes(out / "anomaly_map.png", first_anomaly)
    return files, counts, maps, shares.mean()


def _assignment_table(windows: pd.DataFrame, clusters: np.ndarray, confidence: np.ndarray, scores: np.ndarray | None,
                      cluster_to_category: Mapping[int, str], extra_columns: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of ``section_assignments.csv``: each window's position, cluster, category, confidence (the mean
    vote share over its samples) and scores."""
    table = windows[[c for c in SECTION_ASSIGNMENT_COLUMNS if c in windows.columns]].copy()
    table["cluster"] = clusters
    table["predicted_label"] = [cluster_to_category.get(int(c), "") for c in clusters]
    table["confidence"] = np.asarray(confidence, dtype=float)
    if scores is not None:
        table["anomaly_score"] = np.asarray(scores, dtype=float)
    if extra_columns is not None:
        for col in extra_columns.columns:
            table[col] = extra_columns[col].to_numpy()
    return table


def _category_share(categories: list[str], counts: np.ndarray) -> dict[str, float]:
    """Share of samples per category, from each cluster's category and sample count."""
    share: dict[str, float] = {}
    total = counts.sum()
    for c, n in zip(categories, counts):
        share[c] = share.get(c, 0.0) + float(n) / float(total)
    return share
