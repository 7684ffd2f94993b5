"""Small storage helpers for the warehouse: paths, atomic writes, Parquet and joblib.

Every path argument accepts a ``str``, a :class:`pathlib.Path` or a
:class:`upath.UPath`; a URL such as ``s3://bucket/data`` or ``memory://x`` goes
through fsspec, a plain path goes through the local file system.

Atomic writes write to a temporary sibling (same folder, name
``.<name>.tmp-<uuid>``) and move it onto the final name only when the write
succeeded, so a reader never sees a half-written file:

- local files: ``os.replace``, atomic on POSIX when both names are in one folder;
- object stores (s3, gcs, ...): fsspec ``mv``, which is a copy then a delete.
  The final object still appears whole (object PUT/COPY is all-or-nothing), but
  the move is not cheap and a crash between copy and delete can leave the
  hidden temporary object behind.

No Dagster imports here: the IO manager and the feature writer both use it.
"""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

PathLike = Union[str, "os.PathLike[str]", UPath]

_LOCAL_PROTOCOLS = ("", "file", "local")
# Schema metadata keys written by pandas/arrow themselves, not by us.
_INTERNAL_METADATA_KEYS = ("pandas", "ARROW:schema")


def to_upath(path: PathLike) -> UPath:
    """Return ``path`` as a :class:`upath.UPath` (local paths and URLs alike)."""
    return path if isinstance(path, UPath) else UPath(path)


def is_local(path: PathLike) -> bool:
    """True when ``path`` lives on the local file system (plain path or ``file://``)."""
    return to_upath(path).protocol in _LOCAL_PROTOCOLS


def path_str(path: PathLike) -> str:
    """Canonical string for ``path``: absolute local path, or the URL unchanged.

    This is the form stored in the index and feature tables' ``path`` column.
    """
    upath = to_upath(path)
    if upath.protocol in _LOCAL_PROTOCOLS:
        return os.path.abspath(upath.path)
    return str(upath)


def read_bytes(path: PathLike) -> bytes:
    """Read a whole file (local or remote) once.

    Raises
    ------
    FileNotFoundError, OSError
        As raised by the underlying file system.
    """
    with to_upath(path).open("rb") as handle:
        return handle.read()


def _tmp_name(name: str) -> str:
    return f".{name}.tmp-{uuid.uuid4().hex}"


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path | UPath]:
    """Yield a temporary sibling of ``path``; move it onto ``path`` on success.

    The temporary file is in the same folder, named ``.<name>.tmp-<uuid>``.
    Write to it (``tmp.open("wb")`` works for local and remote paths). When the
    ``with`` block exits normally the temporary file replaces ``path``; when it
    raises, the temporary file is removed and ``path`` is left as it was.
    Parent folders are created.

    Parameters
    ----------
    path : str, Path or UPath
        Final destination.

    Yields
    ------
    tmp : pathlib.Path (local destination) or UPath (remote destination)
    """
    upath = to_upath(path)
    if upath.protocol in _LOCAL_PROTOCOLS:
        with _atomic_local(Path(path_str(upath))) as tmp:
            yield tmp
    else:
        with _atomic_remote(upath) as tmp:
            yield tmp


@contextlib.contextmanager
def _atomic_local(final: Path) -> Iterator[Path]:
    """:func:`atomic_path` on the local file system: fsync the temporary file, then ``os.replace`` it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(_tmp_name(final.name))
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary file for {final}")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _atomic_remote(upath: UPath) -> Iterator[UPath]:
    """:func:`atomic_path` on an fsspec file system: ``mv`` the temporary object (copy + delete on object stores)."""
    fs = upath.fs
    fs.makedirs(upath.parent.path, exist_ok=True)
    tmp = upath.with_name(_tmp_name(upath.name))
    try:
        yield tmp
        if not fs.exists(tmp.path):
            raise FileNotFoundError(f"nothing was written to the temporary file for {upath}")
        fs.mv(tmp.path, upath.path)  # copy + delete on object stores
    except BaseException:
        with contextlib.suppress(Exception):
            if fs.exists(tmp.path):
                fs.rm(tmp.path)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; return :func:`path_str` of ``path``."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            handle.write(data)
    return path_str(path)


def _as_table(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"expected a pandas DataFrame or a pyarrow Table, got {type(data).__name__}")


def write_parquet_atomic(
    data: pd.DataFrame | pa.Table,
    path: PathLike,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Write a table to Parquet atomically, with extra key-value metadata.

    Parameters
    ----------
    data : pandas.DataFrame or pyarrow.Table
        The rows. A DataFrame's index is not written.
    path : str, Path or UPath
        Destination file.
    metadata : dict of str to str, optional
        Merged into the schema's key-value metadata (our keys win over existing
        ones). Values must be strings: ``json.dumps`` structured values.

    Returns
    -------
    path : str
        :func:`path_str` of the written file.
    """
    table = _as_table(data)
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"Parquet metadata must map str to str; got {key!r}: {type(value).__name__}"
                    " (json.dumps structured values)"
                )
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            pq.write_table(table, handle)
    return path_str(path)


def _require(upath: UPath, what: str, hint: str | None = None) -> None:
    if not upath.exists():
        message = f"{what} {path_str(upath)} does not exist"
        if hint:
            message += f": {hint}"
        raise FileNotFoundError(message)


def read_parquet(path: PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file into a DataFrame.

    Parameters
    ----------
    path : str, Path or UPath
    columns : list of str, optional
        Read only these columns.

    Returns
    -------
    df : pandas.DataFrame of shape (n_rows, n_columns)

    Raises
    ------
    FileNotFoundError
        Naming the path when the file does not exist.
    """
    upath = to_upath(path)
    _require(upath, "Parquet file")
    if upath.protocol in _LOCAL_PROTOCOLS:
        return pq.read_table(path_str(upath), columns=columns).to_pandas()
    with upath.open("rb") as handle:
        return pq.read_table(handle, columns=columns).to_pandas()


class ParquetTable:
    """A Parquet table read lazily: columns on demand, rows in batches (a table larger than memory, such as a 3-D
    survey's window features, is never loaded whole).

    Raises FileNotFoundError naming the path when the file does not exist.
    """

    def __init__(self, path: PathLike):
        self.path = to_upath(path)
        _require(self.path, "Parquet file")
        with self.path.open("rb") as handle:
            meta = pq.ParquetFile(handle).metadata
            self.num_rows = int(meta.num_rows)
            self.columns = list(meta.schema.to_arrow_schema().names)

    def __len__(self) -> int:
        return self.num_rows

    def read(self, columns: list[str]) -> pd.DataFrame:
        """Only ``columns``, every row."""
        return read_parquet(self.path, columns=columns)

    def iter_batches(self, columns: list[str], batch_size: int = 16384) -> Iterator[pd.DataFrame]:
        """``columns`` in consecutive batches of at most ``batch_size`` rows, in row order."""
        with self.path.open("rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_size, columns=columns):
                yield batch.to_pandas()


def read_parquet_metadata(path: PathLike) -> dict[str, str]:
    """Key-value schema metadata of a Parquet file (footer only, no rows read).

    The ``pandas`` and ``ARROW:schema`` entries that pandas/pyarrow add on their
    own are left out, so the result is what was passed as ``metadata`` to
    :func:`write_parquet_atomic` (plus anything other writers added).
    """
    upath = to_upath(path)
    _require(upath, "Parquet file")
    with upath.open("rb") as handle:
        raw = pq.read_schema(handle).metadata or {}
    decoded = {k.decode(): v.decode() for k, v in raw.items()}
    return {k: v for k, v in decoded.items() if k not in _INTERNAL_METADATA_KEYS}


def save_joblib_atomic(obj: Any, path: PathLike) -> str:
    """Pickle ``obj`` with joblib to ``path`` atomically; return :func:`path_str`."""
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            joblib.dump(obj, handle)
    return path_str(path)


def save_npy_atomic(array: Any, path: PathLike) -> str:
    """Write ``array`` in NumPy's ``.npy`` format to ``path`` atomically; return :func:`path_str`.

    ``np.save`` on a path string writes in place (a reader can see half a file) and knows only local paths;
    this writes through :func:`atomic_path`, so it also works on ``s3://`` and other fsspec URLs. Object
    arrays are refused (``allow_pickle=False``): use a string or numeric dtype.
    """
    with atomic_path(path) as tmp:
        with tmp.open("wb") as handle:
            np.save(handle, np.asarray(array), allow_pickle=False)
    return path_str(path)


def load_npy(path: PathLike) -> np.ndarray:
    """Read a ``.npy`` file written by :func:`save_npy_atomic` (local or remote; no pickles)."""
    upath = to_upath(path)
    _require(upath, "array file")
    with upath.open("rb") as handle:
        return np.load(io.BytesIO(handle.read()), allow_pickle=False)


def load_joblib(path: PathLike, hint: str | None = None) -> Any:
    """Load a joblib pickle.

    Parameters
    ----------
    path : str, Path or UPath
    hint : str, optional
        What to do when the file is missing, e.g.
        ``"materialize the kmeans_model asset first"``; appended to the error.

    Raises
    ------
    FileNotFoundError
        Naming the path (and the hint) when the file does not exist.
    """
    upath = to_upath(path)
    _require(upath, "model file", hint)
    with upath.open("rb") as handle:
        return joblib.load(handle)
