"""Claims on dropped files: each file in ``incoming_dir`` is handed to exactly one prediction run.

How a file travels::

    incoming/x.mat                       dropped (eligible once its size and mtime are stable for ``stable_s``)
    incoming/.claims/<claim>/x.mat       claimed: renamed here by the sensor (or by a run launched by hand); the
                                         run for <claim> owns it, nobody else sees it
    incoming/processed/x.mat             predicted (one row in warehouse/new_file_predictions/<claim>.parquet)
    incoming/rejected/x.mat (+ .reason.txt)   unreadable, with the reason
    incoming/x.mat (again)               unreadable but still being written: back, claimed again once stable

The claim is a rename, so it is atomic on a local file system: of two claimers of one file, one gets it and the
other finds it gone ("already handled"). Once a file is claimed its name in ``incoming/`` is free: a file dropped
later under the same name is a new file. Hidden names (starting with ``.``) are never looked at, which gives
writers a safe convention: write ``.x.mat.part`` (or any hidden name), then rename it to ``x.mat``.

A writer that pauses longer than ``stable_s`` gets its half-written file claimed: the claim records what it was
based on (``.claims/<claim>.json``: size, mtime, when the file was first seen), so that
:mod:`seis_assets.core.still_writing` can tell a file still being written from a bad one.

No Dagster imports here.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping

from upath import UPath

from seis_assets.core.listing import fresh_listing, is_mat_name, remote_mtime
from seis_assets.core.storage import PathLike, atomic_write_bytes, is_local, path_str, to_upath

CLAIMS_DIR = ".claims"
PROCESSED_DIR = "processed"
REJECTED_DIR = "rejected"
_CLAIM_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
#: What a claim was based on: ``.claims/<claim><CLAIM_RECORD>``, beside the claim's folder
CLAIM_RECORD = ".json"
#: Files a run sent back to ``incoming/`` because they were still being written: ``<name>.json`` each
RETURNED_DIR = ".returned"

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Dropped:
    """One candidate file in the incoming folder."""

    name: str
    size: int
    mtime: float
    first_seen: float | None = None  # when a look at the folder first listed it (None: not known)


@dataclasses.dataclass
class Scan:
    """What one look at the incoming folder found."""

    eligible: list[Dropped]
    waiting: list[Dropped]  # present but not stable for long enough yet
    bad_names: list[str]  # names that cannot be handed to a run (not UTF-8): moved to rejected/
    state: dict  # name -> [size, mtime, first seen] for the next look


def new_claim_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def check_claim_id(claim: str) -> str:
    if not _CLAIM_ID.match(claim) or claim in (".", ".."):
        raise ValueError(f"invalid claim id {claim!r}")
    return claim


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.scandir gives undecodable bytes as surrogates
        return False


def scan(folder: PathLike, now: float, stable_s: float, previous: dict | None = None) -> Scan:
    """List ``.mat`` files directly in ``folder`` and tell which are complete enough to claim.

    A file is eligible when its modification time is at least ``stable_s`` seconds old and its size and mtime are
    what the previous look saw (when it saw the file at all). A writer that pauses longer than ``stable_s`` must
    use the hidden-name-then-rename convention. A file that vanishes during the listing is simply not listed.
    """
    previous = previous or {}
    upath = to_upath(folder)
    found: list[Dropped] = []
    bad: list[str] = []
    if is_local(upath):
        with os.scandir(path_str(upath)) as entries:
            for e in entries:
                if not is_mat_name(e.name):
                    continue
                try:
                    if not e.is_file(follow_symlinks=False):
                        continue
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not _utf8(e.name):
                    bad.append(e.name)
                    continue
                found.append(Dropped(e.name, int(st.st_size), float(st.st_mtime)))
    else:
        for info in fresh_listing(upath):  # asked of the server each tick, not s3fs's listing cache
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "file" and is_mat_name(name):
                found.append(Dropped(name, int(info.get("size") or 0), remote_mtime(info)))
    eligible, waiting, state = [], [], {}
    for f in sorted(found, key=lambda f: f.name):
        seen = previous.get(f.name)
        f = dataclasses.replace(f, first_seen=seen[2] if seen is not None and len(seen) > 2 else now)
        state[f.name] = [f.size, f.mtime, f.first_seen]
        changed = seen is not None and (seen[0] != f.size or seen[1] != f.mtime)
        if now - f.mtime >= stable_s and not changed:
            eligible.append(f)
        else:
            waiting.append(f)
    return Scan(eligible, waiting, sorted(bad), state)


def claim_dir(incoming: PathLike, claim: str) -> UPath:
    return to_upath(incoming) / CLAIMS_DIR / check_claim_id(claim)


def _move(src: UPath, dst: UPath) -> None:
    if is_local(src) and is_local(dst):
        # os.rename: atomic, and it fails (instead of copying) if another claimer took the file first
        os.rename(path_str(src), path_str(dst))
    else:
        src.fs.mv(src.path, dst.path)


def claim(incoming: PathLike, names: list[str], claim_id: str, seen: Mapping[str, Dropped] | None = None,
          now: float | None = None) -> list[str]:
    """Move ``names`` from ``incoming`` into the claim's folder and record what the claim was based on; return the
    claimed paths.

    ``seen``: the look that found the files eligible (size, mtime and first-seen time are recorded as it saw them);
    a file not in it is looked at now. A file that a run sent back (still being written) keeps its first-seen time.
    A file that is gone by now (another claimer won) is left out: it is already handled.
    """
    folder = claim_dir(incoming, claim_id)
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    returned = _returned_records(incoming, names)
    claimed, entries = [], {}
    for name in names:
        src, dst = to_upath(incoming) / name, folder / name
        try:
            _move(src, dst)
        except FileNotFoundError:
            log.info("%s is already handled (no longer in %s)", name, path_str(incoming))
            continue
        claimed.append(path_str(dst))
        entries[name] = _claim_entry(dst, (seen or {}).get(name), returned.get(name), now)
    if entries:
        atomic_write_bytes(_record_path(incoming, claim_id),
                           json.dumps({**claim_record(incoming, claim_id), **entries}).encode())
    for name in set(entries) & set(returned):
        (to_upath(incoming) / RETURNED_DIR / f"{name}.json").unlink(missing_ok=True)
    return claimed


def file_stat(path: UPath) -> tuple[int, float | None, int | None]:
    """Size, mtime and inode of a file; on an object store the size only (an object is written whole)."""
    if is_local(path):
        st = os.stat(path_str(path))
        return int(st.st_size), float(st.st_mtime), int(st.st_ino)
    return int(path.fs.info(path.path).get("size") or 0), None, None


def _claim_entry(path: UPath, dropped: Dropped | None, returned: dict | None, now: float) -> dict:
    """What a claim of ``path`` is based on: size and mtime as judged stable, first-seen time, number of claims."""
    if dropped is None:
        size, mtime, inode = file_stat(path)
    else:  # as the sensor judged it stable; an object store has no inode (and gets no request per file)
        size, mtime, inode = dropped.size, dropped.mtime, file_stat(path)[2] if is_local(path) else None
    first_seen = dropped.first_seen if dropped is not None and dropped.first_seen is not None else now
    claims = 1
    # the same file coming back (locally: the same inode; a new file dropped under its name is not)
    if returned is not None and (returned.get("inode") is None or returned.get("inode") == inode):
        first_seen, claims = min(first_seen, returned["first_seen"]), returned["claims"] + 1
    return {"size": size, "mtime": mtime, "first_seen": first_seen, "claims": claims, "claimed_at": now}


def claim_record(incoming: PathLike, claim_id: str) -> dict[str, dict]:
    """File name -> what its claim was based on (``size, mtime, first_seen, claims, claimed_at``); {} when none."""
    path = _record_path(incoming, claim_id)
    return json.loads(path.read_text()) if path.exists() else {}


def _record_path(incoming: PathLike, claim_id: str) -> UPath:
    return to_upath(incoming) / CLAIMS_DIR / f"{check_claim_id(claim_id)}{CLAIM_RECORD}"


def _returned_records(incoming: PathLike, names: list[str]) -> dict[str, dict]:
    """The records :func:`put_back` left for ``names`` (one listing of ``.returned/``)."""
    folder = to_upath(incoming) / RETURNED_DIR
    if not names or not folder.exists():
        return {}
    present = {p.name for p in folder.iterdir()}
    return {n: json.loads((folder / f"{n}.json").read_text()) for n in names if f"{n}.json" in present}


def open_claims(incoming: PathLike) -> dict[str, list[str]]:
    """Claims whose folder still holds files (their run has not finished them): claim id -> file paths."""
    root = to_upath(incoming) / CLAIMS_DIR
    if not root.exists():
        return {}
    out = {}
    for d in sorted(root.iterdir(), key=lambda p: p.name):
        if not d.is_dir() or not _CLAIM_ID.match(d.name):
            continue
        files = sorted(path_str(f) for f in d.iterdir() if f.is_file() and is_mat_name(f.name))
        if files:
            out[d.name] = files
    return out


def reject_bad_names(incoming: PathLike, names: list[str]) -> list[str]:
    """Move files whose names cannot be handed to a run into ``rejected/`` with a reason; return the new paths.

    Local folders only (an object store's keys are text already).
    """
    out = []
    if not names or not is_local(incoming):
        return out
    root = os.fsencode(path_str(incoming))
    rejected = os.path.join(root, REJECTED_DIR.encode())
    os.makedirs(rejected, exist_ok=True)
    for name in names:
        raw = os.fsencode(name)
        src, target, n = os.path.join(root, raw), os.path.join(rejected, raw), 1
        while os.path.exists(target):
            stem, ext = os.path.splitext(raw)
            target, n = os.path.join(rejected, b"%s.%d%s" % (stem, n, ext)), n + 1
        try:
            os.rename(src, target)
        except FileNotFoundError:
            continue
        reason = f"file name is not valid UTF-8 ({raw!r}): rename it and drop it again"
        atomic_write_bytes(os.fsdecode(target + b".reason.txt"), (reason + "\n").encode())
        out.append(os.fsdecode(target))
    return out


class OutsideIncomingError(ValueError):
    """A run was asked to predict a file that is not in ``incoming_dir``."""


def inside(incoming: PathLike, path: str) -> bool:
    """True when ``path`` lies in ``incoming`` (after resolving ``..`` and, locally, links)."""
    inc = to_upath(incoming)
    p = to_upath(path)
    if is_local(inc) and is_local(p):
        root = os.path.realpath(path_str(inc))
        real = os.path.realpath(os.path.dirname(path_str(p)))
        return real == root or real.startswith(root + os.sep)
    if p.protocol != inc.protocol or ".." in p.path.split("/"):
        return False
    return p.path.startswith(inc.path.rstrip("/") + "/")


def take_over(incoming: PathLike, files: list[str], claim_id: str) -> tuple[list[str], list[str]]:
    """The run's own files: claimed paths it owns, and the names it found already handled.

    ``files`` may name files in ``incoming/`` (a run launched by hand: they are claimed now, under ``claim``) or in
    a claim folder (the sensor claimed them). A retry finds the file in ``.claims/<claim>/`` where the first attempt
    put it. Every path must lie in ``incoming``; otherwise :class:`OutsideIncomingError` is raised before anything
    is touched.
    """
    outside = [f for f in files if not inside(incoming, f)]
    if outside:
        raise OutsideIncomingError(
            f"{len(outside)} file(s) are not in incoming_dir {path_str(incoming)}, e.g. {outside[0]}: a prediction "
            "run only takes files from there (it moves them); copy them into that folder instead"
        )
    inc = to_upath(incoming)
    mine = claim_dir(incoming, claim_id)
    owned, handled = [], []
    for f in files:
        p = to_upath(f)
        here = mine / p.name
        if here.exists():
            owned.append(path_str(here))
        elif p.exists() and path_str(p.parent) in (path_str(inc), *(
                [path_str(p.parent)] if path_str(p.parent.parent) == path_str(inc / CLAIMS_DIR) else [])):
            if path_str(p.parent) == path_str(inc):
                got = claim(incoming, [p.name], claim_id)
                (owned if got else handled).extend(got or [p.name])
            else:  # another claim's folder given by hand: take it over
                mine.mkdir(parents=True, exist_ok=True)
                try:
                    _move(p, here)
                    owned.append(path_str(here))
                except FileNotFoundError:
                    handled.append(p.name)
        else:
            handled.append(p.name)
    return owned, handled


def release(incoming: PathLike, claim_id: str) -> None:
    """Remove the claim's folder and its record once the folder is empty (all its files archived or sent back)."""
    folder = claim_dir(incoming, claim_id)
    try:
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
            _record_path(incoming, claim_id).unlink(missing_ok=True)
    except OSError as exc:  # a file arrived meanwhile: leave the folder, the sensor re-requests it
        log.warning("claim folder %s not removed: %s", path_str(folder), exc)


def write_reason(target: str, reason: str) -> None:
    atomic_write_bytes(f"{target}.reason.txt", (reason + "\n").encode())
