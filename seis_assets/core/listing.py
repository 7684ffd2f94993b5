"""List the ``.mat`` files and sub-folders of a folder, local or remote, as the sensors and the indexers see them.

What counts as a patch file: a name ending in ``.mat`` (any case) that does not start with ``.`` (macOS ``._x.mat``
resource forks, our own temporary files). Sub-folders and hidden entries are never patch files.

Remote folders (``s3://``, ``gs://``, ``memory://``) are listed with one ``ls(detail=True)`` request asked of the
server (:func:`fresh_listing`): fsspec file systems cache listings per instance, and a long-lived process (the
sensor daemon) would otherwise never see files that another client added. Local folders are one ``os.scandir``.

No Dagster here: the sensors, the claims of dropped files and the partition planner all list through this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import pandas as pd

from seis_assets.core.storage import PathLike, is_local, path_str, to_upath


@dataclasses.dataclass(frozen=True)
class FileInfo:
    """One listed file: its path (absolute local path or URL), size in bytes and modification time (epoch s)."""

    path: str
    size: int
    mtime: float


def is_mat_name(name: str) -> bool:
    """True for a file name that can be a patch file: ends in ``.mat`` (any case), not hidden."""
    return name.lower().endswith(".mat") and not name.startswith(".")


def fresh_listing(upath) -> list[dict]:
    """``ls(detail=True)`` of a remote folder, asked of the server: fsspec file systems (s3fs, gcsfs) cache
    listings per instance, and a long-lived process (the sensor daemon) would otherwise never see files that
    another client added."""
    upath.fs.invalidate_cache(upath.path)
    return upath.fs.ls(upath.path, detail=True)


def remote_mtime(info: Mapping) -> float:
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


def _entry_name(info: Mapping) -> str:
    """The last component of an fsspec listing entry's ``name`` (folders may end in ``/``)."""
    return info["name"].rstrip("/").rsplit("/", 1)[-1]


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
                if is_mat_name(e.name) and e.is_file()
            )
    names = [_entry_name(info) for info in fresh_listing(upath) if info.get("type") == "file"]
    return sorted(str(upath / n) for n in names if is_mat_name(n))


def list_folder(folder: PathLike) -> tuple[list[FileInfo], list[str]]:
    """``.mat`` files (with size, mtime) and visible sub-folder names directly in ``folder``, from one listing.

    Returns ``(files sorted by path, folder names sorted)``. Raises ``FileNotFoundError`` / ``PermissionError`` /
    ``OSError`` as the file system does.
    """
    upath = to_upath(folder)
    files, folders = [], []
    if is_local(upath):
        root = path_str(upath)
        with os.scandir(root) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    folders.append(e.name)
                elif is_mat_name(e.name) and e.is_file():
                    st = e.stat()
                    files.append(FileInfo(os.path.join(root, e.name), int(st.st_size), float(st.st_mtime)))
    else:
        for info in fresh_listing(upath):  # asked of the server: a sensor must see files other clients added
            name = _entry_name(info)
            if name.startswith("."):
                continue
            if info.get("type") == "directory":
                folders.append(name)
            elif info.get("type") == "file" and is_mat_name(name):
                files.append(FileInfo(str(upath / name), int(info.get("size") or 0), remote_mtime(info)))
    return sorted(files, key=lambda f: f.path), sorted(folders)


def list_mat_files_detailed(folder: PathLike) -> list[FileInfo]:
    """``.mat`` files directly in ``folder`` with size and mtime, from ONE listing call.

    The same selection as :func:`list_mat_files`. On an object store this is a single ``ls(detail=True)`` request
    however many files the folder holds (sensors call it every tick); locally it is one ``os.scandir``.

    Returns
    -------
    files : list of FileInfo, sorted by path
    """
    return list_folder(folder)[0]


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
        upath.fs.invalidate_cache(upath.path)  # see fresh_listing: a new category folder must be seen
    if not upath.is_dir():
        raise FileNotFoundError(f"training folder {path_str(upath)} does not exist")
    return sorted(
        child.name
        for child in upath.iterdir()
        if not child.name.startswith(".") and child.is_dir() and list_mat_files(child)
    )
