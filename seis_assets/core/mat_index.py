"""Index the ``.mat`` files of a category folder: one row per good file, one quarantine row per bad one.

Every listed file is read once; its bytes are hashed (SHA-256, the feature cache key) and fully loaded as a patch
(:func:`seis_assets.core.patches.read_patch_bytes`), so a file in the index will load later and a file that cannot
(:class:`~seis_assets.core.matfiles.PatchLoadError`) is a quarantine row with its reason; it never stops the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from seis_assets.core.listing import list_mat_files
from seis_assets.core.matfiles import DEFAULT_KEY, PatchLoadError, read_file
from seis_assets.core.patches import read_patch_bytes
from seis_assets.core.storage import PathLike, is_local, path_str, read_bytes, to_upath

INDEX_COLUMNS = ("path", "category", "split", "sha256", "height", "width")
QUARANTINE_COLUMNS = ("path", "category", "split", "reason")
#: Threads reading a remote folder (latency bound); a local folder is read by one.
_REMOTE_WORKERS = 16


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (the feature cache key)."""
    return hashlib.sha256(read_bytes(path)).hexdigest()


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    """An empty index or quarantine frame with ``columns`` (str; ``height`` and ``width`` int64)."""
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
    for c in ("height", "width"):
        if c in frame:
            frame[c] = frame[c].astype("int64")
    return frame


def _scan_one(path: str, key: str | None) -> tuple[str, int, int] | PatchLoadError:
    try:
        data, name = read_file(path)
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
        return empty_frame(INDEX_COLUMNS), empty_frame(QUARANTINE_COLUMNS)
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
    index = pd.DataFrame(good, columns=list(INDEX_COLUMNS)) if good else empty_frame(INDEX_COLUMNS)
    index = index.astype({"height": "int64", "width": "int64"})
    if bad:
        quarantine = pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS))
    else:
        quarantine = empty_frame(QUARANTINE_COLUMNS)
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
