"""The train sensor's decisions (seis_assets/core/ingest_requests.py) on listings made in the test: no Dagster."""

import json

from seis_assets.core.ingest_requests import (
    MAX_INGEST_RETRIES, IngestCursor, RunOutcome, decide_ingests, partition_fingerprints,
)
from seis_assets.core.listing import FileInfo
from seis_assets.core.sources import GroupListing


def _listing(*groups, empty=(), unreadable=None, mtime=1.0) -> GroupListing:
    files = {g: [FileInfo(f"/train/{g}/{g}_{i}.mat", 100, mtime) for i in range(3)] for g in groups}
    return GroupListing(files=files, empty=set(empty), unreadable=dict(unreadable or {}))


def _decide(listing, known=(), cursor=None, runs=None):
    asked = []

    def outcomes(run_keys):
        asked.append(sorted(run_keys))
        return {k: v for k, v in (runs or {}).items() if k in run_keys}

    decision = decide_ingests(listing, known, cursor, labels="folders", shard_size=2000, train_dir="/train",
                              outcomes=outcomes)
    return decision, asked


def _done(run_id="r1"):
    return RunOutcome(finished=True, succeeded=True, status="SUCCESS", run_id=run_id)


def _failed(run_id="r1"):
    return RunOutcome(finished=True, succeeded=False, status="FAILURE", run_id=run_id)


def test_a_new_folder_is_added_and_ingested_with_its_fingerprint_in_the_run_key():
    listing = _listing("fault", "horizon")
    decision, asked = _decide(listing)
    fps = partition_fingerprints(listing, "folders", 2000)
    assert decision.skip is None and decision.add == ["fault", "horizon"] and decision.delete == []
    assert decision.runs == [("fault", f"fault:{fps['fault']}"), ("horizon", f"horizon:{fps['horizon']}")]
    assert decision.cursor.fingerprints == fps
    assert decision.cursor.pending["fault"] == {"run_key": f"fault:{fps['fault']}", "attempt": 0}
    assert asked == [[]]  # nothing was pending before this tick


def test_unchanged_files_request_nothing_and_changed_files_a_new_run():
    first, _ = _decide(_listing("fault", "horizon"))
    runs = {rk: _done() for _, rk in first.runs}
    again, _ = _decide(_listing("fault", "horizon"), ["fault", "horizon"], first.cursor.dumps(), runs)
    assert again.runs == [] and again.add == [] and again.cursor.pending == {}

    touched = _listing("fault", "horizon", mtime=2.0)
    changed, _ = _decide(touched, ["fault", "horizon"], again.cursor.dumps(), runs)
    assert [key for key, _ in changed.runs] == ["fault", "horizon"]
    assert all(rk not in runs for _, rk in changed.runs)
    # the labels mode is part of the fingerprint: switching it re-ingests
    assert partition_fingerprints(touched, "none", 2000) != partition_fingerprints(touched, "folders", 2000)


def test_a_failed_ingest_is_retried_then_given_up_until_the_files_change():
    listing = _listing("horizon")
    decision, _ = _decide(listing)
    [(_, run_key)] = decision.runs
    runs = {run_key: _failed()}
    for attempt in range(1, MAX_INGEST_RETRIES + 1):
        decision, asked = _decide(listing, ["horizon"], decision.cursor.dumps(), runs)
        [(key, run_key)] = decision.runs
        assert key == "horizon" and run_key.endswith(f":retry{attempt}")
        assert decision.cursor.pending == {"horizon": {"run_key": run_key, "attempt": attempt}}
        assert ("warning", "ingest of horizon ended FAILURE (run r1): requesting it again") in decision.notes
        waiting, _ = _decide(listing, ["horizon"], decision.cursor.dumps(), runs)  # not launched yet: nothing new
        assert waiting.runs == [] and waiting.cursor.pending == decision.cursor.pending
        runs[run_key] = _failed()
    given_up, _ = _decide(listing, ["horizon"], decision.cursor.dumps(), runs)
    fp = partition_fingerprints(listing, "folders", 2000)["horizon"]
    assert given_up.runs == [] and given_up.cursor.gave_up == {"horizon": fp} and given_up.cursor.pending == {}
    assert given_up.notes[-1][0] == "error" and f"failed {MAX_INGEST_RETRIES + 1} times" in given_up.notes[-1][1]
    assert _decide(listing, ["horizon"], given_up.cursor.dumps(), runs)[0].runs == []

    changed, _ = _decide(_listing("horizon", mtime=5.0), ["horizon"], given_up.cursor.dumps(), runs)
    assert [key for key, _ in changed.runs] == ["horizon"] and changed.cursor.gave_up == {}


def test_a_run_still_running_is_waited_for_and_a_success_clears_it():
    decision, _ = _decide(_listing("fault"))
    [(_, run_key)] = decision.runs
    running = {run_key: RunOutcome(finished=False, succeeded=False, status="STARTED", run_id="r1")}
    waiting, asked = _decide(_listing("fault"), ["fault"], decision.cursor.dumps(), running)
    assert asked == [[run_key]] and waiting.runs == [] and "fault" in waiting.cursor.pending
    done, _ = _decide(_listing("fault"), ["fault"], waiting.cursor.dumps(), {run_key: _done()})
    assert done.runs == [] and done.cursor.pending == {}


def test_an_empty_or_unreadable_folder_keeps_its_partitions_and_fingerprints():
    first, _ = _decide(_listing("fault", "horizon", "chaotic"))
    known = ["chaotic", "fault", "horizon"]
    held, _ = _decide(_listing("chaotic", empty=["fault"], unreadable={"horizon": "PermissionError: denied"}),
                      known, first.cursor.dumps())
    assert held.delete == [] and held.runs == [] and held.add == []
    assert held.cursor.fingerprints == first.cursor.fingerprints
    assert ("info", "folder fault is empty: its partitions and features are kept (delete it to drop them)") in held.notes
    assert any(level == "warning" and "folder horizon cannot be listed" in text for level, text in held.notes)


def test_a_deleted_folder_is_dropped_and_a_listing_of_nothing_changes_nothing():
    first, _ = _decide(_listing("fault", "horizon"))
    gone, _ = _decide(_listing("horizon"), ["fault", "horizon"], first.cursor.dumps())
    assert gone.delete == ["fault"] and "fault" not in gone.cursor.fingerprints

    nothing, _ = _decide(GroupListing(), ["fault", "horizon"], first.cursor.dumps())
    assert nothing.skip == ("train_dir /train holds nothing (unmounted?): 2 partition(s) kept; delete the folders "
                            "one by one to remove partitions")
    assert nothing.delete == [] and nothing.runs == []
    assert _decide(GroupListing())[0].skip is None  # nothing known yet: an empty first look is not suspicious


def test_skipped_names_are_noted_and_an_older_cursor_still_loads():
    listing = _listing("fault")
    listing.skipped.append(("a...b", "name contains '...'"))
    fps = partition_fingerprints(listing, "folders", 2000)
    old = json.dumps(fps)  # a cursor of an older version: {category: fingerprint}
    assert IngestCursor.loads(old) == IngestCursor(fingerprints=fps)
    decision, _ = _decide(listing, ["fault"], old)
    assert decision.runs == [] and decision.notes[0] == ("warning", "skipped a...b: name contains '...'")
    assert json.loads(decision.cursor.dumps()) == {"fingerprints": fps, "pending": {}, "gave_up": {}}
    assert IngestCursor.loads(None) == IngestCursor() == IngestCursor.loads("")
