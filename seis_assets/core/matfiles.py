"""Read MATLAB ``.mat`` files: one numeric variable as stored, or a :class:`PatchLoadError` saying why not.

Turning the array into a patch (checks, scaling to [-1, 1]) is :mod:`seis_assets.core.patches`; indexing a
category folder is :mod:`seis_assets.core.mat_index`; listing folders is :mod:`seis_assets.core.listing`.

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
A file that cannot be read, is corrupt or truncated, lacks the key or holds
char/cell/struct content raises :class:`PatchLoadError` (path + reason); so do
NaN/Inf, a constant patch or an unexpected shape when the array becomes a patch
(:func:`seis_assets.core.patches.normalise_patch`). ``mat_index.scan_category``
turns those into quarantine rows; no file is ever replaced by made-up pixels.

Paths are str / :class:`pathlib.Path` / :class:`upath.UPath`; URLs (``s3://``,
``memory://``) work where folders do. Each file is read once: the same bytes
are hashed and parsed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import h5py
import numpy as np
import scipy.io

from seis_assets.core.storage import PathLike, path_str, read_bytes

_LOG = logging.getLogger(__name__)
DEFAULT_KEY = "img"
#: Smallest and largest side of a patch, in pixels (:func:`seis_assets.core.patches.normalise_patch` checks both;
#: the v7.3 reader refuses a larger declared array before decompressing it).
MIN_SIDE = 8
MAX_SIDE = 4096

#: MATLAB classes that hold numbers (``whosmat`` / v7.3 ``MATLAB_class`` names).
NUMERIC_CLASSES = frozenset(
    {"double", "single", "logical"}
    | {f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)}
)

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
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


def content_kind(arr: object) -> str | None:
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
    kind = content_kind(arr)
    if kind is not None:
        raise PatchLoadError(name, f"variable {var!r} holds {kind} content, not a numeric array")
    if arr.size == 0:
        raise PatchLoadError(name, f"variable {var!r} is empty (shape {arr.shape})")
    return arr


def _read_scipy(data: bytes, key: str | None, name: str) -> np.ndarray:
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


def read_file(path: PathLike) -> tuple[bytes, str]:
    """The bytes of a file and its canonical name (:func:`~seis_assets.core.storage.path_str`), read once so the
    same bytes can be hashed and parsed. Raises :class:`PatchLoadError` when the file cannot be read."""
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
    data, name = read_file(path)
    return read_mat_bytes(data, key, name)
