"""Where patches come from, and how they are cut into independent runs (partition keys). No Dagster here.

Two layouts of the training folder (the ``labels`` setting):

- ``folders`` (LANDMASS): one sub-folder per category; the folder name is the patch's label. Files directly in
  the training folder are ignored.
- ``none``: the folders are *not* categories. The training folder may be flat (the ``.mat`` files lie directly in
  it: group :data:`ROOT_GROUP`) or hold sub-folders (each one a group); every patch's label is null.

A *group* is one folder (a category, or an unlabelled folder). A group with more files than ``shard_size`` (train
and test together) is split into ``n`` shards, ``n`` a power of two: a file belongs to shard
``stable_hash(file name) mod n``. So a category of 10,000 files with ``shard_size=2000`` becomes 8 independent
ingest runs. Why a hash of the name and not a second partition dimension or sorted chunks:

- a file's shard depends on its name only, so adding or removing files leaves every other file where it was and
  only the shards whose files changed are re-ingested (the feature cache stays per file);
- the name, not the full path, so moving the data folder (or mounting it elsewhere) changes nothing;
- ``n`` doubles when a group grows past ``n * shard_size`` files: shard ``j`` of ``2n`` holds a subset of shard
  ``j mod n`` of ``n``, whose table is the feature cache of the new shard (:func:`previous_keys`);
- one partition dimension keeps the key readable in the UI (``salt dome~03of08``) and keeps the unsharded key
  identical to the folder name (existing warehouses stay valid); a second dimension would force a shard key on
  every category, and multi-partitions cannot be dynamic in both dimensions.

Partition keys are the group name, or ``<group>~<shard>of<n>`` (zero-padded). A folder or file name that cannot
be a key is reported with its reason by :func:`name_problem` and skipped by the caller; the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
from collections.abc import Mapping

import pandas as pd

from seis_assets.core.listing import FileInfo, list_folder
from seis_assets.core.mat_index import INDEX_COLUMNS, QUARANTINE_COLUMNS, empty_frame, scan_files
from seis_assets.core.matfiles import DEFAULT_KEY
from seis_assets.core.storage import PathLike, is_local, path_str, to_upath

LABELS = ("folders", "none")
#: The group of ``.mat`` files lying directly in an unlabelled (flat) training folder.
ROOT_GROUP = "(root)"
#: A group with more files than this is split into shards (0 = never).
DEFAULT_SHARD_SIZE = 2000
#: Substrings Dagster refuses in partition keys (dagster/_core/definitions/partitions/utils/base.py).
DAGSTER_INVALID_SUBSTRINGS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")
_SHARD = re.compile(r"^(?P<group>.+)~(?P<shard>\d+)of(?P<n>\d+)$")


def check_labels(labels: str) -> str:
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
    return labels


def printable(name: str) -> str:
    """A name as it can be shown and stored: bytes that are not UTF-8 become ``\\xNN`` escapes."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def name_problem(name: str, *, folder: bool = False) -> str | None:
    """Why ``name`` (a folder, or with ``folder=False`` a file) cannot take part, or ``None`` when it can."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if not folder:
        return None
    bad = [s for s in DAGSTER_INVALID_SUBSTRINGS if s in name]
    if bad:
        return f"name contains {bad[0]!r}, which Dagster does not allow in a partition key"
    if name == ROOT_GROUP:
        return f"{ROOT_GROUP!r} is reserved for the files directly in the training folder"
    if _SHARD.match(name):
        return "name looks like a shard key (<name>~<i>of<n>); rename the folder"
    return None


# ------------------------------------------------------------------------------------------- shards and keys
def stable_shard(name: str, n_shards: int) -> int:
    """Shard of a file name among ``n_shards``: SHA-1 of the UTF-8 name, first 8 bytes, mod ``n_shards``."""
    if n_shards <= 1:
        return 0
    digest = hashlib.sha1(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def n_shards_for(n_files: int, shard_size: int) -> int:
    """Smallest power of two ``n`` with ``n * shard_size >= n_files`` (1 when ``shard_size`` is 0)."""
    if shard_size <= 0 or n_files <= shard_size:
        return 1
    return 1 << math.ceil(math.log2(math.ceil(n_files / shard_size)))


def partition_key(group: str, shard: int = 0, n_shards: int = 1) -> str:
    if n_shards <= 1:
        return group
    width = len(str(n_shards))
    return f"{group}~{shard:0{width}d}of{n_shards:0{width}d}"


@dataclasses.dataclass(frozen=True)
class PartitionSpec:
    """What a partition key stands for: the files of ``group`` whose :func:`stable_shard` is ``shard``."""

    group: str
    shard: int = 0
    n_shards: int = 1

    @property
    def key(self) -> str:
        return partition_key(self.group, self.shard, self.n_shards)

    def holds(self, file_name: str) -> bool:
        return stable_shard(file_name, self.n_shards) == self.shard


def parse_partition_key(key: str) -> PartitionSpec:
    match = _SHARD.match(key)
    if not match:
        return PartitionSpec(key)
    shard, n = int(match["shard"]), int(match["n"])
    if not 0 <= shard < n:
        raise ValueError(f"partition key {key!r}: shard {shard} is not below {n}")
    return PartitionSpec(match["group"], shard, n)


def previous_keys(key: str) -> list[str]:
    """Keys whose feature table may hold this partition's rows, best first: the key itself, then the same group
    at coarser shard counts (the shard it was split from), then the finer one it was merged from."""
    spec = parse_partition_key(key)
    out = [key]
    n = spec.n_shards // 2
    while n >= 1:
        out.append(partition_key(spec.group, spec.shard % n, n))
        n //= 2
    out.append(partition_key(spec.group, spec.shard, spec.n_shards * 2))
    return out


# ------------------------------------------------------------------------------------------------- listing
@dataclasses.dataclass
class GroupListing:
    """One look at the training (and test) folder, for the sensor.

    files : {group: [FileInfo]} train and test ``.mat`` files of each group that holds at least one train file
    empty : groups whose folder exists but holds no ``.mat`` file now (kept, never deleted)
    unreadable : {group: reason} folders that exist but could not be listed (kept, never deleted)
    skipped : [(name, reason)] folders and files that cannot take part (bad names), logged by the caller
    """

    files: dict[str, list[FileInfo]] = dataclasses.field(default_factory=dict)
    empty: set[str] = dataclasses.field(default_factory=set)
    unreadable: dict[str, str] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _good_files(files: list[FileInfo], skipped: list) -> list[FileInfo]:
    out = []
    for f in files:
        problem = name_problem(os.path.basename(f.path))
        if problem:
            skipped.append((printable(f.path), problem))
        else:
            out.append(f)
    return out


def list_groups(train_dir: PathLike, test_dir: PathLike | None, labels: str = "folders") -> GroupListing:
    """Every group of the training folder with its train and test files (one listing call per folder).

    Raises ``FileNotFoundError`` when ``train_dir`` does not exist and ``OSError`` (e.g. ``PermissionError``) when
    it cannot be listed: the caller then keeps every partition. A sub-folder that cannot be listed is reported in
    ``unreadable``, one with a bad name in ``skipped``; the other folders go on.
    """
    check_labels(labels)
    out = GroupListing()
    root_files, folders = list_folder(train_dir)
    test_root = to_upath(test_dir) if test_dir is not None else None

    def test_files(group: str) -> list[FileInfo]:
        if test_root is None:
            return []
        folder = test_root if group == ROOT_GROUP else test_root / group
        try:
            files = list_folder(folder)[0]
        except FileNotFoundError:
            return []
        return _good_files(files, out.skipped)

    if labels == "none":
        good = _good_files(root_files, out.skipped)
        if good:
            out.files[ROOT_GROUP] = good + test_files(ROOT_GROUP)
    for name in folders:
        problem = name_problem(name, folder=True)
        if problem:
            out.skipped.append((printable(path_str(to_upath(train_dir) / name)), problem))
            continue
        try:
            files = _good_files(list_folder(to_upath(train_dir) / name)[0], out.skipped)
        except OSError as exc:
            out.unreadable[name] = f"{type(exc).__name__}: {exc}"
            continue
        if files:
            out.files[name] = files + test_files(name)
        else:
            out.empty.add(name)
    return out


def fingerprint(files: list[FileInfo]) -> str:
    """Changes when a file is added, removed, renamed or rewritten (size or mtime)."""
    h = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.size}\0{f.mtime}\n".encode())
    return h.hexdigest()[:16]


def plan_partitions(files: Mapping[str, list[FileInfo]], shard_size: int = DEFAULT_SHARD_SIZE) -> dict[str, str]:
    """``{partition key: fingerprint of its files}`` for every group (sharded where it is larger than
    ``shard_size``)."""
    plan = {}
    for group, group_files in files.items():
        n = n_shards_for(len(group_files), shard_size)
        shards: dict[int, list[FileInfo]] = {i: [] for i in range(n)}
        for f in group_files:
            shards[stable_shard(os.path.basename(f.path), n)].append(f)
        for i, shard_files in shards.items():
            plan[partition_key(group, i, n)] = fingerprint(shard_files)
    return plan


def current_partition_keys(
    train_dir: PathLike, test_dir: PathLike | None, labels: str = "folders", shard_size: int = DEFAULT_SHARD_SIZE
) -> list[str]:
    """The partition keys the training folder holds now (what the sensor plans), sorted."""
    return sorted(plan_partitions(list_groups(train_dir, test_dir, labels).files, shard_size))


# ------------------------------------------------------------------------------------------------ indexing
def index_partition(
    key: str, roots: Mapping[str, PathLike], labels: str = "folders", mat_key: str | None = DEFAULT_KEY
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index the files of one partition over several splits (e.g. ``{"train": ..., "test": ...}``).

    ``category`` is the folder name with ``labels="folders"`` and null with ``labels="none"``. A file whose name
    is not valid UTF-8 goes to the quarantine with that reason (its path shown with ``\\xNN`` escapes).

    Returns ``(index, quarantine)`` as :func:`seis_assets.core.mat_index.scan_files`. Raises ``FileNotFoundError``
    naming the folder when the train folder of the group does not exist.
    """
    check_labels(labels)
    spec = parse_partition_key(key)
    category = spec.group if labels == "folders" else None
    if labels == "folders" and spec.group == ROOT_GROUP:
        raise ValueError(f"partition {key!r} is the unlabelled root group, but labels='folders'")
    indexes, quarantines = [], []
    for split, root in roots.items():
        folder = to_upath(root) if spec.group == ROOT_GROUP else to_upath(root) / spec.group
        try:
            files = list_folder(folder)[0]
        except FileNotFoundError:
            if split == "train":
                raise FileNotFoundError(f"folder {path_str(folder)} of partition {key!r} does not exist") from None
            continue
        names = [(f.path, os.path.basename(f.path)) for f in files]
        mine = [(p, n) for p, n in names if spec.holds(n) if name_problem(n) is None]
        # a name that is not UTF-8 cannot be hashed to a shard: shard 0 reports it, once
        bad = [(printable(p), category, split, f"file {name_problem(n)}")
               for p, n in names if name_problem(n) and spec.shard == 0]
        index, quarantine = scan_files([p for p, _ in mine], category, split, mat_key, remote=not is_local(folder))
        indexes.append(index)
        quarantines.append(quarantine)
        if bad:
            quarantines.append(pd.DataFrame(bad, columns=list(QUARANTINE_COLUMNS)))
    index = pd.concat(indexes, ignore_index=True) if indexes else empty_frame(INDEX_COLUMNS)
    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else empty_frame(QUARANTINE_COLUMNS)
    return index, quarantine
