"""Writing SEG-Y: a class-index SEG-Y with an existing survey's headers, and generated surveys for tests and benchmarks.

:func:`write_like` is how a facies map goes back into a seismic interpretation package: the input survey's text,
binary and trace headers byte for byte, with new samples. :func:`write_cube` makes a small post-stack survey
(a 3-D cube or a 2-D line) of layered sinusoids plus noise, so that tests and benchmarks need no real data.
:func:`write_inlines` writes a post-stack cube from an iterator of inlines, one inline in memory at a time (the
benchmark cube of :mod:`seis_assets.core.cube_model`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence

import numpy as np
import segyio

from seis_assets.core.segy import DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE, _opened
from seis_assets.core.storage import atomic_path, is_local, path_str

__all__ = ["write_like", "write_cube", "write_section", "write_inlines"]


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
        _write_samples(local_tmp, traces, survey.info.n_traces, survey.info.n_samples, survey.info.endian)
        if is_remote:
            with open(local_tmp, "rb") as fh, tmp.open("wb") as sink:
                shutil.copyfileobj(fh, sink)
            os.unlink(local_tmp)
    return path_str(dest)


def _write_samples(path: str, traces: Iterable[tuple[np.ndarray, np.ndarray]], n: int, ns: int,
                   endian: str = "big") -> None:
    """Overwrite the samples of the SEG-Y at ``path`` (of byte order ``endian``) block by block, checking that every
    trace is written once."""
    written = np.zeros(n, dtype=bool)
    with segyio.open(path, "r+", ignore_geometry=True, endian=endian) as out:
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


def write_inlines(
    path,
    inlines: Sequence[int],
    xlines: Sequence[int],
    blocks: Iterable[np.ndarray],
    *,
    dt_us: int = 4000,
    text: Sequence[str] = ("seis_assets generated cube",),
    spacing_m: int = 25,
    origin_m: tuple[int, int] = (600_000, 6_070_000),
) -> str:
    """A post-stack 3-D SEG-Y written one inline at a time from ``blocks``, atomically; returns :func:`path_str`.

    ``blocks`` yields one ``(len(xlines), n_samples)`` array per inline, in the order of ``inlines``; each is
    written and dropped before the next is asked for, so memory is one inline whatever the cube's size. The file:
    SEG-Y rev 1, IEEE float (format 5), inline sorting; trace headers INLINE_3D (byte 189), CROSSLINE_3D (193), CDP
    (the bin number, 1 at the first inline's first crossline), TRACE_SAMPLE_COUNT, TRACE_SAMPLE_INTERVAL, CDP_X /
    CDP_Y ``spacing_m`` metres apart along crosslines / inlines from ``origin_m`` (scalar 1: whole metres); binary
    header hdt, hns and format; ``text`` (at most 40 lines of 76 characters) as the text header.

    Raises
    ------
    ValueError
        A remote destination (segyio writes local files), a block of the wrong shape or samples, or fewer or more
        blocks than inlines; the partly written file is removed.
    """
    if not is_local(path):
        raise ValueError(f"{path}: write_inlines writes local files only (segyio); copy the cube afterwards")
    blocks = iter(blocks)
    block = next(blocks, None)
    if block is None or np.ndim(block) != 2:
        raise ValueError("write_inlines needs one 2-D block (crosslines, samples) per inline; got " +
                         ("none" if block is None else f"shape {np.shape(block)}"))
    block = np.asarray(block, dtype=np.float32)
    n_il, n_xl, n_samples = len(inlines), len(xlines), block.shape[1]
    spec = segyio.spec()
    spec.format, spec.sorting = 5, 2
    spec.iline, spec.xline = DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE
    spec.samples = list(np.arange(n_samples) * dt_us / 1000.0)
    spec.ilines, spec.xlines = list(inlines), list(xlines)
    F = segyio.TraceField
    with atomic_path(path) as tmp, segyio.create(str(tmp), spec) as f:
        f.text[0] = segyio.tools.create_text_header({i + 1: line[:76] for i, line in enumerate(list(text)[:40])})
        f.bin.update(hdt=dt_us, hns=n_samples, format=5)
        written = 0
        for i, il in enumerate(inlines):
            if block is None:
                raise ValueError(f"{n_il} inlines asked for, {written} blocks given")
            if block.shape != (n_xl, n_samples) or not np.isfinite(block).all():
                finite = bool(np.isfinite(block).all())
                raise ValueError(f"inline {il}: block of shape {block.shape} (finite: {finite}), expected "
                                 f"({n_xl}, {n_samples}) finite samples")
            for j, xl in enumerate(xlines):
                t = i * n_xl + j
                f.header[t] = {F.INLINE_3D: int(il), F.CROSSLINE_3D: int(xl), F.CDP: t + 1,
                               F.TRACE_SAMPLE_COUNT: n_samples, F.TRACE_SAMPLE_INTERVAL: dt_us,
                               F.SourceGroupScalar: 1, F.CDP_X: origin_m[0] + spacing_m * j,
                               F.CDP_Y: origin_m[1] + spacing_m * i}
                f.trace[t] = block[j]
            written += 1
            block = None  # dropped before the next one is made: one inline in memory
            block = next(blocks, None)
            block = None if block is None else np.asarray(block, dtype=np.float32)
        if block is not None:
            raise ValueError(f"more blocks than the {n_il} inlines")
    return path_str(path)
