"""Writing SEG-Y: a class-index SEG-Y with an existing survey's headers, and generated surveys for tests and benchmarks.

:func:`write_like` is how a facies map goes back into a seismic interpretation package: the input survey's text,
binary and trace headers byte for byte, with new samples. :func:`write_cube` makes a small post-stack survey
(a 3-D cube or a 2-D line) of layered sinusoids plus noise, so that tests and benchmarks need no real data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np
import segyio

from seis_assets.core.segy import DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE, _opened
from seis_assets.core.storage import atomic_path, path_str

__all__ = ["write_like", "write_cube", "write_section"]


def write_like(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    traces: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    iline_byte: int = DEFAULT_ILINE_BYTE,
    xline_byte: int = DEFAULT_XLINE_BYTE,
) -> str:
    """Write a SEG-Y with ``source``'s text, binary and trace headers and new samples, atomically.

    ``traces`` yields ``(trace indices, values (len(indices), n_samples))`` blocks (e.g. one line at a time) that
    together cover every trace exactly once. The sample format is the source's (class indices are small integers,
    exact in IBM and IEEE floats).

    Raises
    ------
    SegyError
        ``source`` is not a usable local SEG-Y file (see :func:`~seis_assets.core.segy.open_survey`; a missing
    sample interval is no obstacle here).
    ValueError
        A block of the wrong shape, or traces left unwritten / written twice.
    """
    # the layout is copied, not interpreted: a file whose sample interval had to be set is written like the others
    with _opened(source, iline_byte, xline_byte, 0.0, need_interval=False) as survey, atomic_path(dest) as tmp:
        local_tmp = str(tmp)
        is_remote = "://" in local_tmp
        if is_remote:  # segyio writes local files: write next to the source's temp, then upload
            local_tmp = tempfile.mktemp(suffix=".sgy")
        shutil.copyfile(survey.info.path, local_tmp)  # headers and layout byte for byte; samples overwritten below
        _write_samples(local_tmp, traces, survey.info.n_traces, survey.info.n_samples)
        if is_remote:
            with open(local_tmp, "rb") as fh, tmp.open("wb") as sink:
                shutil.copyfileobj(fh, sink)
            os.unlink(local_tmp)
    return path_str(dest)


def _write_samples(path: str, traces: Iterable[tuple[np.ndarray, np.ndarray]], n: int, ns: int) -> None:
    """Overwrite the samples of the SEG-Y at ``path`` block by block, checking that every trace is written once."""
    written = np.zeros(n, dtype=bool)
    with segyio.open(path, "r+", ignore_geometry=True) as out:
        for idx, values in traces:
            idx = np.asarray(idx, dtype=np.int64)
            values = np.asarray(values, dtype=np.float32)
            if values.shape != (len(idx), ns):
                raise ValueError(f"block of shape {values.shape} for {len(idx)} traces of {ns} samples")
            if written[idx].any():
                raise ValueError(f"trace {int(idx[written[idx]][0])} written twice")
            for i, v in zip(idx, values):
                out.trace[int(i)] = v
            written[idx] = True
    if not written.all():
        raise ValueError(f"{int((~written).sum())} of {n} traces were not written, e.g. trace {int(np.flatnonzero(~written)[0])}")


def write_cube(
    path,
    inlines: Sequence[int],
    xlines: Sequence[int],
    n_samples: int = 120,
    fmt: int = 5,
    seed: int = 0,
    structured: bool = True,
    dt_us: int = 4000,
):
    """A generated post-stack SEG-Y: layered sinusoids plus noise, inline at byte 189, crossline at 193.

    ``structured=False`` writes the traces without a sorting (a 2-D line when ``inlines`` holds one number). The
    traces right of the middle crossline have a longer period, so the two halves are two textures. ``fmt`` is the
    SEG-Y sample format code (5: IEEE float, 1: IBM float), ``dt_us`` the sample interval in microseconds.
    Returns ``path``.
    """
    rng = np.random.default_rng(seed)
    spec = segyio.spec()
    spec.format = fmt
    spec.samples = list(range(n_samples))
    if structured:
        spec.sorting = 2
        spec.ilines, spec.xlines = list(inlines), list(xlines)
    else:
        spec.tracecount = len(inlines) * len(xlines)
    t = np.arange(n_samples)
    with segyio.create(str(path), spec) as f:
        i = 0
        for il in inlines:
            for xl in xlines:
                f.header[i] = {
                    segyio.TraceField.INLINE_3D: il, segyio.TraceField.CROSSLINE_3D: xl, segyio.TraceField.CDP: xl,
                    segyio.TraceField.TRACE_SAMPLE_COUNT: n_samples, segyio.TraceField.TRACE_SAMPLE_INTERVAL: dt_us,
                    segyio.TraceField.CDP_X: 1000 + 25 * xl, segyio.TraceField.CDP_Y: 5000 + 25 * il,
                }
                trace = 1000 * np.sin(2 * np.pi * t / (12 + (xl > xlines[len(xlines) // 2]) * 10)) + rng.normal(0, 50, n_samples)
                f.trace[i] = trace.astype(np.float32)
                i += 1
        f.bin.update(hdt=dt_us, hns=n_samples, format=fmt)
        f.text[0] = segyio.tools.create_text_header({1: "seis_assets test cube"})
    return path


def write_section(
    path,
    data: np.ndarray,
    *,
    dt_us: int = 4000,
    inline: int = 1,
    first_xline: int = 1,
    trace_dt_us: int | None = None,
    spacing_m: float = 25.0,
    fmt: int = 5,
):
    """One inline of given samples as a 2-D SEG-Y: ``data`` (n_traces, n_samples), crosslines from ``first_xline``.

    ``dt_us`` goes into the binary header, ``trace_dt_us`` (default: the same) into every trace header, so tests can
    write files whose intervals are missing or disagree. CDP coordinates are ``spacing_m`` apart along the line
    (scalar -100: centimetres). Returns ``path``.
    """
    data = np.asarray(data, dtype=np.float32)
    n_traces, n_samples = data.shape
    spec = segyio.spec()
    spec.format = fmt
    spec.samples = list(range(n_samples))
    spec.tracecount = n_traces
    trace_dt = dt_us if trace_dt_us is None else trace_dt_us
    with segyio.create(str(path), spec) as f:
        for i in range(n_traces):
            f.header[i] = {
                segyio.TraceField.INLINE_3D: inline, segyio.TraceField.CROSSLINE_3D: first_xline + i,
                segyio.TraceField.CDP: first_xline + i, segyio.TraceField.TRACE_SAMPLE_COUNT: n_samples,
                segyio.TraceField.TRACE_SAMPLE_INTERVAL: trace_dt, segyio.TraceField.SourceGroupScalar: -100,
                segyio.TraceField.CDP_X: int(round(100 * (1000 + spacing_m * i))), segyio.TraceField.CDP_Y: 500000,
            }
            f.trace[i] = data[i]
        f.bin.update(hdt=dt_us, hns=n_samples, format=fmt)
        f.text[0] = segyio.tools.create_text_header({1: "seis_assets test section"})
    return path
