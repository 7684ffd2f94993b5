"""Which training partitions to add, ingest, retry, give up on or drop: the decisions of ``train_folder_sensor``.

One look at the training folder (:func:`seis_assets.core.sources.list_groups`) is compared with what the previous
look remembered (the cursor) and with how the requested ingest runs ended:

- a partition whose files changed (count, names, sizes, mtimes: its fingerprint) is ingested, with a run key that
  carries the fingerprint, so a repeat of the same files never makes a second run;
- an ingest that failed or was canceled is requested again with a new run key, :data:`MAX_INGEST_RETRIES` times,
  then given up (and logged) until the files change;
- a folder that exists but is empty or cannot be listed right now keeps its partitions and fingerprints; only a
  folder that is really gone loses its partitions; a training folder that lists nothing at all changes nothing.

The cursor is JSON: ``{"fingerprints": {key: fp}, "pending": {key: {"run_key", "attempt"}}, "gave_up": {key: fp}}``;
a cursor of an older version (``{key: fp}``) still loads. No Dagster imports here: the sensor looks up the runs,
logs the notes and turns the decision into Dagster requests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping

from seis_assets.core.sources import GroupListing, parse_partition_key, plan_partitions

#: A failed ingest of unchanged files is requested again this many times, then logged and left until they change.
MAX_INGEST_RETRIES = 3


@dataclasses.dataclass
class IngestCursor:
    """What one tick leaves for the next: each partition's fingerprint, the ingests requested and not yet seen
    succeed (``{key: {"run_key": ..., "attempt": n}}``), and the partitions given up at a fingerprint."""

    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)
    pending: dict[str, dict] = dataclasses.field(default_factory=dict)
    gave_up: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def loads(cls, text: str | None) -> "IngestCursor":
        """The cursor stored as ``text`` (None or empty: a first tick; ``{key: fp}``: an older version's)."""
        state = json.loads(text) if text else {}
        if state and "fingerprints" not in state:  # cursor of an older version: {category: fingerprint}
            state = {"fingerprints": state}
        return cls(**{"fingerprints": {}, "pending": {}, "gave_up": {}, **state})

    def dumps(self) -> str:
        return json.dumps(
            {"fingerprints": self.fingerprints, "pending": self.pending, "gave_up": self.gave_up}, sort_keys=True
        )


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How the newest run of a run key stands: finished or not, succeeded or not, its status name and id."""

    finished: bool
    succeeded: bool
    status: str
    run_id: str


@dataclasses.dataclass
class IngestDecision:
    """One tick's result: ``skip`` (a reason, nothing else to do) or the requests and the new cursor.

    ``runs`` are ``(partition key, run key)`` pairs; ``notes`` are ``(level, message)`` pairs for the log, in order
    (``info``, ``warning`` or ``error``).
    """

    skip: str | None = None
    runs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    add: list[str] = dataclasses.field(default_factory=list)
    delete: list[str] = dataclasses.field(default_factory=list)
    cursor: IngestCursor = dataclasses.field(default_factory=IngestCursor)
    notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def partition_fingerprints(listing: GroupListing, labels: str, shard_size: int) -> dict[str, str]:
    """``{partition key: fingerprint}`` of the listed files; the labels mode is part of it, so switching it
    re-ingests."""
    return {
        key: hashlib.sha1(f"{labels}:{fp}".encode()).hexdigest()[:16]
        for key, fp in plan_partitions(listing.files, shard_size).items()
    }


def listing_notes(listing: GroupListing) -> list[tuple[str, str]]:
    """What the log says about a listing: skipped names, folders that cannot be listed, empty folders."""
    notes = [("warning", f"skipped {name}: {reason}") for name, reason in listing.skipped]
    notes += [
        ("warning", f"folder {name} cannot be listed ({reason}): its partitions are kept, not re-ingested")
        for name, reason in sorted(listing.unreadable.items())
    ]
    return notes


def decide_ingests(
    listing: GroupListing,
    known: Iterable[str],
    cursor: str | None,
    *,
    labels: str,
    shard_size: int,
    train_dir: str,
    outcomes: Callable[[list[str]], Mapping[str, RunOutcome]],
) -> IngestDecision:
    """Compare ``listing`` with the ``known`` partitions and the ``cursor`` text; ``outcomes(run_keys)`` says how
    the newest run of each pending run key stands (a key without a run is missing from its answer)."""
    known = set(known)
    decision = IngestDecision(notes=listing_notes(listing))
    state = IngestCursor.loads(cursor)
    if not listing.files and not listing.empty and not listing.unreadable and known:
        decision.skip = (
            f"train_dir {train_dir} holds nothing (unmounted?): {len(known)} partition(s) kept; delete the "
            "folders one by one to remove partitions"
        )
        return decision
    plan = partition_fingerprints(listing, labels, shard_size)
    # folders that exist but cannot be listed or are empty right now keep their partitions and fingerprints
    held = {*listing.empty, *listing.unreadable}
    decision.notes += [
        ("info", f"folder {group} is empty: its partitions and features are kept (delete it to drop them)")
        for group in sorted(listing.empty)
    ]
    kept = {k for k in known | set(state.fingerprints) if parse_partition_key(k).group in held}
    decision.cursor = IngestCursor(
        fingerprints={**{k: state.fingerprints[k] for k in kept if k in state.fingerprints}, **plan},
        pending={k: v for k, v in state.pending.items() if k in plan},
        gave_up={k: v for k, v in state.gave_up.items() if plan.get(k) == v},
    )
    runs = outcomes([v["run_key"] for v in decision.cursor.pending.values()])
    for key, fp in sorted(plan.items()):
        _advance(decision, key, fp, changed=state.fingerprints.get(key) != fp, runs=runs)
    decision.add = sorted(set(plan) - known)
    decision.delete = sorted(known - set(plan) - kept)
    return decision


def _request(decision: IngestDecision, key: str, run_key: str, attempt: int) -> None:
    decision.runs.append((key, run_key))
    decision.cursor.pending[key] = {"run_key": run_key, "attempt": attempt}


def _advance(decision: IngestDecision, key: str, fp: str, *, changed: bool, runs: Mapping[str, RunOutcome]) -> None:
    """One partition's step: ingest changed files, else follow its pending run (done, retry, or give up)."""
    pending, gave_up = decision.cursor.pending, decision.cursor.gave_up
    if changed:
        gave_up.pop(key, None)
        _request(decision, key, f"{key}:{fp}", 0)
        return
    if key not in pending:
        return
    run = runs.get(pending[key]["run_key"])
    if run is None or not run.finished:
        return  # not launched yet, queued or running
    if run.succeeded:
        del pending[key]
    elif pending[key]["attempt"] < MAX_INGEST_RETRIES:
        attempt = pending[key]["attempt"] + 1
        decision.notes.append(
            ("warning", f"ingest of {key} ended {run.status} (run {run.run_id}): requesting it again")
        )
        _request(decision, key, f"{key}:{fp}:retry{attempt}", attempt)
    else:
        decision.notes.append((
            "error",
            f"ingest of {key} failed {MAX_INGEST_RETRIES + 1} times (last run {run.run_id}): not requested again "
            "until its files change; fix the cause and launch ingest_job for it from the UI",
        ))
        gave_up[key] = fp
        del pending[key]
