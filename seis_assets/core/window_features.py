"""The windows of a survey with their QC attributes and backbone features, made line by line and cached per line.

A 3-D survey is too large to hold: its windows are made one line at a time (read, cut, QC, forward pass) and
streamed into one Parquet table (:func:`write_survey_windows`), so memory does not grow with the number of lines.
Each line's rows are also kept in a :class:`WindowCache` under a key of everything they depend on: the line's
samples (a content hash, so a changed file is never served stale rows), its position (direction, number, the
crossline/inline number of every trace), the window spec (size, stride, scaling and its scale) and the feature
identity (backbone, weights, input size, precision; :data:`seis_assets.core.feature_table.CACHE_KEYS`). A second
run over the same survey (after a new model generation, or after a run that was killed halfway) re-uses every line
already made and runs the network only on the others.

A trace whose samples are not finite (NaN, Inf) is *corrupt*: it is reported with its inline and crossline
(:class:`CorruptTrace`), every window that contains it is left out (never filled with made-up samples), and the
rest of the line is mapped; the samples no remaining window covers get no class in the map. A *dead* window (one
value throughout: zero traces padding the survey's outline, a muted zone;
:func:`seis_assets.core.segy_windows.dead_windows`) holds no seismic to classify: it is left out the same way and
counted (:func:`read_dead_windows`), never given features of a blank image. Windows never span a gap in a line's
trace numbering (an irregular outline, missing CDPs): they are cut along each run of neighbouring traces, and a run
too short for a window gets none and is counted (:func:`read_short_runs`); its samples get no class.

Where the lines' work runs is a *runner*: :func:`local_runner` here, or
:func:`seis_assets.core.distributed.dask_line_runner` on a Dask cluster. A runner takes :class:`LineJob` s, which
carry the line's samples, so workers need no access to the file. No Dagster imports here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from seis_assets.core.feature_table import CACHE_KEYS
from seis_assets.core.qc import QC_VERSION, qc_table
from seis_assets.core.segy import SegyError
from seis_assets.core.segy_windows import (
    WINDOW_COLUMNS, LineCut, line_cut, picked_lines, scale_window, window_directions, window_name, window_position,
)
from seis_assets.core.storage import atomic_path

__all__ = [
    "WindowSpec",
    "CorruptTrace",
    "LineJob",
    "WindowCache",
    "SurveyWindowsReport",
    "corrupt_traces",
    "survey_line_jobs",
    "line_windows_table",
    "local_runner",
    "write_survey_windows",
    "read_corrupt_traces",
    "read_dead_windows",
    "read_short_runs",
    "read_line_step",
]

LOG = logging.getLogger(__name__)

#: Version of a cached line's layout: rows written by another version are made again, never read.
#: 2: dead windows are left out (version 1 kept them under ``survey`` scaling), and no window spans a gap in the
#: line's trace numbering (version 1 joined the traces on both sides of a gap).
LINE_TABLE_VERSION = 2
#: Key of the survey_windows Parquet metadata that lists the corrupt traces (JSON).
CORRUPT_METADATA_KEY = "corrupt_traces"
#: Key of the survey_windows Parquet metadata that holds the line step the windows were cut with.
LINE_STEP_METADATA_KEY = "line_step"
#: Key of the survey_windows Parquet metadata that holds how many dead windows were left out.
DEAD_METADATA_KEY = "dead_windows"
#: Key of the survey_windows Parquet metadata that holds the runs of traces too short for a window (JSON: runs, traces).
SHORT_METADATA_KEY = "short_runs"
#: Stages timed by :class:`SurveyWindowsReport` (seconds summed over lines).
STAGES = ("read", "cut", "qc", "forward", "write")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """How windows are cut and scaled: ``n_traces`` x ``n_samples`` every ``stride``; ``scale`` is the survey-wide
    amplitude of ``scaling="survey"`` (None for ``per_window``)."""

    n_traces: int
    n_samples: int
    stride: int
    scaling: str
    scale: float | None = None


@dataclasses.dataclass(frozen=True)
class CorruptTrace:
    """A trace whose windows were left out: where it is and why."""

    direction: str
    inline: int
    xline: int
    reason: str


@dataclasses.dataclass(frozen=True)
class LineJob:
    """One line's samples and position: everything a worker needs to make the line's windows."""

    survey: str
    path: str
    direction: str
    number: int
    data: np.ndarray  # (n_traces, n_samples) float32, on the grid windows are cut from; corrupt traces as read
    other: np.ndarray  # (n_traces,) the crossline numbers of an inline's traces / the inline numbers of a crossline's
    t0_ms: float
    sample_interval_ms: float
    corrupt: tuple[int, ...] = ()  # positions in the line of corrupt traces

    def key(self, spec: WindowSpec, identity: dict) -> str:
        """The cache key of this line's rows (see the module docstring)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.data, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.other, dtype=np.int64).tobytes())
        fields = {
            "line": [self.direction, int(self.number)], "spec": dataclasses.asdict(spec),
            "grid": [self.t0_ms, self.sample_interval_ms], "qc": QC_VERSION, "layout": LINE_TABLE_VERSION,
            "identity": {k: str(identity.get(k)) for k in sorted(CACHE_KEYS)},
        }
        h.update(json.dumps(fields, sort_keys=True, default=str).encode())
        return h.hexdigest()[:32]


def corrupt_traces(data: np.ndarray) -> list[tuple[int, str]]:
    """``(position in the line, reason)`` of each trace of ``data`` (n_traces, n_samples) with samples that are not
    finite."""
    bad = ~np.isfinite(data)
    found = []
    for t in np.flatnonzero(bad.any(axis=1)):
        n_nan, n_inf = int(np.isnan(data[t]).sum()), int(np.isinf(data[t]).sum())
        what = ", ".join(p for p in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} Inf" if n_inf else "") if p)
        found.append((int(t), f"{what} of {data.shape[1]} samples"))
    return found


def survey_line_jobs(survey, directions: Iterable[str], line_step: int = 1) -> Iterator[tuple[LineJob, bool]]:
    """Every line of ``survey`` along ``directions``, read one at a time (corrupt traces kept and listed), with
    whether it gets windows (:func:`seis_assets.core.segy_windows.picked_lines` with ``line_step``; every line is
    read, so the corrupt traces of the lines between are reported too)."""
    info = survey.info
    for direction in directions:
        picked = set(picked_lines(survey.lines(direction), line_step))
        for number in survey.lines(direction):
            data, idx = survey.read_line(direction, number, keep_corrupt=True)
            other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
            yield LineJob(
                info.name, info.path, direction, int(number), data, np.asarray(other, dtype=np.int64), info.t0_ms,
                info.sample_interval_ms, tuple(t for t, _ in corrupt_traces(data)),
            ), number in picked


def job_corrupt_traces(job: LineJob) -> list[CorruptTrace]:
    """The corrupt traces of one line, by inline and crossline."""
    reasons = dict(corrupt_traces(job.data))
    out = []
    for t in job.corrupt:
        il, xl = (job.number, int(job.other[t])) if job.direction == "inline" else (int(job.other[t]), job.number)
        out.append(CorruptTrace(job.direction, int(il), int(xl), reasons.get(t, "not finite")))
    return out


def _line_cut(job: LineJob, spec: WindowSpec) -> LineCut:
    """Where the windows of a line go (:func:`~seis_assets.core.segy_windows.line_cut`): along its runs, around its
    corrupt traces, without its dead windows."""
    return line_cut(job.data, job.other, spec.n_traces, spec.n_samples, spec.stride, corrupt=job.corrupt,
                    path=job.path)


def line_windows_table(job: LineJob, spec: WindowSpec, embedder, times: dict | None = None) -> pd.DataFrame:
    """The rows of one line: window position (:data:`WINDOW_COLUMNS`), ``qc_*`` attributes of the raw amplitudes,
    ``features`` (the backbone's vector). Windows containing a corrupt trace, dead windows, and runs of traces too
    short for a window are left out.

    ``embedder`` is a :class:`seis_assets.core.predict.Embedder`; ``times`` (optional) accumulates seconds per stage.
    """
    times = times if times is not None else {}
    t = time.perf_counter()
    cut = _line_cut(job, spec)
    positions = [(window_position(job.survey, job.direction, job.number, job.other[t0], s0,
                                  job.t0_ms + s0 * job.sample_interval_ms, spec.n_traces, spec.n_samples,
                                  cut.trace_step), t0, s0) for t0, s0 in cut.starts]
    raws = [job.data[t0 : t0 + spec.n_traces, s0 : s0 + spec.n_samples].T for _, t0, s0 in positions]
    names = [window_name(job.path, p) for p, _, _ in positions]
    scaled = [scale_window(w, spec.scaling, spec.scale, name=n) for w, n in zip(raws, names)]
    t = _tick(times, "cut", t)
    qc = qc_table(names, raws)
    t = _tick(times, "qc", t)
    if scaled:
        step = embedder.batch() if embedder.backbone.takes_images else len(scaled)
        stack = np.stack(scaled)
        X = np.concatenate([embedder.features(stack[i : i + step]) for i in range(0, len(stack), step)])
    else:
        X = np.zeros((0, int(embedder.identity["dim"])), dtype=np.float32)
    _tick(times, "forward", t)
    table = pd.DataFrame([p for p, _, _ in positions], columns=WINDOW_COLUMNS)
    for column in qc.columns.drop("path"):
        table[f"qc_{column}"] = qc[column].to_numpy()
    table["features"] = list(X.astype(np.float32))
    return table


def _tick(times: dict, stage: str, since: float) -> float:
    now = time.perf_counter()
    times[stage] = times.get(stage, 0.0) + now - since
    return now


class WindowCache:
    """Each line's rows as a Parquet file ``<folder>/<survey>/<direction>_<number>_<key>.parquet``, written
    atomically (a killed run leaves whole files or none)."""

    def __init__(self, folder):
        self.folder = UPath(str(folder))

    def path(self, job: LineJob, key: str) -> UPath:
        return self.folder / job.survey / f"{job.direction}_{job.number}_{key}.parquet"

    def get(self, job: LineJob, key: str) -> pd.DataFrame | None:
        p = self.path(job, key)
        if not p.exists():
            return None
        with p.open("rb") as fh:
            return pq.read_table(fh).to_pandas()

    def put(self, job: LineJob, key: str, table: pd.DataFrame) -> None:
        p = self.path(job, key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p) as tmp, tmp.open("wb") as fh:
            pq.write_table(pa.Table.from_pandas(table, preserve_index=False), fh)


#: A runner takes ``(job, cached rows or None)`` in line order and yields ``(job, rows, seconds per stage, re-used)``
#: in the same order, making the rows of every job that has none.
LineRunner = Callable[[Iterable[tuple[LineJob, "pd.DataFrame | None"]]], Iterator[tuple[LineJob, pd.DataFrame, dict, bool]]]


def local_runner(spec: WindowSpec, embedder_factory: Callable[[], Any]) -> LineRunner:
    """Make each line's rows here, in order; the embedder is built on the first line that needs it."""
    state: dict[str, Any] = {}

    def run(items):
        for job, cached in items:
            if cached is not None:
                yield job, cached, {}, True
                continue
            if "embedder" not in state:
                state["embedder"] = embedder_factory()
            times: dict = {}
            yield job, line_windows_table(job, spec, state["embedder"], times), times, False

    return run


@dataclasses.dataclass
class SurveyWindowsReport:
    """What :func:`write_survey_windows` did."""

    n_windows: int = 0
    lines: int = 0
    lines_reused: int = 0
    #: lines read only for their corrupt traces: with a line step, the windows of the nearest picked lines vote there
    lines_between: int = 0
    line_step: int = 1
    #: the directions the windows were cut along (:func:`~seis_assets.core.segy_windows.window_directions`)
    directions: tuple[str, ...] = ("inline",)
    corrupt: list[CorruptTrace] = dataclasses.field(default_factory=list)
    #: windows left out because they are dead (one value throughout), and on how many lines
    dead_windows: int = 0
    lines_with_dead_windows: int = 0
    #: runs of traces too short for a window (gaps in a line's numbering, short lines), and their traces
    short_runs: int = 0
    short_run_traces: int = 0
    short_examples: list[str] = dataclasses.field(default_factory=list)
    seconds: dict = dataclasses.field(default_factory=lambda: {s: 0.0 for s in STAGES})

    def metadata(self) -> dict:
        return {
            "n_windows": self.n_windows, "lines": self.lines, "lines_reused": self.lines_reused,
            "lines_made": self.lines - self.lines_reused, "lines_between": self.lines_between,
            "line_step": self.line_step, "directions": list(self.directions), "corrupt_traces": len(self.corrupt),
            "dead_windows": self.dead_windows, "lines_with_dead_windows": self.lines_with_dead_windows,
            "short_runs": self.short_runs,
            "short_run_traces": self.short_run_traces,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def write_survey_windows(
    survey,
    directions: Iterable[str],
    spec: WindowSpec,
    identity: dict,
    dest,
    runner: LineRunner,
    cache: WindowCache | None = None,
    identity_columns: dict | None = None,
    logger: logging.Logger | None = None,
    line_step: int = 1,
) -> SurveyWindowsReport:
    """Make (or re-use) every line's windows and stream them into one Parquet table at ``dest``, atomically.

    The table holds the rows of :func:`line_windows_table` in line order, plus ``identity_columns`` (constant
    columns such as ``path``, ``backbone``); its key-value metadata lists the corrupt traces
    (:func:`read_corrupt_traces`) and the ``line_step`` (:func:`read_line_step`): with a step above 1 only every
    ``line_step``-th line (and the last) gets windows, and the map votes them onto the lines between. A file that
    holds one crossline is cut along it whatever ``directions`` asks
    (:func:`~seis_assets.core.segy_windows.window_directions`). Memory holds the lines in flight, never the survey.
    """
    log = logger or LOG
    asked = tuple(directions)
    directions = window_directions(survey.info, asked)
    if directions != asked:
        log.info(f"{survey.info.path} holds one crossline ({survey.info.xlines[0]}) across "
                 f"{len(survey.info.inlines)} inlines: windows along it, not along {', '.join(asked)}")
    report = SurveyWindowsReport(line_step=line_step, directions=directions)
    if line_step > 1:
        log.info(f"line step {line_step}: windows on one line in {line_step} (and the last); each line between takes "
                 "the votes of its nearest cut line's windows")
    keys: dict[tuple[str, int], str] = {}

    def with_cache() -> Iterator[tuple[LineJob, pd.DataFrame | None]]:
        t = time.perf_counter()
        for job, picked in survey_line_jobs(survey, directions, line_step):
            for c in job_corrupt_traces(job):
                report.corrupt.append(c)
                log.warning(f"{job.path}: corrupt trace at inline {c.inline}, crossline {c.xline} ({c.reason}): "
                            + ("the windows that contain it are left out" if picked else "it gets no class"))
            if not picked:
                report.lines_between += 1
                report.seconds["read"] += time.perf_counter() - t
                t = time.perf_counter()
                continue
            report.lines += 1
            cut = _line_cut(job, spec)  # counted here: a re-used or remote line's rows do not say
            report.dead_windows += cut.dead
            report.lines_with_dead_windows += bool(cut.dead)
            for first, stop in cut.short:
                report.short_runs += 1
                report.short_run_traces += stop - first
                if len(report.short_examples) < 5:
                    report.short_examples.append(f"{job.direction} {job.number} traces {int(job.other[first])}-"
                                                 f"{int(job.other[stop - 1])}")
            key = keys[(job.direction, job.number)] = job.key(spec, identity)
            cached = cache.get(job, key) if cache is not None else None
            report.seconds["read"] += time.perf_counter() - t
            yield job, cached
            t = time.perf_counter()

    def rows() -> Iterator[pd.DataFrame]:
        for job, table, times, reused in runner(with_cache()):
            for stage, s in times.items():
                report.seconds[stage] = report.seconds.get(stage, 0.0) + s
            if reused:
                report.lines_reused += 1
            elif cache is not None:
                cache.put(job, keys[(job.direction, job.number)], table)
            yield table

    _stream_parquet(rows(), dest, identity_columns or {}, report, log, survey.info.path)
    if report.dead_windows:
        log.warning(f"{survey.info.path}: {report.dead_windows} dead windows (one value throughout: zero traces padding "
                    f"the survey, a muted zone) on {report.lines_with_dead_windows} lines are left out; the samples "
                    "only they cover get no class")
    if report.short_runs:
        log.warning(f"{survey.info.path}: {report.short_runs} runs of neighbouring traces ({report.short_run_traces} "
                    f"traces) are narrower than the window's {spec.n_traces} traces and get no class, e.g. "
                    + "; ".join(report.short_examples))
    return report


def _stream_parquet(tables: Iterator[pd.DataFrame], dest, constants: dict, report: SurveyWindowsReport, log,
                    source: str) -> None:
    writer = None
    with atomic_path(UPath(str(dest))) as tmp, tmp.open("wb") as fh:
        for table in tables:
            if not len(table):
                continue
            t = time.perf_counter()
            for key, value in constants.items():
                table[key] = value
            arrow = pa.Table.from_pandas(table, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(fh, arrow.schema)
            writer.write_table(arrow.cast(writer.schema))
            report.n_windows += len(table)
            report.seconds["write"] += time.perf_counter() - t
            if report.lines % 50 == 0:
                log.info(f"{report.lines} lines, {report.n_windows} windows ({report.lines_reused} lines re-used)")
        if writer is None:
            raise SegyError(source, "the survey gave no window: every window contains a corrupt trace "
                                    f"({len(report.corrupt)} corrupt traces) or is dead ({report.dead_windows} dead "
                                    f"windows), or every run of traces is narrower than the window "
                                    f"({report.short_runs} runs" + "".join(f", e.g. {e}" for e in report.short_examples[:1])
                                    + ")")
        writer.add_key_value_metadata({
            CORRUPT_METADATA_KEY: json.dumps([dataclasses.asdict(c) for c in report.corrupt]),
            LINE_STEP_METADATA_KEY: json.dumps(report.line_step),
            DEAD_METADATA_KEY: json.dumps(report.dead_windows),
            SHORT_METADATA_KEY: json.dumps({"runs": report.short_runs, "traces": report.short_run_traces}),
        })
        writer.close()


def _table_metadata(table_path, key: str):
    with UPath(str(table_path)).open("rb") as fh:
        meta = pq.ParquetFile(fh).metadata.metadata or {}
    raw = meta.get(key.encode())
    return json.loads(raw) if raw else None


def read_corrupt_traces(table_path) -> list[CorruptTrace]:
    """The corrupt traces :func:`write_survey_windows` recorded in the table at ``table_path`` ([] if none)."""
    return [CorruptTrace(**c) for c in _table_metadata(table_path, CORRUPT_METADATA_KEY) or []]


def read_dead_windows(table_path) -> int:
    """How many dead windows :func:`write_survey_windows` left out of the table at ``table_path`` (0 for tables
    written before they were counted)."""
    return int(_table_metadata(table_path, DEAD_METADATA_KEY) or 0)


def read_short_runs(table_path) -> dict:
    """``{"runs": n, "traces": m}``: the runs of traces too short for a window that :func:`write_survey_windows`
    left out of the table at ``table_path`` (none for tables written before they were counted)."""
    return _table_metadata(table_path, SHORT_METADATA_KEY) or {"runs": 0, "traces": 0}


def read_line_step(table_path) -> int:
    """The line step :func:`write_survey_windows` cut the table at ``table_path`` with (1 for tables written before
    it was recorded: every line then had windows)."""
    return int(_table_metadata(table_path, LINE_STEP_METADATA_KEY) or 1)
