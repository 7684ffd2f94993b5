"""The feature table: its columns, its identity (what made the features), its Parquet schema, reading it back.

Table (one row per patch, :data:`FEATURE_COLUMNS`)
--------------------------------------------------
``path, category, split, sha256, height, width`` (from the index), ``backbone, weights, input_size, precision``
(strings) and ``features`` (``fixed_size_list<float32>[dim]``). The table identity (backbone identity plus
``input_size``, ``precision`` and ``engine``) is stored as JSON in the Parquet key-value metadata under
:data:`IDENTITY_METADATA_KEY`. Tables are written by :func:`seis_assets.core.features.extract_features` through
:func:`table_writer` (a temporary name, then an atomic rename).

Identity
--------
Features of different backbones, weights, input sizes, precisions or engines are never mixed: the identity
entries in :data:`CACHE_KEYS` must match for cached rows to be reused (``core.feature_cache``) or tables to be
combined (:func:`check_identity`, which also checks the row columns, so a concatenation of partitions made with
different settings is caught).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seis_assets.core import engines
from seis_assets.core.backbones import Backbone
from seis_assets.core.preprocess import DEFAULT_INPUT_SIZE, input_size_label
from seis_assets.core.storage import atomic_path, is_local, path_str, to_upath

__all__ = [
    "INDEX_PASS_THROUGH",
    "FEATURE_COLUMNS",
    "IDENTITY_METADATA_KEY",
    "CACHE_KEYS",
    "BackboneMismatchError",
    "table_identity",
    "feature_schema",
    "table_writer",
    "index_rows",
    "record_batch",
    "features_array",
    "open_parquet",
    "read_identity",
    "check_identity",
    "feature_matrix",
]

#: Index columns copied into the feature table (any other index column is left out).
INDEX_PASS_THROUGH: tuple[str, ...] = ("path", "category", "split", "sha256", "height", "width")
FEATURE_COLUMNS: tuple[str, ...] = (*INDEX_PASS_THROUGH, "backbone", "weights", "input_size", "precision", "features")
IDENTITY_METADATA_KEY = b"seis_assets.backbone"
#: Identity entries that must match for cached rows to be reused or tables to be combined.
#: ``engine`` is a cache key (a table's rows all come from one engine, as its identity says) but not a row column:
#: the single_backbone check compares the row columns, and fp32 engines agree to cosine >= 0.999 (tested), while
#: a bf16 / fp32 difference shows in the ``precision`` column.
CACHE_KEYS: tuple[str, ...] = ("backbone", "weights", "weights_sha256", "dim", "input_size", "precision", "engine")


class BackboneMismatchError(ValueError):
    """Features made by different backbones / weights / input sizes / precisions would be mixed."""


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
        ident["input_size"] = input_size_label(input_size)
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


@contextlib.contextmanager
def table_writer(out_path: str | os.PathLike, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer for a feature table at ``out_path``: written to a temporary file next to it and renamed
    when the block ends without error (``storage.atomic_path``); the repeated string columns are dictionary-encoded."""
    with atomic_path(out_path) as tmp, tmp.open("wb") as sink, pq.ParquetWriter(
        sink, schema, use_dictionary=["category", "split", "backbone", "weights", "input_size", "precision"]
    ) as writer:
        yield writer


def index_rows(index: pd.DataFrame) -> pd.DataFrame:
    """The index's :data:`INDEX_PASS_THROUGH` columns, numbered from 0; raises ValueError when one is missing or
    a path is listed twice."""
    missing = [c for c in INDEX_PASS_THROUGH if c not in index.columns]
    if missing:
        raise ValueError(f"index lacks columns {missing}; expected at least {list(INDEX_PASS_THROUGH)}")
    rows = index[list(INDEX_PASS_THROUGH)].reset_index(drop=True)
    dup = rows["path"][rows["path"].duplicated()]
    if len(dup):
        raise ValueError(f"index lists {len(dup)} paths twice, e.g. {dup.iloc[0]}")
    return rows


def record_batch(rows: pd.DataFrame, features: pa.Array, identity: dict, schema: pa.Schema) -> pa.Table:
    """Table rows of ``schema``: the index ``rows``, the identity's strings and one feature vector each."""
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


def features_array(X: np.ndarray, dim: int) -> pa.Array:
    """(n, dim) features as the table's ``fixed_size_list<float32>[dim]`` column."""
    flat = pa.array(np.ascontiguousarray(X, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, dim)


def _is_pathlike(obj) -> bool:
    return isinstance(obj, (str, os.PathLike)) or hasattr(obj, "protocol")


def open_parquet(path) -> pq.ParquetFile:
    """Local paths are memory-mapped by pyarrow; URLs are opened through fsspec."""
    if is_local(path):
        return pq.ParquetFile(path_str(path))
    return pq.ParquetFile(to_upath(path).open("rb"))


def read_identity(obj) -> dict | None:
    """Identity stored in a feature table's metadata (path, ParquetFile, Table or schema); None if absent."""
    if _is_pathlike(obj):
        with open_parquet(obj) as pf:
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
        with open_parquet(obj) as pf:
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
        with open_parquet(data) as pf:
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

