"""Feature extraction: patches -> one vector per patch, streamed to Parquet, cached by content hash.

How a patch becomes a vector (CNN backbones)
--------------------------------------------
1. ``patches.read_patch_bytes`` (as ``patches.load_patch``) gives float32 (H, W) in [-1, 1], after
   :func:`load_checked_patch` has checked the file still has the content the index hashed.
2. Patches of the same size are stacked into one tensor and brought to the network input
   (:func:`seis_assets.core.preprocess.preprocess`: intensity in [0, 1], resized bilinearly with antialiasing to
   ``input_size`` by the resize mode ``stretch``, ``pad`` or ``crop``, or kept ``"native"``; recorded in the
   ``input_size`` label, e.g. ``"224:pad"``; 3 channels, normalised with the backbone's mean/std, channels_last).
3. The backbone runs on an inference ``engine`` (``seis_assets.core.engines``: ``auto`` = torch bf16 autocast
   on CPUs with native bf16 and on CUDA, ONNX Runtime fp32 on other CPUs; or ``torch``, ``onnxruntime``,
   ``openvino``). torch runs under ``torch.inference_mode`` and autocast (``precision``: ``"auto"`` = bf16 on
   CPUs with native bf16, fp16/bf16 on CUDA, else fp32); ONNX Runtime runs fp32, OpenVINO fp32 or bf16
   (``engines.engine_precision``).
   Features come back float32.

The ``texture`` backbone takes the [-1, 1] patches directly (no resize, no precision).

:func:`extract_features` streams an index through these steps into one feature table
(``seis_assets.core.feature_table``: columns, identity, schema, reading), reusing the rows of a previous table
(``seis_assets.core.feature_cache``). Row order: rows reused from the previous table first (in its order), then
new rows grouped by patch size. The files may also be read and embedded on a Dask cluster
(``seis_assets.core.distributed``); the table is the same.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seis_assets.core import engines
from seis_assets.core.attributes import attribute_vectors
from seis_assets.core.backbones import Backbone, load_backbone
from seis_assets.core.feature_cache import PreviousTable
from seis_assets.core.feature_table import (
    feature_schema,
    features_array,
    index_rows,
    record_batch,
    table_identity,
    table_writer,
)
from seis_assets.core.matfiles import PatchLoadError
from seis_assets.core.patches import read_patch_bytes
from seis_assets.core.preprocess import DEFAULT_INPUT_SIZE, preprocess
from seis_assets.core.storage import path_str, read_bytes

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PROGRESS_EVERY_S",
    "ExtractionReport",
    "Progress",
    "embed",
    "embed_in_batches",
    "load_checked_patch",
    "use_cpu_threads",
    "extract_features",
]

_LOG = logging.getLogger(__name__)

#: Patches per forward pass of the torch engine on a CPU (other engines and inputs: ``engines.batch_size_for``;
#: on CUDA ``engines.CUDA_BATCH_SIZE``): small batches keep ResNet50's activations in the CPU caches
#: (benchmarks/README.md, "Feature extraction").
DEFAULT_BATCH_SIZE = engines.BATCH_SIZES["torch"]
#: Rows per Parquet row group (and patches buffered per patch size): bounded, independent of the partition size.
ROW_GROUP_ROWS = 256
DEFAULT_PROGRESS_EVERY_S = 10.0


@dataclass
class Progress:
    """A progress snapshot passed to the ``progress`` callback of :func:`extract_features`."""

    files_done: int
    files_total: int
    img_per_s: float
    eta_s: float
    n_reused: int = 0

    def __str__(self) -> str:
        eta = "?" if not math.isfinite(self.eta_s) else f"{self.eta_s:.0f} s"
        return (
            f"features: {self.files_done}/{self.files_total} files extracted "
            f"({self.img_per_s:.1f} img/s, ETA {eta}; {self.n_reused} reused from cache)"
        )


@dataclass
class ExtractionReport:
    """What :func:`extract_features` did.

    Attributes
    ----------
    out_path : str
    n_rows : int
        Rows written (reused + extracted).
    n_extracted : int
        Patches run through the backbone.
    n_reused : int
        Rows copied from ``previous_path``.
    n_dropped : int
        Rows of ``previous_path`` not carried over (file gone, content changed or
        cache invalidated).
    failures : DataFrame with columns path, reason
        Files that could not be loaded at this stage; they have no row.
    seconds : float
        Wall time of the whole call.
    img_per_s : float
        Extracted patches per second of the extraction phase (0 when nothing was extracted).
    identity : dict
        The table identity written to the Parquet metadata.
    cache_note : str or None
        Why the previous table was not used, when it was given but ignored.
    threads : int
        CPU threads the forward pass was given (``engines.thread_budget``); 0 for the ``texture`` backbone.
    """

    out_path: str
    n_rows: int
    n_extracted: int
    n_reused: int
    n_dropped: int
    failures: pd.DataFrame
    seconds: float
    img_per_s: float
    identity: dict
    cache_note: str | None = None
    threads: int = 0

    @property
    def precision(self) -> str:
        """Concrete precision used ("fp32", "bf16", "fp16")."""
        return self.identity["precision"]

    @property
    def input_size(self) -> str:
        """Network input size recorded in the table ("224", "native", ...)."""
        return self.identity["input_size"]

    def metadata(self) -> dict:
        """Flat scalars for run metadata (Dagster, logs)."""
        return {
            "n_rows": self.n_rows,
            "n_extracted": self.n_extracted,
            "n_reused": self.n_reused,
            "n_dropped": self.n_dropped,
            "n_failed": len(self.failures),
            "seconds": round(self.seconds, 3),
            "img_per_s": round(self.img_per_s, 2),
            "backbone": self.identity["backbone"],
            "weights": self.identity["weights"],
            "input_size": self.identity["input_size"],
            "precision": self.identity["precision"],
            "engine": self.identity.get("engine", ""),
            "engine_note": self.identity.get("engine_note") or "",
            "threads": self.threads,
            "fallback_reason": self.identity.get("fallback_reason") or "",
            "cache_note": self.cache_note or "",
        }


# --------------------------------------------------------------------------- embedding
def embed(
    backbone: Backbone,
    patches: np.ndarray,
    input_size: int | str = DEFAULT_INPUT_SIZE,
    precision: str = "fp32",
    engine: str = "torch",
    engine_cache_dir=None,
    threads: int | None = None,
) -> np.ndarray:
    """Features of one stack of equally sized patches.

    Parameters
    ----------
    backbone : Backbone
    patches : ndarray of shape (n, H, W), float32 in [-1, 1]
    input_size : int or "native"
    precision : {"fp32", "bf16", "fp16"} (a concrete value, see :func:`~seis_assets.core.engines.resolve_precision`)
    engine : {"torch", "onnxruntime", "openvino"} (a concrete value, see ``engines.choose_engine``)
    engine_cache_dir : path-like or None
        Where the exported ONNX model is cached (``engines.onnx_model_path``).
    threads : int or None
        CPU threads of an exported engine's session (default ``engines.thread_budget()``).

    Returns
    -------
    features : ndarray of shape (n, backbone.dim), float32
    """
    if not backbone.takes_images:
        return np.asarray(backbone.forward(patches), dtype=np.float32)
    y = _cnn_features(backbone, patches, input_size, precision, engine, engine_cache_dir, threads)
    if backbone.fusion == "texture":  # CNN + texture fusion: the attributes of the same [-1, 1] patches
        y = np.hstack([y, attribute_vectors(np.asarray(patches, dtype=np.float32))]).astype(np.float32)
    return y


def _cnn_features(backbone, patches, input_size, precision, engine, engine_cache_dir, threads) -> np.ndarray:
    import torch  # lazy: this module is imported by the Dagster definitions, which must load without torch

    x = preprocess(patches, input_size, backbone.mean, backbone.std, backbone.device)
    backbone.model  # build it outside inference_mode: its weights stay ordinary tensors (exportable)
    if engine in ("onnxruntime", "openvino"):
        run = engines.runner(backbone, engine, engine_cache_dir, threads, precision=precision)
        backbone.n_forward += 1
        return np.asarray(run(x.contiguous().numpy()), dtype=np.float32)
    if engine != "torch":
        raise ValueError(f"engine must be a concrete engine ('torch', 'onnxruntime', 'openvino'), got {engine!r}")
    autocast = contextlib.nullcontext()
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = torch.autocast(device_type=backbone.device, dtype=dtype)
    with torch.inference_mode(), autocast:
        y = backbone.forward(x)
    return y.float().cpu().numpy()


def embed_in_batches(
    backbone: Backbone,
    patches: np.ndarray,
    identity: dict,
    batch_size: int,
    engine_cache_dir=None,
    threads: int | None = None,
) -> np.ndarray:
    """Features of a stack of equally sized patches made as ``identity`` says (its ``input_size``, ``precision``
    and ``engine``), ``batch_size`` patches per forward pass; the ``texture`` backbone, vectorised already, takes
    the whole stack at once. The other arguments are :func:`embed`'s."""
    step = batch_size if backbone.takes_images else len(patches)
    return np.concatenate([
        embed(backbone, patches[j : j + step], identity["input_size"], identity["precision"],
              identity.get("engine", "torch"), engine_cache_dir, threads or None)
        for j in range(0, len(patches), step)
    ])


def use_cpu_threads(backbone: Backbone, threads: int | None) -> None:
    """Give torch ``threads`` CPU threads when ``backbone`` is a CNN on the CPU (torch also runs the
    preprocessing); nothing when ``threads`` is 0 or None."""
    if threads and backbone.takes_images and backbone.device == "cpu":
        import torch  # lazy, as in _cnn_features

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


# --------------------------------------------------------------------------- extraction
def load_checked_patch(path: str, sha256: str, key: str | None) -> tuple[np.ndarray | None, str | None]:
    """Read ``path`` once, check it still hashes to ``sha256`` and parse it: ``(patch, None)`` or
    ``(None, reason)`` (the reason :func:`extract_features` records in its failures)."""
    try:
        data = read_bytes(path)
        if hashlib.sha256(data).hexdigest() != sha256:
            return None, "content changed since indexing (sha256 differs); re-run the index"
        return read_patch_bytes(data, key, name=str(path)), None
    except PatchLoadError as e:
        return None, e.reason
    except OSError as e:
        return None, f"cannot read file ({type(e).__name__}: {e})"


class _TableSink:
    """Writes rows of the index ``rows`` into one feature table, counting the extracted ones."""

    def __init__(self, writer: pq.ParquetWriter, rows: pd.DataFrame, identity: dict):
        self.writer, self.rows, self.identity, self.schema = writer, rows, identity, writer.schema
        self.dim = int(identity["dim"])
        self.n_extracted = 0

    def write_reused(self, positions: list[int], features: pa.Array) -> None:
        self.writer.write_table(record_batch(self.rows.iloc[positions], features, self.identity, self.schema))

    def write_extracted(self, idx: list, X: np.ndarray) -> None:
        if X.shape != (len(idx), self.dim):
            raise RuntimeError(f"backbone returned shape {X.shape}, expected {(len(idx), self.dim)}")
        table = record_batch(self.rows.loc[idx], features_array(X, self.dim), self.identity, self.schema)
        self.writer.write_table(table)
        self.n_extracted += len(idx)


class _ProgressMeter:
    """Reports a :class:`Progress` at most every ``every_s`` seconds while files are handled, and once at the end."""

    def __init__(self, n_todo: int, n_reused: int, report: Callable[[Progress], None], every_s: float):
        self.n_todo, self.n_reused, self.report, self.every_s = n_todo, n_reused, report, every_s
        self.done = 0
        self.t_start = self.t_last = time.perf_counter()

    def advance(self, n_files: int, n_extracted: int) -> None:
        self.done += n_files
        now = time.perf_counter()
        if now - self.t_last >= self.every_s:
            self.t_last = now
            rate = n_extracted / max(now - self.t_start, 1e-9)
            eta = (self.n_todo - self.done) / rate if rate > 0 else math.inf
            self.report(Progress(self.done, self.n_todo, rate, eta, self.n_reused))

    def finish(self, n_extracted: int) -> float:
        """Report the last snapshot (when there was anything to extract); return the extracted patches per second."""
        img_per_s = n_extracted / (time.perf_counter() - self.t_start) if n_extracted else 0.0
        if self.n_todo:
            self.report(Progress(self.done, self.n_todo, img_per_s, 0.0, self.n_reused))
        return img_per_s


class _PatchBuffers:
    """Patches waiting for their forward pass, one buffer per patch size (a stack holds one size); a buffer is
    embedded (:func:`embed_in_batches`) and written once it holds ``max(batch_size, ROW_GROUP_ROWS)`` patches, the
    rest by :meth:`flush_all`."""

    def __init__(self, sink: _TableSink, backbone: Backbone, batch_size: int, engine_cache_dir, threads: int):
        self.sink, self.limit = sink, max(batch_size, ROW_GROUP_ROWS)
        self.embed_stack = functools.partial(embed_in_batches, backbone, identity=sink.identity, batch_size=batch_size,
                                             engine_cache_dir=engine_cache_dir, threads=threads)
        self.buffers: dict[tuple[int, int], tuple[list, list[np.ndarray]]] = {}

    def add(self, i, patch: np.ndarray) -> None:
        idx, patches = self.buffers.setdefault(patch.shape, ([], []))
        idx.append(i)
        patches.append(patch)
        if len(idx) >= self.limit:
            self.flush(patch.shape)

    def flush(self, shape: tuple[int, int]) -> None:
        idx, patches = self.buffers.pop(shape)
        self.sink.write_extracted(idx, self.embed_stack(np.stack(patches)))

    def flush_all(self) -> None:
        for shape in list(self.buffers):
            self.flush(shape)


def _extract_here(
    todo: pd.DataFrame, key: str | None, buffers: _PatchBuffers, meter: _ProgressMeter, log: logging.Logger
) -> list[dict]:
    """Read, check and embed the ``todo`` rows in this process; returns the files that failed (path, reason)."""
    failures: list[dict] = []
    for i, path, sha in zip(todo.index, todo["path"], todo["sha256"]):
        patch, reason = load_checked_patch(path, sha, key)
        if reason is not None:
            failures.append({"path": str(path), "reason": reason})
            log.warning("features: skipping %s: %s", path, reason)
        else:
            buffers.add(i, patch)
        meter.advance(1, buffers.sink.n_extracted)
    buffers.flush_all()
    return failures


def _write_shard_results(
    results: Iterable[tuple[list, np.ndarray, list[dict]]], sink: _TableSink, meter: _ProgressMeter,
    log: logging.Logger,
) -> list[dict]:
    """Write what a ``shard_runner`` made elsewhere, in the order given; returns the files that failed there."""
    failures: list[dict] = []
    for idx, X, shard_failures in results:
        for failure in shard_failures:
            log.warning("features: skipping %s: %s", failure["path"], failure["reason"])
        failures.extend(shard_failures)
        if len(idx):
            sink.write_extracted(idx, X)
        meter.advance(len(idx) + len(shard_failures), sink.n_extracted)
    return failures


def extract_features(
    index: pd.DataFrame, out_path: str | os.PathLike, backbone: Backbone | str, *,
    input_size: int | str = DEFAULT_INPUT_SIZE, precision: str = engines.DEFAULT_PRECISION,
    engine: str = engines.DEFAULT_ENGINE, engine_cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None, previous_path: str | os.PathLike | None = None, key: str | None = "img",
    progress: Callable[[Progress], None] | None = None, progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    num_threads: int | None = None, logger: logging.Logger | None = None,
    shard_runner: Callable[[pd.DataFrame, dict], object] | None = None,
) -> ExtractionReport:
    """Write one feature row per loadable index row to ``out_path`` (Parquet), reusing cached rows.

    Files that fail to load (or whose content no longer matches the index's sha256) are listed in
    ``report.failures`` and get no row.

    Parameters
    ----------
    index : DataFrame with at least ``path, category, split, sha256, height, width`` (``matfiles.INDEX_COLUMNS``;
        others are ignored), one row per file, paths unique.
    out_path : path-like; written to a temporary file next to it, then renamed atomically.
    backbone : Backbone or a name for :func:`~seis_assets.core.backbones.load_backbone`.
    input_size : int, "<int>:<resize>" or "native" (:func:`seis_assets.core.preprocess.input_spec`).
    precision : {"auto", "fp32", "bf16", "fp16"}, resolved (``engines.resolve_precision``) and recorded.
    engine : {"auto", "torch", "onnxruntime", "openvino"} (``seis_assets.core.engines``), resolved and recorded.
    engine_cache_dir : where exported ONNX models are cached (default ``engines.default_cache_dir()``).
    batch_size : patches per forward pass (bounds memory); None: the engine's default (``engines.batch_size_for``).
    previous_path : an earlier feature table (may equal ``out_path``) whose matching rows are copied.
    key : MATLAB variable holding the patch (None: auto-detect).
    progress : callable(Progress), at most every ``progress_every_s`` s and at the end (default: log at INFO).
    num_threads : CPU threads of the forward pass; default ``engines.thread_budget()``.
    shard_runner : callable(todo, identity) -> iterable of (index labels, features, failures), or None
        Reads and embeds the files to extract elsewhere, e.g. on a Dask cluster (``distributed.dask_shard_runner``);
        called once with the rows to extract (in the order they would be extracted here) and the table identity;
        its results are written in the order given.
    """
    t_start = time.perf_counter()
    log = logger or _LOG
    if isinstance(backbone, str):
        backbone = load_backbone(backbone, logger=log)
    rows = index_rows(index)
    identity = table_identity(backbone, input_size, precision, engine)
    batch_size = engines.batch_size_for(identity.get("engine", "torch"), batch_size, backbone.device,
                                        identity["input_size"], backbone.name, identity["precision"])
    threads = (num_threads or engines.thread_budget()) if backbone.device == "cpu" and backbone.takes_images else 0
    use_cpu_threads(backbone, threads)  # before any torch work: torch also runs the preprocessing
    previous = PreviousTable.open(previous_path, identity, rows["sha256"].astype(str), log)
    with table_writer(out_path, feature_schema(identity)) as writer:
        sink = _TableSink(writer, rows, identity)
        n_reused = previous.copy_rows(rows["sha256"].astype(str), sink.write_reused)
        todo = rows[~rows["sha256"].astype(str).isin(previous.hashes)].sort_values(["height", "width"], kind="stable")
        meter = _ProgressMeter(len(todo), n_reused, progress or (lambda p: log.info("%s", p)), progress_every_s)
        if shard_runner is not None and len(todo):  # the heavy part elsewhere (seis_assets.core.distributed)
            failures = _write_shard_results(shard_runner(todo, identity), sink, meter, log)
        else:
            buffers = _PatchBuffers(sink, backbone, batch_size, engine_cache_dir, threads)
            failures = _extract_here(todo, key, buffers, meter, log)
        img_per_s = meter.finish(sink.n_extracted)
    return ExtractionReport(
        out_path=path_str(out_path), n_rows=n_reused + sink.n_extracted, n_extracted=sink.n_extracted,
        n_reused=n_reused, n_dropped=previous.n_rows - previous.rows_used,
        failures=pd.DataFrame(failures, columns=["path", "reason"]), seconds=time.perf_counter() - t_start,
        img_per_s=img_per_s, identity=identity, cache_note=previous.note, threads=threads,
    )
