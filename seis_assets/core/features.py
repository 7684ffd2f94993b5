"""Feature extraction: patches -> one vector per patch, streamed to Parquet, cached by content hash.

How a patch becomes a vector (CNN backbones)
--------------------------------------------
1. ``matfiles.read_patch_bytes`` (as ``matfiles.load_patch``) gives float32 (H, W) in [-1, 1]; it is read as image
   intensity mapped to [0, 1] (``(p + 1) / 2``), the seed's per-patch min-max
   without its uint8 rounding.
2. Patches of the same size are stacked into one tensor (n, 1, H, W), resized
   bilinearly with antialiasing to ``input_size`` (224 by default, the seed's choice; ``"native"``
   keeps the patch size, about 1/5 of the compute at 99x99) by the resize mode (``stretch`` squashes
   each axis on its own, ``pad`` and ``crop`` keep the aspect ratio and so the dips of a 150x300 patch;
   recorded in the ``input_size`` label, e.g. ``"224:pad"``), replicated to 3
   channels and normalised with the backbone's mean/std, in channels_last layout.
3. The backbone runs on an inference ``engine`` (``seis_assets.core.engines``: ``auto`` = torch bf16 autocast
   on CPUs with native bf16 and on CUDA, ONNX Runtime fp32 on other CPUs; or ``torch``, ``onnxruntime``,
   ``openvino``). torch runs under ``torch.inference_mode`` and autocast (``precision``: ``"auto"`` = bf16 on
   CPUs with native bf16, fp16/bf16 on CUDA, else fp32); the exported engines run fp32.
   Features come back float32.

The ``texture`` backbone takes the [-1, 1] patches directly (no resize, no precision).

Table (one row per patch, :data:`FEATURE_COLUMNS`)
--------------------------------------------------
``path, category, split, sha256, height, width`` (from the index), ``backbone,
weights, input_size, precision`` (strings) and ``features``
(``fixed_size_list<float32>[dim]``). The table identity (backbone identity plus
``input_size``, ``precision`` and ``engine``) is stored as JSON in the Parquet key-value
metadata under :data:`IDENTITY_METADATA_KEY`. Row order: rows reused from the
previous table first (in its order), then new rows grouped by patch size.

Cache
-----
A row of ``previous_path`` is reused when its ``sha256`` is in the index and the
previous table's identity (backbone, weights, weights fingerprint, dim,
input_size, precision, engine) equals the current one (so every row of a table comes from one engine); otherwise the whole previous table
is ignored. Files gone from the index are dropped. An all-cached run never builds
the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seis_assets.core import engines
from seis_assets.core.backbones import Backbone, load_backbone
from seis_assets.core.matfiles import PatchLoadError, read_patch_bytes
from seis_assets.core.storage import atomic_path, is_local, path_str, read_bytes, to_upath

__all__ = [
    "INDEX_PASS_THROUGH",
    "FEATURE_COLUMNS",
    "IDENTITY_METADATA_KEY",
    "CACHE_KEYS",
    "DEFAULT_INPUT_SIZE",
    "RESIZE_MODES",
    "DEFAULT_RESIZE",
    "input_spec",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PROGRESS_EVERY_S",
    "BackboneMismatchError",
    "ExtractionReport",
    "Progress",
    "table_identity",
    "feature_schema",
    "preprocess",
    "embed",
    "extract_features",
    "feature_matrix",
    "read_identity",
    "check_identity",
]

_LOG = logging.getLogger(__name__)

#: Index columns copied into the feature table (any other index column is left out).
INDEX_PASS_THROUGH: tuple[str, ...] = ("path", "category", "split", "sha256", "height", "width")
FEATURE_COLUMNS: tuple[str, ...] = (*INDEX_PASS_THROUGH, "backbone", "weights", "input_size", "precision", "features")
IDENTITY_METADATA_KEY = b"seis_assets.backbone"
#: Identity entries that must match for cached rows to be reused or tables to be combined.
#: ``engine`` is a cache key (a table's rows all come from one engine, as its identity says) but not a row column:
#: the single_backbone check compares the row columns, and fp32 engines agree to cosine >= 0.999 (tested), while
#: a bf16 / fp32 difference shows in the ``precision`` column.
CACHE_KEYS: tuple[str, ...] = ("backbone", "weights", "weights_sha256", "dim", "input_size", "precision", "engine")
DEFAULT_INPUT_SIZE = 224
#: How a patch is brought to the square network input (antialiased bilinear): ``stretch`` squashes each axis on its
#: own, ``pad`` keeps the aspect ratio and fills with zero amplitude, ``crop`` keeps the aspect ratio and cuts the centre.
RESIZE_MODES: tuple[str, ...] = ("stretch", "pad", "crop")
DEFAULT_RESIZE = "stretch"
#: Patches per forward pass of the torch engine (the exported engines take 64: ``engines.batch_size_for``). Small
#: batches keep ResNet50's activations in the CPU caches: measured on the 2-core CPU, bf16 + channels_last at 224,
#: 38 img/s at 16 vs 28 img/s at 64 (benchmarks/README.md); on CUDA ``engines.CUDA_BATCH_SIZE``.
DEFAULT_BATCH_SIZE = engines.BATCH_SIZES["torch"]
#: Rows per Parquet row group (and patches buffered per patch size): bounded, independent of the partition size.
ROW_GROUP_ROWS = 256
DEFAULT_PROGRESS_EVERY_S = 10.0
_COPY_BATCH_ROWS = 1024


class BackboneMismatchError(ValueError):
    """Features made by different backbones / weights / input sizes / precisions would be mixed."""


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


# --------------------------------------------------------------------------- settings
def _input_size_label(input_size: int | str) -> str:
    """Canonical label of an input size and resize mode: ``"native"`` or ``"<side>:<resize>"``.

    Accepted: ``"native"``, an int or digit string (the side; resize mode :data:`DEFAULT_RESIZE`), or
    ``"<side>:<resize>"`` with resize in :data:`RESIZE_MODES`. The label is what tables and models record, so
    features made with another size or resize mode are never reused or mixed.
    """
    if isinstance(input_size, str) and input_size == "native":
        return "native"
    text = str(input_size)
    side, _, mode = text.partition(":")
    mode = mode or DEFAULT_RESIZE
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r} (in input_size {input_size!r})")
    try:
        size = int(side)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be a positive int, 'native' or '<int>:<resize>', got {input_size!r}") from None
    if size < 8:
        raise ValueError(f"input_size must be >= 8 pixels, got {size}")
    return f"{size}:{mode}"


def input_spec(input_size: int | str, resize: str = "") -> str:
    """The label of ``input_size`` (int, digit string or ``"native"``) resized with ``resize``.

    ``resize`` (one of :data:`RESIZE_MODES`, empty = :data:`DEFAULT_RESIZE`) is ignored for ``"native"``
    (nothing is resized). This is what :func:`extract_features` and :func:`embed` take as ``input_size``.
    """
    if resize and resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if isinstance(input_size, str) and input_size == "native":
        return "native"
    if isinstance(input_size, str) and ":" in input_size:
        raise ValueError(f"input_size {input_size!r} already names a resize mode; pass the side only")
    return _input_size_label(f"{input_size}:{resize}" if resize else input_size)


def _resize_images(x, size: int, mode: str):
    """(n, 1, H, W) intensities in [0, 1] -> (n, 1, size, size), bilinear with antialiasing.

    stretch: each axis scaled on its own (changes the aspect ratio, hence dips, of non-square patches);
    pad: the longer side scaled to ``size`` (aspect kept), the rest filled with 0.5 (zero amplitude), centred;
    crop: the shorter side scaled to ``size`` (aspect kept), the centre ``size`` x ``size`` kept.
    """
    import torch.nn.functional as F

    h, w = int(x.shape[-2]), int(x.shape[-1])
    if mode == "stretch":
        target = (size, size)
    else:
        scale = size / (max(h, w) if mode == "pad" else min(h, w))
        target = (max(1, round(h * scale)), max(1, round(w * scale)))
        if mode == "pad":
            target = (min(size, target[0]), min(size, target[1]))
        else:
            target = (max(size, target[0]), max(size, target[1]))
    if target != (h, w):
        # antialias low-passes before downsampling (aliasing otherwise turns steep dips into moire);
        # on upsampling it equals plain bilinear
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)
    th, tw = target
    if mode == "pad" and target != (size, size):
        top, left = (size - th) // 2, (size - tw) // 2
        x = F.pad(x, (left, size - tw - left, top, size - th - top), value=0.5)
    elif mode == "crop" and target != (size, size):
        top, left = (th - size) // 2, (tw - size) // 2
        x = x[..., top : top + size, left : left + size]
    return x


def table_identity(
    backbone: Backbone,
    input_size: int | str = DEFAULT_INPUT_SIZE,
    precision: str = engines.DEFAULT_PRECISION,
    engine: str = engines.DEFAULT_ENGINE,
) -> dict:
    """Backbone identity plus the concrete ``input_size`` (str), ``precision`` and ``engine`` of a feature table.

    ``engine`` is resolved by :func:`seis_assets.core.engines.choose_engine` (``engine_note`` says why when
    ``auto`` deviated from its rule). The ``texture`` backbone ignores all three and records ``"native"`` /
    ``"fp32"`` / ``"numpy"``.
    """
    ident = dict(backbone.identity)
    ident.setdefault("weights_sha256", None)
    if backbone.takes_images:
        ident["input_size"] = _input_size_label(input_size)
        choice = engines.choose_engine(engine, backbone.device, precision, backbone=backbone.name)
        ident["engine"] = choice.engine
        if choice.note:
            ident["engine_note"] = choice.note
        ident["precision"] = engines.engine_precision(choice.engine, precision, backbone.device, backbone.name)
    else:
        ident["input_size"] = "native"
        ident["precision"] = "fp32"
        ident["engine"] = "numpy"
    return ident


def feature_schema(identity: dict) -> pa.Schema:
    """Arrow schema of a feature table with ``identity`` in its key-value metadata."""
    string = pa.string()
    fields = [pa.field(c, string) for c in ("path", "category", "split", "sha256")]
    fields += [pa.field("height", pa.int32()), pa.field("width", pa.int32())]
    fields += [pa.field(c, string) for c in ("backbone", "weights", "input_size", "precision")]
    fields.append(pa.field("features", pa.list_(pa.float32(), int(identity["dim"]))))
    return pa.schema(fields, metadata={IDENTITY_METADATA_KEY: json.dumps(identity, sort_keys=True).encode()})


# --------------------------------------------------------------------------- embedding
def preprocess(patches, input_size: int | str, mean, std, device: str = "cpu"):
    """Stack of [-1, 1] patches -> normalised 3-channel images.

    Parameters
    ----------
    patches : ndarray or torch.Tensor of shape (n, H, W), float32 in [-1, 1]
    input_size : int, "<int>:<resize>" or "native"
        Side of the square output, resized bilinearly with antialiasing (``align_corners=False``) by the
        resize mode (``stretch``, ``pad``, ``crop``; see :func:`input_spec`; a bare int uses
        :data:`DEFAULT_RESIZE`), or ``"native"`` to keep (H, W). Square patches come out the same in every mode.
    mean, std : sequence of 3 floats
        Normalisation of an RGB image in [0, 1].
    device : str

    Returns
    -------
    images : torch.Tensor of shape (n, 3, S, S) (or (n, 3, H, W)), float32, channels_last
    """
    import torch

    x = torch.as_tensor(patches, dtype=torch.float32, device=device)
    x = ((x + 1.0) * 0.5).unsqueeze(1)  # (n, 1, H, W) intensity in [0, 1]
    label = _input_size_label(input_size)
    if label != "native":
        side, mode = label.split(":")
        x = _resize_images(x, int(side), mode)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


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
        from seis_assets.core.attributes import attribute_vectors

        y = np.hstack([y, attribute_vectors(np.asarray(patches, dtype=np.float32))]).astype(np.float32)
    return y


def _cnn_features(backbone, patches, input_size, precision, engine, engine_cache_dir, threads) -> np.ndarray:
    import torch

    x = preprocess(patches, input_size, backbone.mean, backbone.std, backbone.device)
    backbone.model  # build it outside inference_mode: its weights stay ordinary tensors (exportable)
    if engine in ("onnxruntime", "openvino"):
        if precision != "fp32":
            raise ValueError(f"engine {engine!r} runs fp32 only, got precision={precision!r}")
        run = engines.runner(backbone, engine, engine_cache_dir, threads)
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


# --------------------------------------------------------------------------- identity
def _is_pathlike(obj) -> bool:
    return isinstance(obj, (str, os.PathLike)) or hasattr(obj, "protocol")


def _open_parquet(path) -> pq.ParquetFile:
    """Local paths are memory-mapped by pyarrow; URLs are opened through fsspec."""
    if is_local(path):
        return pq.ParquetFile(path_str(path))
    return pq.ParquetFile(to_upath(path).open("rb"))


def read_identity(obj) -> dict | None:
    """Identity stored in a feature table's metadata (path, ParquetFile, Table or schema); None if absent."""
    if _is_pathlike(obj):
        with _open_parquet(obj) as pf:
            meta = pf.schema_arrow.metadata
    elif isinstance(obj, pq.ParquetFile):
        meta = obj.schema_arrow.metadata
    elif isinstance(obj, pa.Table):
        meta = obj.schema.metadata
    elif isinstance(obj, pa.Schema):
        meta = obj.metadata
    else:
        meta = None
    if not meta or IDENTITY_METADATA_KEY not in meta:
        return None
    return json.loads(meta[IDENTITY_METADATA_KEY])


def _column_values(obj, column: str) -> set:
    if isinstance(obj, pa.Table):
        if column not in obj.column_names:
            return set()
        return set(obj.column(column).unique().to_pylist())
    if isinstance(obj, pd.DataFrame) and column in obj.columns:
        return set(obj[column].unique().tolist())
    return set()


def check_identity(obj, expected: dict | None = None, keys: tuple[str, ...] = CACHE_KEYS) -> dict:
    """Make sure a feature table holds features of one kind only (and of the expected kind).

    Parameters
    ----------
    obj : path, pyarrow.Table or DataFrame
        A feature table. Both its metadata identity (when present) and its
        ``backbone / weights / input_size / precision`` columns are checked, so a
        concatenation of partitions made with different backbones is caught.
    expected : dict or None
        An identity (e.g. ``table_identity(...)`` or another table's); only ``keys``
        present in it are compared. None checks internal consistency only.
    keys : tuple of str

    Returns
    -------
    identity : dict
        The table's identity (metadata, or built from its columns).

    Raises
    ------
    BackboneMismatchError
        The table mixes identities, or differs from ``expected``.
    """
    table = obj
    if _is_pathlike(obj):
        with _open_parquet(obj) as pf:
            table = pf.read(columns=["backbone", "weights", "input_size", "precision"])
    found = dict(read_identity(table) or {})
    for col in ("backbone", "weights", "input_size", "precision"):
        values = _column_values(table, col)
        if len(values) > 1:
            raise BackboneMismatchError(
                f"feature table mixes {col} values {sorted(map(str, values))}; features from different "
                "backbones/settings must not be combined: re-extract them with one setting"
            )
        if values:
            (value,) = values
            if col in found and str(found[col]) != str(value):
                raise BackboneMismatchError(f"feature table metadata says {col}={found[col]!r} but its rows say {value!r}")
            found[col] = value
    if expected is not None:
        diffs = [
            f"{k}: table {found.get(k)!r} != expected {expected.get(k)!r}"
            for k in keys
            if k in expected and k in found and str(found.get(k)) != str(expected.get(k))
        ]
        if diffs:
            raise BackboneMismatchError(
                "feature tables were made with different backbones/settings (" + "; ".join(diffs) + "); "
                "re-extract the features so every partition uses the same setting"
            )
    return found


def feature_matrix(data) -> np.ndarray:
    """Feature vectors of a feature table as one matrix.

    Parameters
    ----------
    data : pyarrow.Table, DataFrame (``features`` column) or path to a Parquet feature table

    Returns
    -------
    X : ndarray of shape (n_rows, dim), float32
        For Arrow tables this is a reshape of the list column's flat buffer (no
        per-row Python loop).
    """
    if _is_pathlike(data):
        with _open_parquet(data) as pf:
            data = pf.read(columns=["features"])
    if isinstance(data, pd.DataFrame):
        col = data["features"]
        if isinstance(col.dtype, pd.ArrowDtype):
            data = pa.table({"features": pa.array(col.array)})
        else:
            if len(col) == 0:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack(col.to_numpy()).astype(np.float32, copy=False)
    col = data.column("features") if isinstance(data, pa.Table) else data
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dim = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else None
    if dim is None:  # variable-size lists: all rows must have the same length
        lengths = np.unique(arr.value_lengths().to_numpy(zero_copy_only=False))
        if len(lengths) > 1:
            raise ValueError(f"feature vectors have different lengths {lengths.tolist()}")
        dim = int(lengths[0]) if len(lengths) else 0
    if arr.null_count:
        raise ValueError(f"{arr.null_count} feature vectors are null")
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(len(arr), dim)


# --------------------------------------------------------------------------- extraction
def _check_index(index: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in INDEX_PASS_THROUGH if c not in index.columns]
    if missing:
        raise ValueError(f"index lacks columns {missing}; expected at least {list(INDEX_PASS_THROUGH)}")
    rows = index[list(INDEX_PASS_THROUGH)].reset_index(drop=True)
    dup = rows["path"][rows["path"].duplicated()]
    if len(dup):
        raise ValueError(f"index lists {len(dup)} paths twice, e.g. {dup.iloc[0]}")
    return rows


def _record_batch(rows: pd.DataFrame, features: pa.Array, identity: dict, schema: pa.Schema) -> pa.Table:
    n = len(rows)
    # category is null for unlabelled patches (core/sources.py): keep it null, not the text "None"
    cols = {c: pa.array([None if pd.isna(v) else str(v) for v in rows[c].tolist()], pa.string())
            for c in ("path", "category", "split", "sha256")}
    cols["height"] = pa.array(rows["height"].to_numpy(dtype=np.int32))
    cols["width"] = pa.array(rows["width"].to_numpy(dtype=np.int32))
    for c in ("backbone", "weights", "input_size", "precision"):
        cols[c] = pa.array([str(identity[c])] * n, pa.string())
    cols["features"] = features
    return pa.Table.from_pydict(cols, schema=schema)


def _features_array(X: np.ndarray, dim: int) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(X, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _usable_previous(previous_path, identity: dict) -> tuple[bool, str | None]:
    if previous_path is None:
        return False, None
    if not to_upath(previous_path).exists():
        return False, None  # first run
    try:
        old = read_identity(previous_path)
    except Exception as e:  # unreadable old table: recompute everything
        return False, f"previous table {previous_path} is unreadable ({type(e).__name__}: {e}); recomputing all"
    if old is None:
        return False, f"previous table {previous_path} has no identity metadata; recomputing all"
    diffs = [f"{k} {old.get(k)!r} -> {identity.get(k)!r}" for k in CACHE_KEYS if str(old.get(k)) != str(identity.get(k))]
    if diffs:
        return False, "cache invalidated: " + ", ".join(diffs)
    return True, None


def extract_features(
    index: pd.DataFrame,
    out_path: str | os.PathLike,
    backbone: Backbone | str,
    *,
    input_size: int | str = DEFAULT_INPUT_SIZE,
    precision: str = engines.DEFAULT_PRECISION,
    engine: str = engines.DEFAULT_ENGINE,
    engine_cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    previous_path: str | os.PathLike | None = None,
    key: str | None = "img",
    progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = DEFAULT_PROGRESS_EVERY_S,
    num_threads: int | None = None,
    logger: logging.Logger | None = None,
    shard_runner: Callable[[pd.DataFrame, dict], object] | None = None,
) -> ExtractionReport:
    """Write one feature row per loadable index row to ``out_path`` (Parquet), reusing cached rows.

    Parameters
    ----------
    index : DataFrame
        At least ``path, category, split, sha256, height, width`` (``matfiles.INDEX_COLUMNS``);
        other columns are ignored. One row per file, paths unique.
    out_path : path-like
        Destination; written to a temporary file next to it, then renamed atomically.
    backbone : Backbone or str
        From :func:`~seis_assets.core.backbones.load_backbone`, or a name passed to it.
    input_size : int or "native"
        Side of the square network input (bilinear resize), or the patch's own size.
    precision : {"auto", "fp32", "bf16", "fp16"}
        See :func:`~seis_assets.core.engines.resolve_precision`; the concrete value is recorded.
    engine : {"auto", "torch", "onnxruntime", "openvino"}
        Inference engine (``seis_assets.core.engines``); the concrete one is recorded in the identity.
    engine_cache_dir : path-like or None
        Where exported ONNX models are cached (default ``engines.default_cache_dir()``).
    batch_size : int or None
        Patches per forward pass (bounds memory); None: the engine's measured default
        (``engines.batch_size_for``: 16 for torch, 64 for ONNX Runtime and OpenVINO).
    previous_path : path-like or None
        An earlier feature table (may equal ``out_path``) whose matching rows are copied.
    key : str or None
        MATLAB variable holding the patch (None: auto-detect).
    progress : callable(Progress) or None
        Called at most every ``progress_every_s`` seconds and once at the end; default
        logs the message at INFO.
    progress_every_s : float
    num_threads : int or None
        CPU threads of the forward pass (torch and the exported engines); default
        ``engines.thread_budget()`` (``SEIS_THREADS``, or the usable cores / ``SEIS_CONCURRENT_RUNS``).
    logger : logging.Logger or None
    shard_runner : callable(todo, identity) -> iterable of (index labels, features, failures), or None
        Where the files to extract are read and embedded elsewhere, e.g. on a Dask cluster
        (:func:`seis_assets.core.distributed.dask_shard_runner`); called once with the rows to extract (in the
        order they would be extracted here) and the table identity; its results are written in the order given.
        None (default): here, in this process.

    Returns
    -------
    report : ExtractionReport
        Files that fail to load (or whose content no longer matches the index's
        sha256) are listed in ``report.failures`` and get no row.
    """
    t_start = time.perf_counter()
    log = logger or _LOG
    if isinstance(backbone, str):
        backbone = load_backbone(backbone, logger=log)
    rows = _check_index(index)
    identity = table_identity(backbone, input_size, precision, engine)
    batch_size = engines.batch_size_for(identity.get("engine", "torch"), batch_size, backbone.device)
    schema = feature_schema(identity)
    dim = int(identity["dim"])
    threads = 0
    if backbone.device == "cpu" and backbone.takes_images:
        import torch

        threads = num_threads or engines.thread_budget()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)  # torch also runs the preprocessing
    report_progress = progress or (lambda p: log.info("%s", p))

    use_previous, cache_note = _usable_previous(previous_path, identity)
    if cache_note:
        log.info("%s", cache_note)
    n_previous = 0
    cached_sha: set[str] = set()
    if previous_path is not None and to_upath(previous_path).exists():
        with contextlib.suppress(Exception), _open_parquet(previous_path) as pf:
            n_previous = pf.metadata.num_rows
    if use_previous:
        wanted = set(rows["sha256"].astype(str))
        with _open_parquet(previous_path) as pf:
            for batch in pf.iter_batches(batch_size=65536, columns=["sha256"]):
                cached_sha.update(s for s in batch.column(0).to_pylist() if s in wanted)

    failures: list[dict] = []
    n_reused = n_extracted = old_rows_used = 0
    with atomic_path(out_path) as tmp, tmp.open("wb") as sink:
        with pq.ParquetWriter(
            sink, schema, use_dictionary=["category", "split", "backbone", "weights", "input_size", "precision"]
        ) as writer:
            # 1. Copy cached rows, batch by batch, taking pass-through columns from the current index.
            if cached_sha:
                by_sha: dict[str, list[int]] = {}
                for i, s in enumerate(rows["sha256"].astype(str)):
                    if s in cached_sha:
                        by_sha.setdefault(s, []).append(i)
                with _open_parquet(previous_path) as pf:
                    for batch in pf.iter_batches(batch_size=_COPY_BATCH_ROWS, columns=["sha256", "features"]):
                        src, dst = [], []
                        for j, s in enumerate(batch.column(0).to_pylist()):
                            targets = by_sha.pop(s, None)  # first occurrence of a hash wins
                            if targets:
                                old_rows_used += 1
                                src.extend([j] * len(targets))
                                dst.extend(targets)
                        if src:
                            feats = batch.column(1).take(pa.array(src, pa.int64()))
                            writer.write_table(_record_batch(rows.iloc[dst], feats, identity, schema))
                            n_reused += len(dst)
                cached_sha = cached_sha - set(by_sha)  # hashes that were not found after all

            # 2. Extract the rest, batched by patch size (sorted so one size buffers at a time).
            todo = rows[~rows["sha256"].astype(str).isin(cached_sha)]
            todo = todo.sort_values(["height", "width"], kind="stable")
            n_todo = len(todo)
            buffers: dict[tuple[int, int], tuple[list[int], list[np.ndarray]]] = {}
            t_extract = time.perf_counter()
            t_last = t_extract
            done = 0
            if shard_runner is not None and n_todo:  # the heavy part elsewhere (seis_assets.core.distributed)
                for idx, X, shard_failures in shard_runner(todo, identity):
                    for failure in shard_failures:
                        log.warning("features: skipping %s: %s", failure["path"], failure["reason"])
                    failures.extend(shard_failures)
                    if len(idx):
                        if X.shape != (len(idx), dim):
                            raise RuntimeError(f"backbone returned shape {X.shape}, expected {(len(idx), dim)}")
                        writer.write_table(_record_batch(rows.loc[idx], _features_array(X, dim), identity, schema))
                        n_extracted += len(idx)
                    done += len(idx) + len(shard_failures)
                    now = time.perf_counter()
                    if now - t_last >= progress_every_s:
                        t_last = now
                        rate = n_extracted / max(now - t_extract, 1e-9)
                        report_progress(Progress(done, n_todo, rate, (n_todo - done) / rate if rate else math.inf, n_reused))
                todo = todo.iloc[:0]  # all handled: the local loop below has nothing left to do

            def flush(shape):
                nonlocal n_extracted
                idx, patches = buffers.pop(shape)
                stack = np.stack(patches)
                step = batch_size if backbone.takes_images else len(stack)  # attributes are vectorised already
                X = np.concatenate([
                    embed(backbone, stack[j : j + step], identity["input_size"], identity["precision"],
                          identity.get("engine", "torch"), engine_cache_dir, threads or None)
                    for j in range(0, len(stack), step)
                ])
                if X.shape != (len(idx), dim):
                    raise RuntimeError(f"backbone returned shape {X.shape}, expected {(len(idx), dim)}")
                writer.write_table(_record_batch(rows.loc[idx], _features_array(X, dim), identity, schema))
                n_extracted += len(idx)

            for i, path, sha in zip(todo.index, todo["path"], todo["sha256"]):
                reason = None
                try:
                    data = read_bytes(path)  # read once: hash it, then parse it
                    if hashlib.sha256(data).hexdigest() != sha:
                        reason = "content changed since indexing (sha256 differs); re-run the index"
                    else:
                        patch = read_patch_bytes(data, key, name=str(path))
                except PatchLoadError as e:
                    reason = e.reason
                except OSError as e:
                    reason = f"cannot read file ({type(e).__name__}: {e})"
                if reason is not None:
                    failures.append({"path": str(path), "reason": reason})
                    log.warning("features: skipping %s: %s", path, reason)
                else:
                    idx, patches = buffers.setdefault(patch.shape, ([], []))
                    idx.append(i)
                    patches.append(patch)
                    if len(idx) >= max(batch_size, ROW_GROUP_ROWS):
                        flush(patch.shape)
                done += 1
                now = time.perf_counter()
                if now - t_last >= progress_every_s:
                    t_last = now
                    rate = n_extracted / max(now - t_extract, 1e-9)
                    eta = (n_todo - done) / rate if rate > 0 else float("inf")
                    report_progress(Progress(done, n_todo, rate, eta, n_reused))
            for shape in list(buffers):
                flush(shape)
            t_done = time.perf_counter()
            img_per_s = n_extracted / (t_done - t_extract) if n_extracted else 0.0
            if n_todo:
                report_progress(Progress(done, n_todo, img_per_s, 0.0, n_reused))

    return ExtractionReport(
        out_path=path_str(out_path),
        n_rows=n_reused + n_extracted,
        n_extracted=n_extracted,
        n_reused=n_reused,
        n_dropped=n_previous - old_rows_used,
        failures=pd.DataFrame(failures, columns=["path", "reason"]),
        seconds=time.perf_counter() - t_start,
        img_per_s=img_per_s,
        identity=identity,
        cache_note=cache_note,
        threads=threads,
    )
