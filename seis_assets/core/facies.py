"""Facies maps: paint each window's cluster (and its category) back onto the section at sample resolution.

Voting
------
Every window votes for its cluster on every sample it covers; a sample takes the cluster with the most votes (ties:
the lowest cluster index), and its category is that cluster's mapped category. The sample's *confidence* is the
vote share of that winner: its votes over the votes of all windows covering the sample, in (0, 1] (1: every covering
window agrees; 1/k at worst). It is counted with the votes (:func:`count_votes`), not in a second pass. Windows
along crosslines of a 3-D cube vote on the inlines they cross as well. Windows cut on every n-th line only (a line
step, for large cubes) vote on the lines between as well, each line taking its nearest cut line's windows. The
anomaly map is the mean anomaly score of the windows covering a sample. One line is painted at a time, so memory is
one line's ``k x n_traces x n_samples`` counts.

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
import tempfile
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
from seis_assets.core.mdio_survey import is_mdio, write_mdio_labels
from seis_assets.core.patches import live_traces
from seis_assets.core.segy import Survey, is_grid, section_direction
from seis_assets.core.segy_windows import line_runs, line_sources
from seis_assets.core.segy_write import write_like
from seis_assets.core.stratigraphy import cut_profiles, level_correspondence, line_profile, unit_map, units_at
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

#: PDF pages per direction by default (``write_facies_outputs(page_lines=...)``): every line of a section or a small
#: cube; 50 evenly spaced lines of a large one, whose every line is in the labels SEG-Y and the volume views anyway
DEFAULT_PAGE_LINES = 50

#: Inlines on each side a cube's inline is cut into units with (``write_facies_outputs(tie_lines=...)``): 2 is
#: 50 m on F3's 25 m grid, enough to outvote one inline whose own profile cuts at other reflectors
DEFAULT_TIE_LINES = 2

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


class WindowIndex:
    """The windows' positions as arrays, grouped by line once, so painting a line of a survey with hundreds of
    thousands of windows looks only at its own (and at the crossing direction's by a vectorised test).

    ``sources`` (with a line step, :func:`seis_assets.core.segy_windows.line_sources`): per direction, each line ->
    the lines whose windows vote on it; a window then paints the traces of those lines whose numbers fall in its
    span. None: every line has its own windows."""

    def __init__(self, windows: pd.DataFrame, sources: Mapping[str, Mapping[int, list[int]]] | None = None):
        self.sources = {d: dict(v) for d, v in (sources or {}).items()}
        #: per direction, a picked line -> the lines its windows vote on (the inverse of ``sources``)
        self.covers: dict[str, dict[int, list[int]]] = {}
        for direction, by_line in self.sources.items():
            for line, picks in by_line.items():
                for pick in picks:
                    self.covers.setdefault(direction, {}).setdefault(int(pick), []).append(int(line))
        cols = ("direction", "inline", "xline", "sample", "n_traces", "n_samples", "trace_step")
        self.rows = np.arange(len(windows))
        self.col = {c: windows[c].to_numpy() for c in cols}
        is_inline = self.col["direction"] == "inline"
        self.by_direction = {"inline": np.flatnonzero(is_inline), "xline": np.flatnonzero(~is_inline)}
        self.along: dict[tuple[str, int], np.ndarray] = {}
        for direction, rows in self.by_direction.items():
            numbers = self.col["inline" if direction == "inline" else "xline"][rows].astype(np.int64)
            order = np.argsort(numbers, kind="stable")
            cuts = np.flatnonzero(np.diff(numbers[order])) + 1
            for part in np.split(rows[order], cuts) if len(rows) else []:
                self.along[(direction, int(self.col["inline" if direction == "inline" else "xline"][part[0]]))] = part

    def spans(self, direction: str, number: int, line_other: np.ndarray) -> Iterator[tuple[int, slice, slice]]:
        """(row, trace slice in the line, sample slice) of every window that covers part of the line."""
        c = self.col
        pos = {int(v): i for i, v in enumerate(line_other)}
        key_along = "xline" if direction == "inline" else "inline"
        for source in self.sources.get(direction, {}).get(int(number), [int(number)]):
            for row in self.along.get((direction, int(source)), ()):
                s0 = int(c["sample"][row])
                if source == number:
                    t0 = pos[int(c[key_along][row])]
                    ts = slice(t0, t0 + int(c["n_traces"][row]))
                else:  # a neighbouring line's window: the traces of this line within its span of numbers
                    first = int(c[key_along][row])
                    last = first + (int(c["n_traces"][row]) - 1) * int(c["trace_step"][row])
                    ts = slice(int(np.searchsorted(line_other, first, "left")),
                               int(np.searchsorted(line_other, last, "right")))
                    if ts.stop <= ts.start:
                        continue
                yield int(row), ts, slice(s0, s0 + int(c["n_samples"][row]))
        # windows of the other direction cross this line in one trace (if their span contains it)
        across = self.by_direction["xline" if direction == "inline" else "inline"]
        if not len(across):
            return
        key_line = "inline" if direction == "inline" else "xline"
        first = c[key_line][across].astype(np.int64)
        last = first + (c["n_traces"][across].astype(np.int64) - 1) * c["trace_step"][across].astype(np.int64)
        crossing = "xline" if direction == "inline" else "inline"
        for row in across[(first <= number) & (number <= last)]:
            cross = int(c[key_along][row])
            s0 = int(c["sample"][row])
            for other in self.covers.get(crossing, {}).get(cross, [cross]):
                if other in pos:
                    yield int(row), slice(pos[other], pos[other] + 1), slice(s0, s0 + int(c["n_samples"][row]))


def _line_windows(windows, direction: str, number: int, line_other: np.ndarray) -> Iterator[tuple[int, slice, slice]]:
    """(row, trace slice in the line, sample slice) of every window that covers part of the line; ``windows`` is a
    DataFrame (index 0..n-1) or a :class:`WindowIndex` of one."""
    index = windows if isinstance(windows, WindowIndex) else WindowIndex(windows.reset_index(drop=True))
    return index.spans(direction, number, line_other)


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
def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, stop)`` of each run of True in ``mask``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


@dataclasses.dataclass(frozen=True)
class _LinePainter:
    """The windows' clusters and scores of one survey, painted onto one line at a time; with ``units`` > 0 each
    line's map is its ``units`` stratigraphic units (:func:`seis_assets.core.stratigraphy.unit_map`) instead of the
    winning clusters, and with ``tie_lines`` > 0 a cube's inlines are cut together with their neighbours."""

    survey: Survey
    windows: WindowIndex
    clusters: np.ndarray
    scores: np.ndarray | None
    k: int
    units: int = 0
    #: windows were left out (corrupt traces, dead windows): samples no window covers are expected, and get no
    #: class (-1)
    gaps: bool = False
    #: a cube's inline is cut into units with the mean character profile of itself and this many inlines on each
    #: side (:func:`seis_assets.core.stratigraphy.cut_profiles`); 0: each line on its own
    tie_lines: int = 0
    #: inline -> its one run of live traces and what its units are cut from, for the inlines around the last one
    #: painted (the labels pass paints the inlines in order, so each is profiled once)
    _profiles: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: inline -> its tied cuts, kept for every inline (a few numbers each), so a page painted later gets the labels'
    _cuts: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    #: inline -> its section and votes, read ahead of its turn to profile it, until it is painted
    _read_ahead: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def _votes(self, direction: str, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, LineVotes]:
        """``(section, trace indices, other numbers, votes)`` of one line, traces without data given no class."""
        survey, info = self.survey, self.survey.info
        section, idx = survey.read_line(direction, number, keep_corrupt=self.gaps)
        other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
        votes = count_votes(self.windows, self.clusters, self.scores, self.k, len(idx), info.n_samples, direction,
                            number, other, keep_shares=self.units > 0)
        if not self.gaps and (votes.cluster_map < 0).any():
            raise RuntimeError(f"{info.path}: {direction} {number} has samples no window covers")
        # a trace without data (corrupt: not finite; dead: one value throughout) gets no class, even where a
        # window or a neighbouring line's windows reach over it
        bad = ~live_traces(section)
        if bad.any():
            votes.cluster_map[bad] = -1
            votes.confidence[bad] = np.nan
            if votes.score_map is not None:
                votes.score_map[bad] = np.nan
            if votes.shares is not None:
                votes.shares[:, bad] = 0
        return section, idx, other, votes

    def paint(self, direction: str, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, LineVotes]:
        """``(section, trace indices, other numbers, votes)`` of one line; every sample covered unless ``gaps``."""
        ties = self.units and self._ties(direction)
        ahead = self._read_ahead.pop(number, None) if ties else None
        section, idx, other, votes = ahead or self._votes(direction, number)
        if not self.units:
            return section, idx, other, votes
        units = np.full(votes.cluster_map.shape, -1, dtype=np.int16)
        tied = self._tied_profile(direction, number, section, other, votes) if ties else None
        if tied is not None:
            first, stop, levels = tied[:3]
            units[first:stop] = units_at(levels, self._tied_cuts(number))
            self._forget_profiles(number)
        else:  # each run of neighbouring traces on its own: no layer is followed across a gap
            for first, stop in line_runs(other):
                if stop - first < 2:
                    continue  # a lone trace has no dip: no unit, as unit_map does between corrupt traces
                part = None if votes.shares is None else votes.shares[:, first:stop]
                units[first:stop] = unit_map(section[first:stop], self.units, part)
        return section, idx, other, dataclasses.replace(votes, cluster_map=units, shares=None)

    def _ties(self, direction: str) -> bool:
        """Whether this line's units are cut together with neighbouring inlines'."""
        return (self.tie_lines > 0 and direction == "inline" and section_direction(self.survey.info) == "inline"
                and len(self.survey.lines("inline")) > 1)

    def _tied_profile(self, direction: str, number: int, section=None, other=None, votes=None):
        """``(first, stop, levels, profile, count, crosslines)`` of an inline whose live traces form one run of
        neighbouring traces (:func:`seis_assets.core.stratigraphy.line_profile`; ``crosslines``: the run's
        traces' numbers), else None (its runs are cut on their own)."""
        if number in self._profiles:
            return self._profiles[number]
        read_ahead = section is None
        if read_ahead:
            section, idx, other, votes = self._votes(direction, number)
        live = live_traces(section)
        runs = [(a + int(b0), a + int(b1)) for a, b in line_runs(other)
                for b0, b1 in _true_runs(live[a:b])]
        entry = None
        if len(runs) == 1 and runs[0][1] - runs[0][0] >= 2:
            first, stop = runs[0]
            shares = None if votes.shares is None else votes.shares[:, first:stop]
            entry = (first, stop, *line_profile(section[first:stop], shares), np.asarray(other[first:stop]))
        self._profiles[number] = entry
        if read_ahead:  # painted soon: kept, without the shares a tied line's painting does not need
            self._read_ahead[number] = (section, idx, other,
                                        votes if entry is None else dataclasses.replace(votes, shares=None))
        return entry

    def _tied_cuts(self, number: int) -> np.ndarray:
        """The cuts of an inline and its ``tie_lines`` neighbours on each side (those profiled as one run) cut
        together; computed once per inline."""
        if number in self._cuts:
            return self._cuts[number]
        lines = self.survey.lines("inline")
        at = lines.index(number)
        near = lines[max(at - self.tie_lines, 0): at + self.tie_lines + 1]
        _, _, levels, profile, count, xlines = self._tied_profile("inline", number)
        profiles, counts = [profile], [count]
        for n in near:
            entry = self._tied_profile("inline", n) if n != number else None
            if entry is None:
                continue
            common, mine, theirs = np.intersect1d(xlines, entry[5], assume_unique=True, return_indices=True)
            if len(common):  # the neighbour's profile read at this line's levels, over the traces both have
                at_level = level_correspondence(levels[mine], entry[2][theirs], len(profile))
                profiles.append(entry[3][at_level])
                counts.append(entry[4][at_level])
        cuts = cut_profiles(profiles, counts, self.units)
        self._cuts[number] = cuts
        return cuts

    def _forget_profiles(self, number: int) -> None:
        """Drop the profiles and read-ahead lines the inlines after ``number`` do not need: memory stays a few lines'."""
        position = {n: i for i, n in enumerate(self.survey.lines("inline"))}
        at = position[number]
        for cache in (self._profiles, self._read_ahead):
            for n in list(cache):
                if not at - self.tie_lines < position[n] <= at + self.tie_lines:
                    del cache[n]

    @property
    def n_classes(self) -> int:
        """Values a map holds: the units, else the clusters."""
        return self.units or self.k

    def label_blocks(self, tally: "_Tally | None" = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(trace indices, cluster index per sample)`` one line at a time (each inline; a file holding one
        crossline: that crossline, :func:`~seis_assets.core.segy.section_direction`), so the labels never sit in
        memory as a cube; ``tally`` counts every line's samples per class and its windows' vote shares on the way."""
        direction = section_direction(self.survey.info)
        for n in self.survey.lines(direction):
            _, idx, other, votes = self.paint(direction, n)
            if tally is not None:
                tally.add(direction, n, other, votes, self.n_classes)
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
    page_lines: int = 0,
    gaps: bool = False,
    line_step: int = 1,
    tie_lines: int = DEFAULT_TIE_LINES,
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
    keep_maps : return every painted line's cluster map (memory grows with the survey: for small surveys and tests)
    units : 0, or map each line's ``units`` stratigraphic units (layers followed along the reflectors, cut where
        their character and the clusters' vote shares change; :mod:`seis_assets.core.stratigraphy`) instead of the
        winning cluster; the legend names ``unit i`` from the top, the windows keep their clusters. A cube's units
        are cut along its inlines, and its crossline pages show those (the labels volume's crosslines)
    page_lines : at most this many PDF pages per direction, evenly spaced lines, first and last included (0: every
        line); the labels SEG-Y and the counts always cover every line
    gaps : windows were left out (corrupt traces, :mod:`seis_assets.core.window_features`): samples no window covers
        get no class (-1 in the labels SEG-Y, blank in the figures) instead of stopping the map
    line_step : the windows were cut on every ``line_step``-th line only
        (:func:`seis_assets.core.segy_windows.picked_lines`): each line between takes the votes of the windows of
        its nearest picked line(s) (:func:`seis_assets.core.segy_windows.line_sources`)
    tie_lines : with ``units`` on a cube, each inline is cut with the mean character profile of itself and this many
        inlines on each side (:func:`seis_assets.core.stratigraphy.cut_profiles`), so its unit boundaries do not
        step from one inline to the next; an inline whose live traces form more than one run is cut run by run, on
        its own. 0: every line on its own; a 2-D line or a crossline file is always cut on its own

    Returns
    -------
    dict with ``files`` (name -> path), ``legend`` (DataFrame), ``maps`` ({(direction, number): (cluster_map,
    line_other)} when ``keep_maps``: every inline, or the one crossline of a file that holds a crossline,
    :func:`~seis_assets.core.segy.section_direction`, and the pages' as drawn), ``confidence`` ({(direction,
    number): vote share per sample} when ``keep_maps``), ``category_share`` (share of samples per category over the
    survey) and ``assignments`` (the rows of section_assignments.csv)
    """
    out = UPath(str(out_dir))
    info = survey.info
    windows = windows.reset_index(drop=True)
    clusters = np.asarray(clusters, dtype=np.int64)
    if units and cluster_to_category:
        raise ValueError("units map clusters without categories: pass an empty cluster_to_category")
    legend = unit_legend(units) if units else legend_table(dict(cluster_to_category), k)
    sources = None
    if line_step > 1:
        sources = {d: line_sources(survey.lines(d), line_step) for d in windows["direction"].unique()}
    if tie_lines < 0:
        raise ValueError(f"tie_lines must be >= 0 (0: each line on its own), got {tie_lines}")
    painter = _LinePainter(survey, WindowIndex(windows, sources), clusters, scores, k, units, gaps, tie_lines)
    direction = section_direction(info)
    pages = [(direction, n) for n in page_selection(survey.lines(direction), page_lines)]
    if map_xlines and direction == "inline" and is_grid(info):
        pages += [("xline", n) for n in page_selection(info.xlines, page_lines)]
    by = "unit" if units else "category" if cluster_to_category else "cluster"
    # a unit map is cut along each inline: its crossline pages are gathered from the inlines as the labels are written
    crossline_units = None
    if units and direction == "inline":
        crossline_units = _CrosslineUnits(survey, [n for d, n in pages if d == "xline"])
    tally = _Tally(len(windows), painter.n_classes, keep_maps, crossline_units)
    files = {}
    if is_mdio(info.path):  # an MDIO survey's labels: a store with its geometry, the classes as variable "facies"
        files["facies_labels.mdio"] = write_mdio_labels(info.path, painter.label_blocks(tally), variable="facies",
                                                        dest=str(out / "facies_labels.mdio"))
    else:
        files["facies_labels.sgy"] = write_like(info.path, out / "facies_labels.sgy", painter.label_blocks(tally),
                                                iline_byte=info.iline_byte, xline_byte=info.xline_byte)
    files.update(_write_map_pages(painter, legend, pages, out, by, crossline_units, tally.maps if keep_maps else None))
    counts, maps, shares, confidence = tally.counts, tally.maps, tally.confidence, tally.window_shares.mean()
    files["facies_legend.csv"] = atomic_write_bytes(out / "facies_legend.csv", legend.to_csv(index=False).encode())
    table = _assignment_table(windows, clusters, confidence, scores, cluster_to_category, extra_columns)
    files["section_assignments.csv"] = atomic_write_bytes(
        out / "section_assignments.csv", table.to_csv(index=False).encode()
    )
    share = _category_share(legend["category"].tolist(), counts[: painter.n_classes])
    return {"files": files, "legend": legend, "maps": maps, "confidence": shares, "category_share": share,
            "assignments": table}


def page_selection(lines, n_max: int) -> list[int]:
    """At most ``n_max`` of ``lines``, evenly spaced, first and last included (all of them when ``n_max`` is 0)."""
    lines = list(lines)
    if not n_max or len(lines) <= n_max:
        return lines
    picks = np.unique(np.linspace(0, len(lines) - 1, max(n_max, 1)).round().astype(int))
    return [lines[i] for i in picks]


class _WindowShares:
    """Each window's mean vote share over the samples it votes on, summed line by line as the lines are painted
    (every sample of an inline window lies on its inline, and with a line step on the inlines between too; a file
    holding one crossline is painted along it, where its windows lie)."""

    def __init__(self, n: int):
        self.total = np.zeros(n, dtype=np.float64)
        self.count = np.zeros(n, dtype=np.int64)

    def add(self, votes: LineVotes) -> None:
        for row, ts, ss in votes.spans:
            part = votes.confidence[ts, ss]
            finite = np.isfinite(part)  # NaN only on corrupt traces a neighbouring line's window reaches over
            if not finite.all():
                part = part[finite]
            self.total[row] += float(part.sum())
            self.count[row] += part.size

    def mean(self) -> np.ndarray:
        if (self.count == 0).any():
            raise RuntimeError(f"{int((self.count == 0).sum())} windows lie on no painted line")
        return self.total / self.count


class _Tally:
    """What the labels pass counts over every painted line: samples per class (``counts[k]``: samples with no class),
    each window's vote shares, and with ``keep_maps`` each line's maps."""

    def __init__(self, n_windows: int, n_classes: int, keep_maps: bool,
                 crossline_units: "_CrosslineUnits | None" = None):
        self.counts = np.zeros(n_classes + 1, dtype=np.int64)
        self.window_shares = _WindowShares(n_windows)
        self.keep_maps = keep_maps
        self.crossline_units = crossline_units
        self.maps: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self.confidence: dict[tuple[str, int], np.ndarray] = {}

    def add(self, direction: str, number: int, other: np.ndarray, votes: LineVotes, n_classes: int) -> None:
        values = votes.cluster_map.ravel().astype(np.int64)
        self.counts += np.bincount(np.where(values < 0, n_classes, values), minlength=n_classes + 1)[: n_classes + 1]
        self.window_shares.add(votes)
        if self.crossline_units is not None:
            self.crossline_units.add(number, other, votes.cluster_map)
        if self.keep_maps:
            self.maps[(direction, number)] = (votes.cluster_map, other)
            self.confidence[(direction, number)] = votes.confidence


class _CrosslineUnits:
    """The units of chosen crosslines of a cube, gathered from the inlines as the labels pass paints them.

    Units are cut along each inline (:meth:`_LinePainter.paint`), so a crossline page must show the inlines' units,
    the labels volume's crossline, not units cut along the crossline itself. The gathered classes (crosslines x
    inlines x samples, int16) are held in an unnamed temporary file, so a PDF of every crossline of a large cube
    does not hold the volume in memory.
    """

    def __init__(self, survey: Survey, xlines: list[int]):
        self.page = {int(x): j for j, x in enumerate(xlines)}
        inlines = survey.lines("inline")
        self.inline_row = {int(n): i for i, n in enumerate(inlines)}
        self.classes = None
        if xlines:
            shape = (len(xlines), len(inlines), survey.info.n_samples)
            self._file = tempfile.TemporaryFile()  # gone when closed: nothing is left on disk
            self.classes = np.memmap(self._file, dtype=np.int16, mode="w+", shape=shape)
            self.classes[:] = -1

    def __contains__(self, xline: int) -> bool:
        return int(xline) in self.page

    def add(self, inline: int, xlines: np.ndarray, cluster_map: np.ndarray) -> None:
        """One painted inline: ``xlines`` its traces' crossline numbers, ``cluster_map`` (n_traces, n_samples)."""
        if self.classes is None:
            return
        row = self.inline_row[int(inline)]
        for t, x in enumerate(np.asarray(xlines).tolist()):
            j = self.page.get(int(x))
            if j is not None:
                self.classes[j, row] = cluster_map[t]

    def line(self, xline: int, inlines: np.ndarray) -> np.ndarray:
        """``(n_traces, n_samples)`` classes of crossline ``xline`` whose traces lie on ``inlines``, in that order."""
        rows = [self.inline_row[int(n)] for n in np.asarray(inlines).tolist()]
        return np.asarray(self.classes[self.page[int(xline)], rows])


def _write_map_pages(painter: _LinePainter, legend: pd.DataFrame, pages: list[tuple[str, int]], out: UPath,
                     by: str, crossline_units: _CrosslineUnits | None = None,
                     maps: dict | None = None) -> dict[str, str]:
    """``facies_map.pdf`` (one page per line of ``pages``), ``facies_map.png`` and ``anomaly_map.png`` (the first
    page); returns the files written. Crossline pages in ``crossline_units`` show its gathered units; ``maps``, when
    given, gets each page's ``(cluster_map, line_other)``."""
    info = painter.survey.info
    first_png = first_anomaly = None
    with atomic_path(out / "facies_map.pdf") as tmp_pdf, tmp_pdf.open("wb") as pdf_handle, PdfPages(pdf_handle) as pdf:
        for direction, number in pages:
            if direction == "xline" and crossline_units is not None and number in crossline_units:
                section, idx = painter.survey.read_line(direction, number, keep_corrupt=painter.gaps)
                other = painter.survey.trace_inline[idx]
                cluster_map = crossline_units.line(number, other)
            else:
                section, idx, other, votes = painter.paint(direction, number)
                cluster_map = votes.cluster_map
            if maps is not None:
                maps[(direction, number)] = (cluster_map, other)
            fig = facies_map_figure(section, cluster_map, legend, info, direction, number, other, by=by)
            pdf.savefig(fig, dpi=DPI)
            if first_png is None:  # the first page is a line's own (``pages`` starts with the lines painted)
                first_png = _png_bytes(fig)
                first_anomaly = _png_bytes(anomaly_map_figure(section, votes.score_map, info, direction, number, other,
                                                              confidence=votes.confidence))
    files = {"facies_map.pdf": str(out / "facies_map.pdf")}
    files["facies_map.png"] = atomic_write_bytes(out / "facies_map.png", first_png)
    files["anomaly_map.png"] = atomic_write_bytes(out / "anomaly_map.png", first_anomaly)
    return files


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
