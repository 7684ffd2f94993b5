"""Dropped files that are still being written: telling them from bad files, and sending them back to ``incoming/``.

A writer that pauses longer than ``stable_s`` gets its half-written file claimed. The claim records what it was
based on (``.claims/<claim>.json``: size, mtime, when the file was first seen); a file that then cannot be
read as a MAT-file and whose size or mtime changed since, or changes within ``recheck_s``, is still being written:
:func:`settle_unreadable` moves it back to ``incoming/`` (:func:`put_back`, leaving ``.returned/<name>.json`` so its
first-seen time carries over to the next claim). Only one that still changes ``max_changing_s`` after it was first
seen is rejected, as never finishing.

A writer may also stall for longer than the re-check and only then go on, writing into the rejected file through
its open handle. So a file rejected as unreadable while it was younger than ``max_changing_s`` stays watched
(``rejected/.watch/<name>.json``): :func:`revive_rejected`, called on every sensor tick, moves it back to
``incoming/`` once its size or mtime changes, and stops watching it ``max_changing_s`` after it was first seen.

No Dagster imports here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping

from upath import UPath

from seis_assets.core.claims import REJECTED_DIR, RETURNED_DIR, claim_record, file_stat, write_reason
from seis_assets.core.storage import PathLike, atomic_write_bytes, is_local, path_str, to_upath

#: Rejected unreadable files that may still be written to: ``rejected/<WATCH_DIR>/<name>.json`` each
WATCH_DIR = ".watch"
#: Default seconds a file that cannot be read is watched for a change before it is rejected (two sensor intervals)
RECHECK_S = 10.0
#: Default seconds after it was first seen by which a dropped file must have stopped changing
MAX_CHANGING_S = 600.0
#: Seconds between two looks at a file during the re-check
_POLL_S = 0.5



@dataclasses.dataclass
class Settled:
    """What :func:`settle_unreadable` decided for a run's unreadable files."""

    rejected: dict[str, str]  # claimed path -> reason (the read's, or that it never stopped changing)
    returned: list[tuple[str, str, str]]  # (claimed path, its path back in incoming/, why)
    # claimed path -> its claim entry, for the rejected files young enough to be watched in rejected/ (watch_rejected)
    watch: dict[str, dict] = dataclasses.field(default_factory=dict)


def settle_unreadable(
    incoming: PathLike,
    claim_id: str,
    failures: Mapping[str, str],
    *,
    recheck_s: float = RECHECK_S,
    max_changing_s: float = MAX_CHANGING_S,
    clock=time.time,
    sleep=time.sleep,
) -> Settled:
    """Tell claimed files that failed to read as MAT-files (``failures``: path -> reason) still being written from
    bad ones.

    A file whose size or mtime differs from what its claim recorded, or changes within ``recheck_s`` (all files
    watched together, so a run waits ``recheck_s`` at most), is still being written: it goes back to ``incoming/``
    (:func:`put_back`), unless ``max_changing_s`` have passed since it was first seen: then it is rejected as never
    finishing. A file that does not change is rejected with the read's reason; while it is younger than
    ``max_changing_s`` it is also listed in ``watch`` (see :func:`watch_rejected`).
    """
    record, start = claim_record(incoming, claim_id), clock()
    claimed = {path: record.get(to_upath(path).name) or _unrecorded(path, start) for path in failures}
    changing = _watch(claimed, recheck_s, clock, sleep)
    out = Settled({}, [])
    now = clock()
    for path, reason in failures.items():
        entry = claimed[path]
        age = now - entry["first_seen"]
        if path not in changing:
            out.rejected[path] = reason
            if age < max_changing_s:
                out.watch[path] = entry
        elif age >= max_changing_s:
            out.rejected[path] = (
                f"it never stopped changing: still being written {age:.0f} s after it was first seen (limit "
                f"{max_changing_s:g} s), last read: {reason}; write it under a hidden name and rename it when done"
            )
        else:
            out.returned.append((path, put_back(incoming, path, entry, now), changing[path]))
    return out


def _unrecorded(path: str, now: float) -> dict:
    """A claimed file without a record (taken over from another claim's folder, or claimed before claims had
    records): as it is now, first seen now."""
    size, mtime, _ = file_stat(to_upath(path))
    return {"size": size, "mtime": mtime, "first_seen": now, "claims": 1}


def _watch(claimed: Mapping[str, dict], recheck_s: float, clock, sleep) -> dict[str, str]:
    """Path -> how it changed, for the files whose size or mtime differs from ``claimed`` now or within
    ``recheck_s``; returns as soon as every file changed."""
    deadline = clock() + recheck_s
    pending, changing = dict(claimed), {}
    while True:
        for path, entry in list(pending.items()):
            size, mtime, _ = file_stat(to_upath(path))
            if size != entry["size"] or (mtime is not None and entry["mtime"] is not None and mtime != entry["mtime"]):
                changing[path] = (f"its size or modification time changed after it was claimed ({entry['size']} "
                                  f"bytes then, {size} now)")
                del pending[path]
        left = deadline - clock()
        if not pending or left <= 0:
            return changing
        sleep(min(_POLL_S, left))


def put_back(incoming: PathLike, path: str, entry: Mapping, now: float) -> str:
    """Move a claimed file back into ``incoming/`` (a rename: a writer's open handle goes on writing into it), first
    leaving ``.returned/<name>.json`` so that its next claim keeps its first-seen time; return its new path.

    A file dropped meanwhile under its name is never replaced: the file comes back as ``<stem>.<n><suffix>``.
    """
    src, inc = to_upath(path), to_upath(incoming)
    inode = file_stat(src)[2]
    n = 0
    while True:  # until a free name takes it
        dst = inc / (src.name if n == 0 else f"{src.stem}.{n}{src.suffix}")
        n += 1
        if dst.exists():
            continue
        note = {"first_seen": entry["first_seen"], "claims": entry["claims"], "inode": inode, "returned_at": now}
        (inc / RETURNED_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(inc / RETURNED_DIR / f"{dst.name}.json", json.dumps(note).encode())
        try:
            _move_no_replace(src, dst)
        except FileExistsError:  # dropped under that name just now
            continue
        return path_str(dst)


def _move_no_replace(src: UPath, dst: UPath) -> None:
    """Rename ``src`` to ``dst``, raising FileExistsError instead of replacing a file there."""
    if not (is_local(src) and is_local(dst)):
        if dst.exists():
            raise FileExistsError(path_str(dst))
        src.fs.mv(src.path, dst.path)
        return
    s, d = path_str(src), path_str(dst)
    try:
        os.link(s, d)  # atomic, and fails if the name is taken (os.rename would replace the file there)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (some network shares): look, then rename
        if os.path.lexists(d):
            raise FileExistsError(d) from None
        os.rename(s, d)
        return
    os.unlink(s)


def watch_rejected(target: str, entry: Mapping, now: float) -> None:
    """Keep watching a file just rejected as unreadable (``target`` in ``rejected/``): record its size, mtime and
    inode now, with the first-seen time and claim count of ``entry``, for :func:`revive_rejected`."""
    target = to_upath(target)
    size, mtime, inode = file_stat(target)
    note = {"size": size, "mtime": mtime, "inode": inode, "first_seen": entry["first_seen"],
            "claims": entry["claims"], "rejected_at": now}
    (target.parent / WATCH_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target.parent / WATCH_DIR / f"{target.name}.json", json.dumps(note).encode())


@dataclasses.dataclass
class Revived:
    """What :func:`revive_rejected` did with the watched files in ``rejected/``."""

    returned: list[tuple[str, str]]  # (path in rejected/, its path back in incoming/): they were still being written
    never_finished: list[str]  # rejected for good: still changing ``max_changing_s`` after they were first seen
    settled: list[str]  # no longer watched: unchanged until the bound, deleted, or replaced by another file


def revive_rejected(incoming: PathLike, now: float, max_changing_s: float = MAX_CHANGING_S) -> Revived:
    """Move watched files in ``rejected/`` that changed since they were rejected back to ``incoming/``.

    A writer that stalled for longer than the re-check and then went on writes into the rejected file: it was still
    being written, so it goes back (:func:`put_back`, which keeps its first-seen time for the next claim) and its
    ``.reason.txt`` goes. One that changed later than ``max_changing_s`` after it was first seen stays rejected, its
    reason saying it never stopped changing. An unchanged file is watched until that bound, then left rejected.
    One listing of ``rejected/.watch/`` and one stat per watched file: cheap enough for every sensor tick.
    """
    out = Revived([], [], [])
    folder = to_upath(incoming) / REJECTED_DIR / WATCH_DIR
    if not folder.exists():
        return out
    for record in sorted(folder.iterdir(), key=lambda p: p.name):
        if not record.name.endswith(".json"):
            continue
        target = to_upath(incoming) / REJECTED_DIR / record.name[: -len(".json")]
        note = json.loads(record.read_text())
        try:
            size, mtime, inode = file_stat(target)
        except FileNotFoundError:
            size = mtime = inode = None
        age = now - note["first_seen"]
        if size is None or (inode is not None and note["inode"] is not None and inode != note["inode"]):
            out.settled.append(path_str(target))  # deleted, or another file rejected under the name since
        elif size == note["size"] and (mtime is None or note["mtime"] is None or mtime == note["mtime"]):
            if age < max_changing_s:
                continue  # unchanged so far: keep watching
            out.settled.append(path_str(target))
        elif age < max_changing_s:
            back = put_back(incoming, path_str(target), note, now)
            to_upath(f"{path_str(target)}.reason.txt").unlink(missing_ok=True)
            out.returned.append((path_str(target), back))
        else:
            write_reason(path_str(target), (
                f"it never stopped changing: still being written {age:.0f} s after it was first seen (limit "
                f"{max_changing_s:g} s); write it under a hidden name and rename it when done"))
            out.never_finished.append(path_str(target))
        record.unlink(missing_ok=True)
    return out
