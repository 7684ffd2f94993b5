"""Seismic quality control: is this patch damaged? Attributes from the raw amplitudes, scored against training.

Acquisition and processing artefacts are not geology, and per-patch scaling to [-1, 1] (and a CNN trained on
photographs) hides most of them. These attributes are computed from the array as stored in the file, before any
scaling, and each one is invariant to a change of gain and offset (so F3's 0..1 and LANDMASS's -1..1 storage give
the same numbers):

``dead_traces``
    Share of traces (columns) that are dead or constant: trace standard deviation below ``DEAD_RELATIVE`` (5 %)
    of the patch's median trace standard deviation.
``clipped``
    Share of samples at the clip level: within ``CLIP_TOLERANCE`` (0.1 %) of the patch range from its minimum or
    maximum. A clean patch has one sample at each extreme; clipping piles many samples onto them.
``spikes``
    Share of samples that are spikes: the robust z-score (median / 1.4826 MAD of the patch) of the second
    derivative exceeds ``SPIKE_Z`` (8) both along the trace and across traces, and the amplitude's own robust z
    exceeds ``SPIKE_AMPLITUDE_Z`` (2). Band-limited, laterally continuous reflections do not do that; an isolated
    sample does.
``polarity``
    Polarity reversal between neighbouring traces: the correlation of each pair of adjacent traces in a sliding
    window of ``POLARITY_WINDOW`` (11) samples, at lag 0 (allowing a lag of +-1 sample lets a reversed,
    broadband trace correlate positively: benchmarks/anomaly_results.md, "Tried and dropped"); the attribute is the
    longest run of windows with correlation below ``POLARITY_CORRELATION`` (-0.5) on a boundary while a
    neighbouring boundary is positively correlated at the same depth (a dip that shifts events by half a period
    makes every boundary negative), as a share of the trace length.
``noise_burst``
    A jump in high-frequency energy: the part of each trace its two neighbours do not predict (laterally
    continuous reflections cancel), high-passed above ``HIGH_FREQUENCY`` (0.3 cycles/sample, above the seismic
    band; the trace is mirrored first so its ends do not meet in a jump), its energy smoothed over
    ``BURST_WINDOW`` (15 samples x 5 traces); the attribute is the log10 of the largest local energy over the
    patch's mean energy. (Tried and dropped, on real F3: the high-frequency energy's max over its median, and the
    high-frequency share of the local energy; both were as large on clean patches as on patches with a burst.)

Scoring (:class:`QCCalibration`): each attribute is robustly scored against the training patches,
``e = (a - median) / max(q99 - median, floor)``, where median and q99 are the attribute's training median and 99th
percentile and ``floor`` (``FLOORS``) is a physically small amount (1 % of traces, 1 % of samples, ...), so an
attribute that is zero on every training patch still has a scale. ``qc_score`` is the largest ``e``; the attribute
that gave it is ``qc_attribute`` and ``qc_reason`` says it in words (``clipped 14 % of samples``). The artefact
threshold is the 99.5th percentile of the training ``qc_score`` (at least 1), see ``THRESHOLD_QUANTILE``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = [
    "QC_ATTRIBUTES",
    "FLOORS",
    "QCCalibration",
    "qc_attributes",
    "qc_table",
    "qc_table_reusing",
    "QC_VERSION",
    "fit_qc",
    "describe",
]

QC_ATTRIBUTES: tuple[str, ...] = ("dead_traces", "clipped", "spikes", "polarity", "noise_burst")
DEAD_RELATIVE = 0.05
CLIP_TOLERANCE = 1e-3
SPIKE_Z = 8.0
SPIKE_AMPLITUDE_Z = 2.0
POLARITY_WINDOW = 11
POLARITY_CORRELATION = -0.5
HIGH_FREQUENCY = 0.3
BURST_WINDOW = (15, 5)
#: smallest scale of each attribute's score, in the attribute's own units (see the module docstring)
FLOORS = {"dead_traces": 0.01, "clipped": 0.01, "spikes": 0.001, "polarity": 0.05, "noise_burst": 0.1}
QUANTILE = 0.99
#: training quantile of ``qc_score`` that sets the artefact threshold. Higher than ``QUANTILE``: ``qc_score`` is the
#: largest of five attribute scores, and the 99th percentile flagged too many held-out clean F3 patches
#: (benchmarks/anomaly_results.md, "QC false positives on clean real F3").
THRESHOLD_QUANTILE = 0.995


def _as_2d(raw) -> np.ndarray:
    a = np.asarray(raw, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] in (1, 3):
        a = a.mean(axis=2)
    if a.ndim != 2 or min(a.shape) < 3:
        raise ValueError(f"expected a 2-D patch (H, W[, 1 or 3]) with sides >= 3, got shape {np.shape(raw)}")
    if not np.isfinite(a).all():
        raise ValueError("patch contains NaN or Inf")
    return a


def _median(a: np.ndarray) -> float:
    """``np.median`` of a finite array, the same value, from one partial sort (``np.median`` also moves the largest
    element into place to look for NaN, and averages; QC takes six medians of each window)."""
    flat = a.ravel()
    half = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, half)[half])
    p = np.partition(flat, [half - 1, half])
    return float(np.mean(p[half - 1 : half + 1]))


def _robust_z(a: np.ndarray) -> np.ndarray:
    med = _median(a)
    mad = 1.4826 * _median(np.abs(a - med))
    if not mad > 0:
        mad = np.std(a) or 1.0
    return (a - med) / mad


def _dead_traces(a: np.ndarray) -> float:
    s = a.std(axis=0)
    ref = _median(s)
    if not ref > 0:  # more than half of the traces constant
        return float(np.mean(s <= 0) if np.any(s > 0) else 1.0)
    return float(np.mean(s < DEAD_RELATIVE * ref))


def _clipped(a: np.ndarray) -> float:
    lo, hi = float(a.min()), float(a.max())
    tol = CLIP_TOLERANCE * (hi - lo)
    return float(np.mean((a <= lo + tol) | (a >= hi - tol)))


def _spikes(a: np.ndarray) -> float:
    # The three tests in turn, stopping at the first that no sample passes: each robust z costs two medians, and
    # on real windows most have no sample whose curvature along the trace is extreme (the same value either way).
    dz = np.zeros_like(a)
    dz[1:-1] = a[2:] - 2 * a[1:-1] + a[:-2]
    spike = np.abs(_robust_z(dz)) > SPIKE_Z
    if not spike.any():
        return 0.0
    dx = np.zeros_like(a)
    dx[:, 1:-1] = a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]
    spike &= np.abs(_robust_z(dx)) > SPIKE_Z
    if not spike.any():
        return 0.0
    spike &= np.abs(_robust_z(a)) > SPIKE_AMPLITUDE_Z
    return float(np.mean(spike))


def _windowed_corr(x: np.ndarray, y: np.ndarray, w: int, tiny: float) -> np.ndarray:
    f = lambda v: ndimage.uniform_filter1d(v, w, axis=0, mode="nearest")  # noqa: E731
    mx, my = f(x), f(y)
    cxy = f(x * y) - mx * my
    vx, vy = f(x * x) - mx * mx, f(y * y) - my * my
    live = (vx > tiny) & (vy > tiny)  # a dead (constant) window has no correlation: not a reversal
    return np.where(live, cxy / np.sqrt(np.where(live, vx * vy, 1.0)), 0.0)


def _polarity(a: np.ndarray) -> tuple[float, int]:
    """Longest run of strongly negative adjacent-trace correlation (share of trace length), and its boundary."""
    h, w = a.shape
    x = a - a.mean()
    left, right = x[:, :-1], x[:, 1:]
    tiny = 1e-6 * float(np.mean(x * x)) + 1e-300
    c = _windowed_corr(left, right, POLARITY_WINDOW, tiny)
    # a reversal, not a dip: the neighbouring boundary on at least one side is coherent at the same depth
    # (a dip that shifts events by half a period makes every boundary negative)
    coherent = np.zeros_like(c, dtype=bool)
    coherent[:, 1:] |= c[:, :-1] > -POLARITY_CORRELATION
    coherent[:, :-1] |= c[:, 1:] > -POLARITY_CORRELATION
    neg = (c < POLARITY_CORRELATION) & coherent
    run = _longest_runs(neg)
    j = int(np.argmax(run))
    return float(run[j] / h), j


def _longest_runs(flags: np.ndarray) -> np.ndarray:
    """Length of the longest run of True down each column of a boolean (rows, columns) array: each True's distance
    to the last False above it, at most."""
    rows = np.arange(flags.shape[0])[:, None]
    last_false = np.maximum.accumulate(np.where(flags, -1, rows), axis=0)
    return (rows - last_false).max(axis=0)


def _noise_burst(a: np.ndarray) -> float:
    h = a.shape[0]
    x = a - a.mean(axis=0)
    # what neighbouring traces do not predict: laterally continuous reflections (bright, clipped ones too) cancel
    r = np.zeros_like(x)
    r[:, 1:-1] = x[:, 1:-1] - 0.5 * (x[:, :-2] + x[:, 2:])
    r[:, 0], r[:, -1] = r[:, 1], r[:, -2]
    # high-pass along the trace; mirrored so the trace ends do not meet in a jump (no wrap-around energy)
    spec = np.fft.rfft(np.concatenate([r, r[::-1]], axis=0), axis=0)
    spec[np.fft.rfftfreq(2 * h) < HIGH_FREQUENCY] = 0
    hf = np.fft.irfft(spec, n=2 * h, axis=0)[:h]
    energy = ndimage.uniform_filter(hf**2, size=BURST_WINDOW, mode="nearest")
    signal = float(np.mean(x**2))
    if not signal > 0:
        return -12.0  # constant patch: no energy at all (dead_traces reports it)
    return float(np.log10(max(float(energy.max()), 1e-12 * signal) / signal))


def qc_attributes(raw) -> dict:
    """The QC attributes of one patch, from its raw amplitudes (as stored, before any scaling).

    Parameters
    ----------
    raw : array-like (H, W), (H, W, 1) or (H, W, 3), finite

    Returns
    -------
    dict with the :data:`QC_ATTRIBUTES` (floats) and ``polarity_boundary`` (int: the left trace of the boundary
    with the longest reversed run, 0-based).
    """
    a = _as_2d(raw)
    pol, boundary = _polarity(a)
    return {
        "dead_traces": _dead_traces(a),
        "clipped": _clipped(a),
        "spikes": _spikes(a),
        "polarity": pol,
        "noise_burst": _noise_burst(a),
        "polarity_boundary": boundary,
    }


#: Version of the attribute definitions above: a table written by another version is recomputed, never reused.
QC_VERSION = 1
#: What :func:`qc_attributes` returns per patch, in table order.
_VALUE_COLUMNS = [*QC_ATTRIBUTES, "polarity_boundary"]


def qc_table_reusing(
    index: pd.DataFrame, read: Callable[[str], np.ndarray], previous: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, int]:
    """QC rows of every row of ``index`` (``path``, ``split``, ``sha256``), reading only files not in ``previous``.

    A file whose ``sha256`` has a row in ``previous`` (an earlier table of this function, same :data:`QC_VERSION`)
    gets that row's attributes, with its current path and split; the others are read with ``read(path)`` (the raw
    array) and computed. Returns ``(table, n_reused)``; the table's rows follow ``index``.
    """
    columns = _VALUE_COLUMNS
    cached: dict[str, dict] = {}
    if previous is not None and len(previous) and {"sha256", "qc_version", *columns} <= set(previous.columns):
        usable = previous[previous["qc_version"] == QC_VERSION].drop_duplicates("sha256")
        cached = dict(zip(usable["sha256"].astype(str), usable[columns].to_dict("records")))
    rows, n_reused = [], 0
    for path, sha in zip(index["path"], index["sha256"].astype(str)):
        values = cached.get(sha)
        if values is None:
            values = qc_attributes(read(path))
        else:
            n_reused += 1
        rows.append({"path": str(path), **values})
    table = pd.DataFrame(rows, columns=["path", *columns]) if rows else qc_table([], [])
    table.insert(1, "split", index["split"].to_numpy())
    table.insert(2, "sha256", index["sha256"].astype(str).to_numpy())
    table["qc_version"] = QC_VERSION
    return table, n_reused


def qc_table(paths: Sequence[str], raws: Iterable) -> pd.DataFrame:
    """One row per patch: ``path`` and its :func:`qc_attributes` (raws aligned with paths)."""
    rows = [{"path": str(p), **qc_attributes(r)} for p, r in zip(paths, raws)]
    cols = ["path", *_VALUE_COLUMNS]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "path" else "float64") for c in cols})
    return pd.DataFrame(rows, columns=cols)


def describe(attribute: str, value: float, boundary: int | None = None) -> str:
    """The attribute's value in words, e.g. ``clipped 14 % of samples``."""
    if attribute == "dead_traces":
        return f"dead traces: {100 * value:.0f} % of traces"
    if attribute == "clipped":
        return f"clipped {100 * value:.0f} % of samples"
    if attribute == "spikes":
        return f"spikes: {100 * value:.1f} % of samples"
    if attribute == "polarity":
        where = f" at traces {boundary}/{boundary + 1}" if boundary is not None else ""
        return f"polarity reversed{where}, {100 * value:.0f} % of the trace"
    if attribute == "noise_burst":
        return f"noise burst: high-frequency energy {100 * 10 ** value:.0f} % of the patch's mean energy"
    raise ValueError(f"unknown QC attribute {attribute!r}; expected one of {QC_ATTRIBUTES}")


@dataclasses.dataclass
class QCCalibration:
    """Training medians and scales of each attribute, and the artefact threshold on ``qc_score``."""

    median: dict
    scale: dict
    threshold: float
    n_train: int

    def score(self, table: pd.DataFrame) -> pd.DataFrame:
        """Score QC attribute rows (``qc_table`` columns).

        Returns
        -------
        DataFrame (positional index, rows aligned with ``table``): ``qc_<attribute>`` (the robust score of each
        attribute), ``qc_score`` (their maximum), ``qc_attribute`` (which one), ``qc_reason`` (in words; "" when
        ``qc_score`` is below the threshold) and ``qc_artefact`` (bool, ``qc_score > threshold``).
        """
        missing = [c for c in QC_ATTRIBUTES if c not in table]
        if missing:
            raise ValueError(f"QC table lacks columns {missing}")
        E = np.column_stack(
            [(table[c].to_numpy(float) - self.median[c]) / self.scale[c] for c in QC_ATTRIBUTES]
        ) if len(table) else np.zeros((0, len(QC_ATTRIBUTES)))
        if not np.isfinite(E).all():
            raise ValueError("QC attributes contain NaN or Inf")
        out = pd.DataFrame(E, columns=[f"qc_{c}" for c in QC_ATTRIBUTES])
        best = np.argmax(E, axis=1) if len(E) else np.zeros(0, int)
        out["qc_score"] = E.max(axis=1) if len(E) else np.zeros(0)
        out["qc_attribute"] = [QC_ATTRIBUTES[i] for i in best]
        artefact = out["qc_score"].to_numpy() > self.threshold
        boundaries = table["polarity_boundary"].to_numpy() if "polarity_boundary" in table else [None] * len(table)
        out["qc_reason"] = [
            describe(QC_ATTRIBUTES[i], float(table[QC_ATTRIBUTES[i]].iloc[r]),
                     None if boundaries[r] is None else int(boundaries[r])) if artefact[r] else ""
            for r, i in enumerate(best)
        ]
        out["qc_artefact"] = artefact
        return out


def fit_qc(train: pd.DataFrame, quantile: float = QUANTILE,
           threshold_quantile: float = THRESHOLD_QUANTILE) -> QCCalibration:
    """Calibrate the QC scores on the training patches' attributes (``qc_table`` rows).

    Each attribute: median and ``max(q - median, FLOORS[a])`` with q its ``quantile`` (0.99); the threshold is the
    ``threshold_quantile`` (0.995) of the training ``qc_score``, at least 1.
    """
    missing = [c for c in QC_ATTRIBUTES if c not in train]
    if missing:
        raise ValueError(f"QC table lacks columns {missing}")
    if len(train) < 2:
        raise ValueError(f"need at least 2 training patches to calibrate QC, got {len(train)}")
    median, scale = {}, {}
    for c in QC_ATTRIBUTES:
        v = train[c].to_numpy(float)
        if not np.isfinite(v).all():
            raise ValueError(f"training QC attribute {c!r} contains NaN or Inf")
        median[c] = float(np.median(v))
        scale[c] = float(max(np.quantile(v, quantile) - median[c], FLOORS[c]))
    cal = QCCalibration(median, scale, threshold=1.0, n_train=len(train))
    s = cal.score(train)["qc_score"].to_numpy()
    cal.threshold = float(max(1.0, np.quantile(s, threshold_quantile)))
    return cal
