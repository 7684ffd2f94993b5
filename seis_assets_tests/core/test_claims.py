"""Claims on dropped files, and telling a file that is still being written from a bad one (seis_assets.core.claims,
seis_assets.core.still_writing).

The clock and the sleep of the re-check are the test's, so a writer can resume exactly while the run looks.
"""

import json
import os
import time

from seis_assets.core.claims import (
    CLAIMS_DIR, REJECTED_DIR, RETURNED_DIR, Dropped, claim, claim_record, release, scan, write_reason,
)
from seis_assets.core.still_writing import (
    WATCH_DIR, Revived, put_back, revive_rejected, settle_unreadable, watch_rejected,
)

T0 = 1_900_000_000.0  # the fake clock's start


class FakeTime:
    """``clock`` and ``sleep`` for settle_unreadable; ``on_sleep`` runs once, at the first sleep."""

    def __init__(self, now: float, on_sleep=None):
        self.now, self.slept, self.on_sleep = now, 0.0, on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep()
            self.on_sleep = None
        self.now += seconds
        self.slept += seconds


def _seen(path, first_seen: float) -> dict:
    st = os.stat(path)
    return {path.name: Dropped(path.name, st.st_size, st.st_mtime, first_seen)}


def test_a_writer_that_resumes_during_the_recheck_gets_its_file_back_and_keeps_its_first_seen_time(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    with (incoming / "x.mat").open("wb") as writer:
        writer.write(b"MATLAB 5.0 MAT-file, first half")
        writer.flush()
        [claimed] = claim(incoming, ["x.mat"], "c1", _seen(incoming / "x.mat", T0 - 30))
        assert claim_record(incoming, "c1")["x.mat"]["first_seen"] == T0 - 30

        fake = FakeTime(T0, on_sleep=lambda: (writer.write(b", more"), writer.flush()))
        settled = settle_unreadable(incoming, "c1", {claimed: "corrupt, truncated or not a MAT-file (...)"},
                                    recheck_s=10, max_changing_s=600, clock=fake.clock, sleep=fake.sleep)
        assert settled.rejected == {}
        [(old, new, why)] = settled.returned
        assert old == claimed and new == str(incoming / "x.mat") and "changed after it was claimed" in why
        assert fake.slept < 10  # the change ends the re-check
        writer.write(b", the rest")  # the writer's open handle goes on writing into the file back in incoming/
    assert (incoming / "x.mat").read_bytes() == b"MATLAB 5.0 MAT-file, first half, more, the rest"
    release(incoming, "c1")
    assert not (incoming / CLAIMS_DIR / "c1").exists() and not (incoming / CLAIMS_DIR / "c1.json").exists()

    # claimed again (the writer is done): the first-seen time of the first claim carries over, not the sensor's
    [again] = claim(incoming, ["x.mat"], "c2", _seen(incoming / "x.mat", T0 + 20))
    record = claim_record(incoming, "c2")["x.mat"]
    assert record["first_seen"] == T0 - 30 and record["claims"] == 2
    assert not (incoming / RETURNED_DIR / "x.mat.json").exists()  # used up by the claim

    # ... and if it is still unreadable and still changing 600 s after it was first seen, it is rejected for that
    fake = FakeTime(T0 + 570.5, on_sleep=lambda: (incoming / CLAIMS_DIR / "c2" / "x.mat").open("ab").write(b"!"))
    settled = settle_unreadable(incoming, "c2", {again: "corrupt, truncated or not a MAT-file (...)"},
                                recheck_s=10, max_changing_s=600, clock=fake.clock, sleep=fake.sleep)
    assert settled.returned == [] and list(settled.rejected) == [again]
    assert settled.rejected[again].startswith("it never stopped changing: still being written 601 s after it was "
                                              "first seen (limit 600 s), last read: corrupt, truncated")


def test_a_file_that_changed_before_the_read_goes_back_without_waiting(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "y.mat").write_bytes(b"half")
    [claimed] = claim(incoming, ["y.mat"], "c1", now=T0)  # a run launched by hand claims it: looked at now
    with open(claimed, "ab") as writer:
        writer.write(b" and more")
    fake = FakeTime(T0)
    settled = settle_unreadable(incoming, "c1", {claimed: "empty file (0 bytes)"}, recheck_s=10,
                                clock=fake.clock, sleep=fake.sleep)
    assert [new for _, new, _ in settled.returned] == [str(incoming / "y.mat")] and fake.slept == 0


def test_a_truncated_file_that_does_not_change_is_rejected_after_the_recheck(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "cut.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    (incoming / "bad.mat").write_bytes(b"not a MAT-file")
    claimed = claim(incoming, ["bad.mat", "cut.mat"], "c1", now=T0)
    reasons = {p: f"reason of {os.path.basename(p)}" for p in claimed}
    fake = FakeTime(T0)
    settled = settle_unreadable(incoming, "c1", reasons, recheck_s=10, clock=fake.clock, sleep=fake.sleep)
    assert settled.rejected == reasons and settled.returned == []
    assert fake.slept == 10  # both watched together, for the re-check once
    assert sorted(p.name for p in (incoming / CLAIMS_DIR / "c1").iterdir()) == ["bad.mat", "cut.mat"]  # untouched


def test_put_back_never_replaces_a_file_dropped_meanwhile_under_the_same_name(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "z.mat").write_bytes(b"being written")
    [claimed] = claim(incoming, ["z.mat"], "c1", now=T0)
    (incoming / "z.mat").write_bytes(b"a new drop under the same name")
    back = put_back(incoming, claimed, claim_record(incoming, "c1")["z.mat"], now=T0 + 5)
    assert back == str(incoming / "z.1.mat") and (incoming / "z.1.mat").read_bytes() == b"being written"
    assert (incoming / "z.mat").read_bytes() == b"a new drop under the same name"
    assert json.loads((incoming / RETURNED_DIR / "z.1.mat.json").read_text())["first_seen"] == T0

    # the new drop is a new file: a record left under its name for another file (another inode) is not carried
    (incoming / RETURNED_DIR / "z.mat.json").write_text(json.dumps({"first_seen": T0 - 900, "claims": 3, "inode": -1}))
    claim(incoming, ["z.mat"], "c2", now=T0 + 10)
    assert {k: claim_record(incoming, "c2")["z.mat"][k] for k in ("first_seen", "claims")} == {
        "first_seen": T0 + 10, "claims": 1}


def test_scan_keeps_when_it_first_saw_each_file(tmp_path):
    (tmp_path / "a.mat").write_bytes(b"1")
    old = time.time() - 3600
    os.utime(tmp_path / "a.mat", (old, old))
    first = scan(tmp_path, now=T0, stable_s=5)
    assert first.state == {"a.mat": [1, old, T0]} and first.eligible[0].first_seen == T0
    (tmp_path / "a.mat").write_bytes(b"12")  # still being written: not eligible, first seen unchanged
    later = scan(tmp_path, now=T0 + 5, stable_s=5, previous=first.state)
    assert later.waiting[0].first_seen == T0 and later.state["a.mat"][2] == T0
    # a cursor written before first-seen times were kept ([size, mtime]): seen first now
    assert scan(tmp_path, now=T0 + 9, stable_s=5, previous={"a.mat": [2, 0.0]}).state["a.mat"][2] == T0 + 9


def _reject(incoming, claimed: str, entry: dict, now: float) -> str:
    """What the prediction run does with a file it rejects as unreadable and young: archive, reason, watch."""
    target = incoming / REJECTED_DIR / os.path.basename(claimed)
    target.parent.mkdir(exist_ok=True)
    os.rename(claimed, target)
    write_reason(str(target), "corrupt, truncated or not a MAT-file (...)")
    watch_rejected(str(target), entry, now)
    return str(target)


def test_a_writer_that_stalls_past_the_recheck_gets_its_rejected_file_back(tmp_path):
    """The writer stalls longer than the stability window and the re-check together: the run rejects its file, the
    writer then goes on writing into rejected/x.mat through its handle; the next sensor tick moves it back."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    with (incoming / "x.mat").open("wb") as writer:
        writer.write(b"MATLAB 5.0 MAT-file, first half")
        writer.flush()
        [claimed] = claim(incoming, ["x.mat"], "c1", _seen(incoming / "x.mat", T0 - 30))
        fake = FakeTime(T0)  # the writer sleeps through the whole re-check
        settled = settle_unreadable(incoming, "c1", {claimed: "corrupt, truncated or not a MAT-file (...)"},
                                    recheck_s=10, max_changing_s=600, clock=fake.clock, sleep=fake.sleep)
        assert list(settled.rejected) == [claimed] and list(settled.watch) == [claimed]
        target = _reject(incoming, claimed, settled.watch[claimed], fake.now)
        release(incoming, "c1")

        assert revive_rejected(incoming, T0 + 30) == Revived([], [], [])  # unchanged: still rejected, still watched
        assert os.path.exists(target) and os.path.exists(target + ".reason.txt")

        writer.write(b", the rest")  # the writer wakes up, 40 s after it stalled
        writer.flush()
        revived = revive_rejected(incoming, T0 + 40)
        assert revived.returned == [(target, str(incoming / "x.mat"))] and revived.never_finished == []
        assert not os.path.exists(target) and not os.path.exists(target + ".reason.txt")
        assert list((incoming / REJECTED_DIR / WATCH_DIR).iterdir()) == []
        writer.write(b", done")
    assert (incoming / "x.mat").read_bytes() == b"MATLAB 5.0 MAT-file, first half, the rest, done"
    [again] = claim(incoming, ["x.mat"], "c2", _seen(incoming / "x.mat", T0 + 45))
    record = claim_record(incoming, "c2")["x.mat"]
    assert record["first_seen"] == T0 - 30 and record["claims"] == 2  # the bound still counts from the first sight


def test_a_watched_rejected_file_is_left_alone_once_the_bound_has_passed(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name in ("quiet.mat", "gone.mat"):
        (incoming / name).write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    [quiet, gone] = claim(incoming, ["quiet.mat", "gone.mat"], "c1", now=T0)
    entry = {"first_seen": T0, "claims": 1}
    quiet, gone = (_reject(incoming, p, entry, T0 + 10) for p in (quiet, gone))
    os.unlink(gone)  # the user deleted it: nothing to watch
    assert revive_rejected(incoming, T0 + 20).settled == [gone]

    assert revive_rejected(incoming, T0 + 700, max_changing_s=600).settled == [quiet]  # never changed: stays rejected
    assert os.path.exists(quiet) and "truncated or not a MAT-file" in open(quiet + ".reason.txt").read()

    (incoming / REJECTED_DIR / "late2.mat").write_bytes(b"x")  # a watched file that changes after the bound
    watch_rejected(str(incoming / REJECTED_DIR / "late2.mat"), entry, T0 + 10)
    with open(incoming / REJECTED_DIR / "late2.mat", "ab") as writer:
        writer.write(b"more")
    revived = revive_rejected(incoming, T0 + 700, max_changing_s=600)
    assert revived.never_finished == [str(incoming / REJECTED_DIR / "late2.mat")] and revived.returned == []
    assert open(str(incoming / REJECTED_DIR / "late2.mat") + ".reason.txt").read().startswith(
        "it never stopped changing: still being written 700 s after it was first seen (limit 600 s)")
    assert not (incoming / REJECTED_DIR / WATCH_DIR).exists() or not any((incoming / REJECTED_DIR / WATCH_DIR).iterdir())
    assert not list(incoming.glob("*.mat"))
