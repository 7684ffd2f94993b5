"""Read seismic image patches from MATLAB ``.mat`` files, and index category folders.

Formats
-------
- v4, v5, v7 (up to 7.2): :func:`scipy.io.loadmat`.
- v7.3: an HDF5 file behind a 512-byte MATLAB text header, read with h5py.
  MATLAB stores arrays column-major, so h5py sees the axes reversed
  (an ``H x W`` image is an HDF5 dataset of shape ``(W, H)``); they are
  transposed back, so every reader returns MATLAB's orientation.

The format is taken from the bytes, not the file name: an HDF5 signature at
offset 0, 512, 1024, ... means v7.3; anything else goes to scipy (v4 files
have no text header, v5/v7 files a 128-byte one).

Key
---
The variable name is configurable (default ``"img"``, LANDMASS's). When
``key`` is ``None``, or names a variable the file does not hold, the loader
falls back to the file's only image-like numeric array (numeric, 2-D or
``H x W x 1`` / ``H x W x 3``, both spatial sides > 1, so scalars and vectors
such as a stored sample rate do not count). With none or several candidates it
raises :class:`PatchLoadError` listing the variables present.

Failures
--------
A file that cannot be read, is corrupt or truncated, lacks the key, holds
char/cell/struct content, NaN/Inf, a constant patch or an unexpected shape
raises :class:`PatchLoadError` (path + reason). :func:`scan_category` turns
those into quarantine rows; no file is ever replaced by made-up pixels.

Paths are str / :class:`pathlib.Path` / :class:`upath.UPath`; URLs (``s3://``,
``memory://``) work where folders do. Each file is read once: the same bytes
are hashed and parsed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from seis_assets.core.storage import PathLike, is_local, path_str, read_bytes, to_upath

_LOG = logging.getLogger(__name__)
DEFAULT_KEY = "img"
MIN_SIDE = 8
MAX_SIDE = 4096
INDEX_COLUMNS = ("path", "category", "split", "sha256", "height", "width")
QUARANTINE_COLUMNS = ("path", "category", "split", "reason")

#: MATLAB classes that hold numbers (``whosmat`` / v7.3 ``MATLAB_class`` names).
NUMERIC_CLASSES = frozenset(
    {"double", "single", "logical"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_REMOTE_WORKERS = 16
_MAX_DETAIL = 200


class PatchLoadError(ValueError):
    """A ``.mat`` file that cannot become a patch.

    Attributes
    ----------
    path : str
        The file (absolute local path or URL), or a caller-given name.
    reason : str
        Why, in words (this is the quarantine table's ``reason``).
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load patch {self.path}: {reason}")

    def __reduce__(self):  # keep path/reason through pickling (process pools)
        return (type(self), (self.path, self.reason))


# --------------------------------------------------------------------------- helpers


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _is_hdf5(data: bytes) -> bool:
    """HDF5 puts its signature at offset 0 or after a user block of 512, 1024, ... bytes."""
    if data[:8] == _HDF5_SIGNATURE:
        return True
    offset = 512
    while offset + 8 <= len(data):
        if data[offset : offset + 8] == _HDF5_SIGNATURE:
            return True
        offset *= 2
    return False


def _image_like(shape: Sequence[int]) -> bool:
    if len(shape) == 2:
        return min(shape) > 1
    if len(shape) == 3:
        return shape[2] in (1, 3) and min(shape[:2]) > 1
    return False


def _describe(listing: list[tuple[str, tuple[int, ...], str]]) -> str:
    if not listing:
        return "the file holds no variables"
    parts = [f"{name!r} ({cls} {'x'.join(map(str, shape)) or '-'})" for name, shape, cls in listing]
    return "keys present: " + ", ".join(parts)


def _choose_key(
    listing: list[tuple[str, tuple[int, ...], str]], key: str | None, name: str
) -> str:
    """Pick the only image-like numeric variable, or raise naming what is there."""
    candidates = [n for n, shape, cls in listing if cls in NUMERIC_CLASSES and _image_like(shape)]
    if len(candidates) == 1:
        if key is not None:  # not silent: the configured key was not there
            _LOG.warning("%s: key %r not found, reading its only image-like array %r", name, key, candidates[0])
        return candidates[0]
    lead = "no key given" if key is None else f"key {key!r} not found"
    if candidates:
        why = f"several image-like arrays ({', '.join(map(repr, candidates))}), set the key"
    else:
        why = "and no single 2-D numeric array to use instead"
    raise PatchLoadError(name, f"{lead}, {why}; {_describe(listing)}")


def _content_kind(arr: object) -> str | None:
    """Name of non-numeric MATLAB content (char/cell/struct/...), or None if numeric."""
    if not isinstance(arr, np.ndarray):
        return type(arr).__name__  # e.g. a scipy sparse matrix
    kind = arr.dtype.kind
    if kind in "biufc":
        return None
    if kind in "US":
        return "char"
    if kind == "O":
        return "cell"
    if kind == "V" and arr.dtype.names:
        return "struct"
    return f"dtype {arr.dtype}"


def _checked(arr: object, var: str, name: str) -> np.ndarray:
    kind = _content_kind(arr)
    if kind is not None:
        raise PatchLoadError(name, f"variable {var!r} holds {kind} content, not a numeric array")
    if arr.size == 0:
        raise PatchLoadError(name, f"variable {var!r} is empty (shape {arr.shape})")
    return arr


def _read_scipy(data: bytes, key: str | None, name: str) -> np.ndarray:
    import scipy.io

    try:
        if key is not None:
            mat = scipy.io.loadmat(io.BytesIO(data), variable_names=[key])
            if key in mat:
                return _checked(mat[key], key, name)
        listing = [
            (n, tuple(int(s) for s in shape), cls)
            for n, shape, cls in scipy.io.whosmat(io.BytesIO(data))
        ]
        chosen = _choose_key(listing, key, name)
        mat = scipy.io.loadmat(io.BytesIO(data), variable_names=[chosen])
        return _checked(mat[chosen], chosen, name)
    except PatchLoadError:
        raise
    except Exception as exc:  # scipy raises many kinds on bad bytes
        reason = f"corrupt, truncated or not a MAT-file (v4-v7.2 reader: {_short(exc)})"
        raise PatchLoadError(name, reason) from exc


def _h5_entry(obj) -> tuple[tuple[int, ...], str]:
    """MATLAB-order shape and MATLAB class of an HDF5 object."""
    import h5py

    cls = obj.attrs.get("MATLAB_class")
    if isinstance(cls, bytes):
        cls = cls.decode(errors="replace")
    if isinstance(obj, h5py.Group):
        if "MATLAB_sparse" in obj.attrs:
            return (), "sparse"
        return (), (cls or "struct")
    if cls is None:  # HDF5 not written by MATLAB: infer from the dtype
        kind = obj.dtype.kind
        if kind == "f":
            cls = "single" if obj.dtype.itemsize == 4 else "double"
        elif kind in "iu":
            cls = f"{'u' if kind == 'u' else ''}int{obj.dtype.itemsize * 8}"
        elif kind == "b":
            cls = "logical"
        else:
            cls = str(obj.dtype)
    if obj.attrs.get("MATLAB_empty", 0):
        return (0,), cls
    return tuple(int(s) for s in reversed(obj.shape)), cls


def _check_declared_size(shape: tuple[int, ...], name: str, var: str) -> None:
    """Refuse an array whose declared shape cannot be a patch, without reading (decompressing) it."""
    sides = [int(s) for s in shape]
    if len(sides) > 3 or any(s > MAX_SIDE for s in sides[:2]) or (len(sides) == 3 and sides[2] > 4):
        raise PatchLoadError(
            name, f"too large: variable {var!r} declares shape {'x'.join(map(str, sides))}; a patch is at most "
            f"{MAX_SIDE}x{MAX_SIDE}(x3) (not decompressed)"
        )


def _read_hdf5(data: bytes, key: str | None, name: str) -> np.ndarray:
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            names = [n for n in f.keys() if not n.startswith("#")]
            if key is not None and key in names:
                chosen = key
            else:
                listing = [(n, *_h5_entry(f[n])) for n in names]
                chosen = _choose_key(listing, key, name)
            obj = f[chosen]
            shape, cls = _h5_entry(obj)
            if cls not in NUMERIC_CLASSES or not isinstance(obj, h5py.Dataset):
                raise PatchLoadError(
                    name, f"variable {chosen!r} holds {cls} content, not a numeric array"
                )
            if shape == (0,):
                raise PatchLoadError(name, f"variable {chosen!r} is empty")
            _check_declared_size(shape, name, chosen)  # before h5py decompresses anything
            arr = np.asarray(obj[()])
    except PatchLoadError:
        raise
    except Exception as exc:
        reason = f"corrupt or truncated v7.3 (HDF5) MAT-file: {_short(exc)}"
        raise PatchLoadError(name, reason) from exc
    if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):  # MATLAB complex
        arr = arr["real"] + 1j * arr["imag"]
    # MATLAB is column-major: reverse the axes back to MATLAB's (H, W[, C]).
    return _checked(np.ascontiguousarray(arr.T), chosen, name)


# --------------------------------------------------------------------------- public API


def read_mat_bytes(data: bytes, key: str | None = DEFAULT_KEY, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of a ``.mat`` file and return one variable as it is stored.

    Parameters
    ----------
    data : bytes
        Whole file content.
    key : str or None, default="img"
        Variable name; ``None`` or a missing name auto-detects (see module doc).
    name : str, default="<bytes>"
        Used in error messages (pass the path).

    Returns
    -------
    array : ndarray of shape (H, W) or (H, W, C) or whatever the file holds
        Numeric (bool/int/float/complex), non-empty, MATLAB orientation.

    Raises
    ------
    PatchLoadError
        Empty, corrupt or truncated bytes, missing/ambiguous key, char, cell,
        struct or sparse content, or an empty variable.
    """
    if len(data) == 0:
        raise PatchLoadError(name, "empty file (0 bytes)")
    if _is_hdf5(data):
        return _read_hdf5(data, key, name)
    return _read_scipy(data, key, name)


def _read_file(path: PathLike) -> tuple[bytes, str]:
    name = path_str(path)
    try:
        return read_bytes(path), name
    except OSError as exc:
        raise PatchLoadError(name, f"cannot read file: {_short(exc)}") from exc


def read_mat_array(path: PathLike, key: str | None = DEFAULT_KEY) -> np.ndarray:
    """Read one variable of a ``.mat`` file (v4 to v7.3) as stored.

    Parameters
    ----------
    path : str, Path or UPath
    key : str or None, default="img"
        Variable name; ``None`` or a missing name auto-detects the only
        image-like numeric array.

    Returns
    -------
    array : ndarray
        Numeric, non-empty, MATLAB orientation (v7.3 transposed back).

    Raises
    ------
    PatchLoadError
        See :func:`read_mat_bytes`; also when the file cannot be opened.
    """
    data, name = _read_file(path)
    return read_mat_bytes(data, key, name)


def normalise_patch(a: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Check a raw array and min-max scale it to [-1, 1].

    LANDMASS patches are stored in -1..1, the F3 patches in 0..1; both come out
    with min -1 and max 1.

    Parameters
    ----------
    a : array-like of shape (H, W), (H, W, 1) or (H, W, 3)
        Numeric. Three channels are averaged.
    name : str, default="<array>"
        Used in error messages (pass the path).

    Returns
    -------
    patch : ndarray of shape (H, W), dtype float32, values in [-1, 1]

    Raises
    ------
    PatchLoadError
        Non-numeric or complex values, another ndim or channel count, a side
        below ``MIN_SIDE`` (8) or above ``MAX_SIDE`` (4096), NaN or Inf, or a
        constant patch (range below float32 resolution of its values).
    """
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    kind = _content_kind(a)
    if kind is not None:
        raise PatchLoadError(name, f"{kind} content, not a numeric array")
    if a.dtype.kind == "c":
        raise PatchLoadError(name, "complex values, expected a real-valued image")
    if a.ndim == 3 and a.shape[2] not in (1, 3):
        raise PatchLoadError(
            name, f"shape {a.shape}: a 3-D patch must be H x W x 1 or H x W x 3"
        )
    if a.ndim not in (2, 3):
        raise PatchLoadError(
            name, f"{a.ndim}-D array of shape {a.shape}, expected H x W, H x W x 1 or H x W x 3"
        )
    height, width = a.shape[:2]
    if min(height, width) == 1:
        raise PatchLoadError(name, f"shape {a.shape} is a vector, not a 2-D image")
    if min(height, width) < MIN_SIDE:
        reason = f"too small: {height}x{width}, each side must be >= {MIN_SIDE} px"
        raise PatchLoadError(name, reason)
    if max(height, width) > MAX_SIDE:
        reason = f"too large: {height}x{width}, each side must be <= {MAX_SIDE} px"
        raise PatchLoadError(name, reason)
    x = a.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise PatchLoadError(name, f"non-finite values: {n_nan} NaN, {n_inf} Inf")
    if x.ndim == 3:
        x = x.mean(axis=2)
    lo, hi = float(x.min()), float(x.max())
    spread = hi - lo
    if not spread > np.finfo(np.float32).eps * max(abs(lo), abs(hi)):
        what = "constant" if spread == 0 else "nearly constant"
        raise PatchLoadError(name, f"{what} patch (values {lo:g} .. {hi:g})")
    out = ((x - lo) * (2.0 / spread) - 1.0).astype(np.float32)
    return np.clip(out, -1.0, 1.0, out=out)


def read_patch_bytes(
    data: bytes, key: str | None = DEFAULT_KEY, name: str = "<bytes>"
) -> np.ndarray:
    """Parse + normalise the bytes of a ``.mat`` file (read once, hash them too).

    Returns
    -------
    patch : ndarray of shape (H, W), dtype float32, values in [-1, 1]

    Raises
    ------
    PatchLoadError
        Any failure of :func:`read_mat_bytes` or :func:`normalise_patch`.
    """
    return normalise_patch(read_mat_bytes(data, key, name), name=name)


def load_patch(path: PathLike, key: str | None = DEFAULT_KEY) -> np.ndarray:
    """Load one patch: read, check and scale to [-1, 1].

    Parameters
    ----------
    path : str, Path or UPath
    key : str or None, default="img"

    Returns
    -------
    patch : ndarray of shape (H, W), dtype float32, values in [-1, 1]

    Raises
    ------
    PatchLoadError
        Every failure (unreadable, not a MAT-file, corrupt, truncated, missing
        key, bad content), naming the file.
    """
    data, name = _read_file(path)
    return read_patch_bytes(data, key, name)


def load_patches(paths: Iterable[PathLike], key: str | None = DEFAULT_KEY) -> list[np.ndarray]:
    """Load several patches with :func:`load_patch`.

    Returns
    -------
    patches : list of ndarray of shape (H_i, W_i), float32 in [-1, 1]

    Raises
    ------
    PatchLoadError
        For the first file that fails (use :func:`scan_category` to sort good
        from bad files instead).
    """
    return [load_patch(p, key) for p in paths]


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (the feature cache key)."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def list_mat_files(folder: PathLike) -> list[str]:
    """``.mat`` files directly in ``folder`` (not recursive).

    The extension match is case-insensitive; hidden files (name starting with
    ``.``, e.g. macOS ``._x.mat`` resource forks or our own temporary files) and
    sub-folders are ignored.

    Returns
    -------
    paths : list of str, sorted
        Absolute local paths, or URLs for remote folders.
    """
    upath = to_upath(folder)
    if is_local(upath):
        with os.scandir(path_str(upath)) as entries:
            return sorted(
                os.path.join(path_str(upath), e.name)
                for e in entries
                if _is_mat_name(e.name) and e.is_file()
            )
    names = [
        info["name"].rstrip("/").rsplit("/", 1)[-1]
        for info in _fresh_listing(upath)
        if info.get("type") == "file"
    ]
    return sorted(str(upath / n) for n in names if _is_mat_name(n))


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One listed file: its path (absolute local path or URL), size in bytes and modification time (epoch s)."""

    path: str
    size: int
    mtime: float


def _remote_mtime(info: Mapping) -> float:
    """Modification time from an fsspec listing entry (local: ``mtime``; S3: ``LastModified``; GCS: ``updated``)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            return float(pd.Timestamp(value).timestamp())
    return 0.0


def list_mat_files_detailed(folder: PathLike) -> list[FileInfo]:
    """``.mat`` files directly in ``folder`` with size and mtime, from ONE listing call.

    The same selection as :func:`list_mat_files`. On an object store this is a single ``ls(detail=True)`` request
    however many files the folder holds (sensors call it every tick); locally it is one ``os.scandir``.

    Returns
    -------
    files : list of FileInfo, sorted by path
    """
    upath = to_upath(folder)
    if is_local(upath):
        root = path_str(upath)
        out = []
        with os.scandir(root) as entries:
            for e in entries:
                if _is_mat_name(e.name) and e.is_file():
                    st = e.stat()
                    out.append(FileInfo(os.path.join(root, e.name), int(st.st_size), float(st.st_mtime)))
        return sorted(out, key=lambda f: f.path)
    out = []
    for info in _fresh_listing(upath):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if info.get("type") == "file" and _is_mat_name(name):
            out.append(FileInfo(str(upath / name), int(info.get("size") or 0), _remote_mtime(info)))
    return sorted(out, key=lambda f: f.path)


def _fresh_listing(upath) -> list[dict]:
    """``ls(detail=True)`` of a remote folder, asked of the server: fsspec file systems (s3fs, gcsfs) cache
    listings per instance, and a long-lived process (the sensor daemon) would otherwise never see files that
    another client added."""
    upath.fs.invalidate_cache(upath.path)
    return upath.fs.ls(upath.path, detail=True)


def _is_mat_name(name: str) -> bool:
    return name.lower().endswith(".mat") and not name.startswith(".")


def list_categories(train_dir: PathLike) -> list[str]:
    """Names of the sub-folders of ``train_dir`` holding at least one ``.mat``.

    Returns
    -------
    categories : list of str, sorted (names may contain spaces, e.g. "salt dome")

    Raises
    ------
    FileNotFoundError
        Naming ``train_dir`` when it is not a folder.
    """
    upath = to_upath(train_dir)
    if not is_local(upath):
        upath.fs.invalidate_cache(upath.path)  # see _fresh_listing: a new category folder must be seen
    if not upath.is_dir():
        raise FileNotFoundError(f"training folder {path_str(upath)} does not exist")
    return sorted(
        child.name
        for child in upath.iterdir()
        if not child.name.startswith(".") and child.is_dir() and list_mat_files(child)
    )


def _empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    for c in ("height", "width"):
        if c in frame:
            frame[c] = frame[c].astype("int64")
    return frame


def _scan_one(path: str, key: str | None) -> tuple[str, int, int] | PatchLoadError:
    try:
        data, name = _read_file(path)
        patch = read_patch_bytes(data, key, name)
    except PatchLoadError as exc:
        return exc
    return hashlib.sha256(data).hexdigest(), patch.shape[0], patch.shape[1]


def scan_category(
    root: PathLike,
    category: str,
    split: str,
    key: str | None = DEFAULT_KEY,
    *,
    max_workers: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hash and validate every ``.mat`` file of ``<root>/<category>``.

    Each file is read once; its bytes are hashed and fully loaded with
    :func:`read_patch_bytes`, so a file in the index will load later.

    Parameters
    ----------
    root : str, Path or UPath
        The split folder, e.g. ``data/train`` (the category folder is
        ``root / category``).
    category : str
        Folder name, also the ``category`` column (may contain spaces).
    split : str
        Written to the ``split`` column. For ``"train"`` a missing folder is an
        error; for any other split it gives empty frames.
    key : str or None, default="img"
    max_workers : int, optional
        Threads reading files. Default: 1 for local folders, 16 for remote
        ones (latency bound).

    Returns
    -------
    index : DataFrame with columns INDEX_COLUMNS
        path (absolute str or URL), category, split, sha256 (hex), height, width (int64).
    quarantine : DataFrame with columns QUARANTINE_COLUMNS
        path, category, split, reason. Every listed file is in exactly one frame.

    Raises
    ------
    FileNotFoundError
        Naming the folder, when it is missing and ``split == "train"``.
    """
    folder = to_upath(root) / category
    if not folder.is_dir():
        if split == "train":
            raise FileNotFoundError(
                f"category folder {path_str(folder)} does not exist (split {split!r})"
            )
        return _empty_frame(INDEX_COLUMNS), _empty_frame(QUARANTINE_COLUMNS)
    return scan_files(list_mat_files(folder), category, split, key, max_workers=max_workers,
                      remote=not is_local(folder))


def scan_files(
    paths: Sequence[str],
    category: str | None,
    split: str,
    key: str | None = DEFAULT_KEY,
    *,
    max_workers: int | None = None,
    remote: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hash and validate the listed ``.mat`` files (see :func:`scan_category`); ``category`` may be ``None``
    (unlabelled). Returns ``(index, quarantine)``; every path is in exactly one frame."""
    workers = max_workers or (_REMOTE_WORKERS if remote else 1)
    if workers > 1 and len(paths) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda p: _scan_one(p, key), paths))
    else:
        results = [_scan_one(p, key) for p in paths]
    good, bad = [], []
    for path, result in zip(paths, results):
        if isinstance(result, PatchLoadError):
            bad.append((path, category, split, result.reason))
        else:
            good.append((path, category, split, *result))
    index = pd.DataFrame(good, columns=list(INDEX_COLUMNS)) if good else _empty_frame(INDEX_COLUMNS)
    index = index.astype({"height": "int64", "width": "int64"})
    if bad:
        quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    else:
        quarantine = _empty_frame(QUARANTINE_COLUMNS)
    return index, quarantine


def index_category(category: str, roots: Mapping[str, PathLike], key: str | None = DEFAULT_KEY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`scan_category` over several splits, e.g. ``{"train": "data/train", "test": "data/test"}``.

    Returns the concatenated index and quarantine frames (``split`` column tells them apart). Only the ``train``
    folder must exist.
    """
    scans = [scan_category(root, category, split, key) for split, root in roots.items()]
    index = pd.concat([s[0] for s in scans], ignore_index=True)
    quarantine = pd.concat([s[1] for s in scans], ignore_index=True)
    return index, quarantine
