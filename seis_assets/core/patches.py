"""Turn a raw array into a patch: check it and min-max scale it to [-1, 1]; load patches from ``.mat`` files.

A patch is a real-valued 2-D image (``H x W``, or ``H x W x 1`` / ``H x W x 3`` whose channels are averaged), each
side between :data:`~seis_assets.core.matfiles.MIN_SIDE` and :data:`~seis_assets.core.matfiles.MAX_SIDE`, finite
and not constant. Anything else raises :class:`~seis_assets.core.matfiles.PatchLoadError` naming the file; it is
never replaced by made-up pixels. The same check and scaling serve ``.mat`` files and SEG-Y windows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from seis_assets.core.matfiles import (
    DEFAULT_KEY, MAX_SIDE, MIN_SIDE, PatchLoadError, content_kind, read_file, read_mat_bytes,
)
from seis_assets.core.storage import PathLike


def _check_patch_array(a: np.ndarray, name: str) -> None:
    """Raise :class:`PatchLoadError` unless ``a`` is a real numeric image of an allowed shape and size."""
    kind = content_kind(a)
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


def has_signal(lo, hi):
    """Whether values from ``lo`` to ``hi`` can be scaled to [-1, 1]: their range is above the float32 resolution of
    the values (what :func:`normalise_patch` asks of a patch). Element-wise on arrays; False where either is NaN."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return (hi - lo) > np.finfo(np.float32).eps * np.maximum(np.abs(lo), np.abs(hi))


def live_traces(section: np.ndarray) -> np.ndarray:
    """Per trace of ``section`` (n_traces, n_samples), whether it holds data: every sample finite and more than one
    value (:func:`has_signal`). A corrupt trace (NaN, Inf) and a dead one (one value throughout: zero padding) do
    not."""
    section = np.asarray(section)
    with np.errstate(invalid="ignore"):
        return has_signal(section.min(axis=1), section.max(axis=1))


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
    _check_patch_array(a, name)
    x = a.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        raise PatchLoadError(name, f"non-finite values: {n_nan} NaN, {n_inf} Inf")
    if x.ndim == 3:
        x = x.mean(axis=2)
    lo, hi = float(x.min()), float(x.max())
    spread = hi - lo
    if not has_signal(lo, hi):
        what = "constant" if spread == 0 else "nearly constant"
        raise PatchLoadError(name, f"{what} patch (values {lo:g} .. {hi:g})")
    out = ((x - lo) * (2.0 / spread) - 1.0).astype(np.float32)
    return np.clip(out, -1.0, 1.0, out=out)


def read_patch_bytes(
    data: bytes, key: str | None = DEFAULT_KEY, name: str = "<bytes>"
) -> np.ndarray:
    """:func:`normalise_patch` of :func:`~seis_assets.core.matfiles.read_mat_bytes`: the same return and errors.

    It takes the bytes, so a caller that also hashes them reads the file once.
    """
    return normalise_patch(read_mat_bytes(data, key, name), name=name)


def load_patch(path: PathLike, key: str | None = DEFAULT_KEY) -> np.ndarray:
    """Load one patch from a ``.mat`` file: read, check and scale to [-1, 1].

    ``path`` is a str, Path or UPath; ``key`` as in :func:`~seis_assets.core.matfiles.read_mat_bytes`. Returns what
    :func:`normalise_patch` returns. Every failure (unreadable, not a MAT-file, corrupt, truncated, missing key,
    bad content) raises :class:`PatchLoadError` naming the file.
    """
    data, name = read_file(path)
    return read_patch_bytes(data, key, name)


def load_patches(paths: Iterable[PathLike], key: str | None = DEFAULT_KEY) -> list[np.ndarray]:
    """Load several patches with :func:`load_patch`.

    Returns
    -------
    patches : list of ndarray of shape (H_i, W_i), float32 in [-1, 1]

    Raises
    ------
    PatchLoadError
        For the first file that fails (use :func:`seis_assets.core.mat_index.scan_category` to sort good
        from bad files instead).
    """
    return [load_patch(p, key) for p in paths]
