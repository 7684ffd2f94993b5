"""End to end against a real webserver + daemon on loopback, driven through the GraphQL client.

`dagster dev` is started the way `make dev` starts it (workspace.yaml, the repository's dagster.yaml), with the
folders pointed at a temporary copy of the small generated set. The train-folder sensor discovers the categories
and launches the ingest runs by itself; the test launches the re-clustering through GraphQL, then drops files into
the incoming folder as people do (waves straddling a sensor tick, a writer that pauses longer than the stability
window, re-drops, bad files), kills a prediction run with SIGKILL, and checks that every drop has exactly one row.
One server start-up for all of it (each costs a minute of CPU). The server runs under `timeout`, so it stops by
itself even if the test process dies.
"""

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from seis_assets.core.claims import open_claims as list_open_claims
from seis_assets.core.still_writing import RECHECK_S
from seis_assets.core.matfiles import PatchLoadError
from seis_assets.core.patches import load_patch
from seis_assets.core.storage import read_parquet
from seis_assets.sensors import INCOMING_SENSOR_INTERVAL_S

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVER_LIFETIME_S = 1800
#: The slow writer's pause: longer than the sensor's stability window and a run's re-check together, so its
#: half-written file can be claimed, read and even rejected before the writer goes on; then it must come back
SLOW_WRITER_PAUSE_S = INCOMING_SENSOR_INTERVAL_S + RECHECK_S + 5
RUNS_QUERY = """
query Runs($job: String!) {
  runsOrError(filter: {pipelineName: $job}) { ... on Runs { results { runId status tags { key value } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, predicate, timeout_s: float, server: subprocess.Popen, log: Path, every_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"dagster dev exited ({server.returncode}) while waiting for {what}:\n{log.read_text()[-4000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{log.read_text()[-4000:]}")


def _runs(client: DagsterGraphQLClient, job: str) -> list[dict]:
    try:
        return client._execute(RUNS_QUERY, {"job": job})["runsOrError"]["results"]
    except Exception:  # server still starting
        return []


@pytest.fixture
def dagster_dev(small_dataset, tmp_path):
    home = small_dataset.parent / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        SEIS_DATA_DIR=str(small_dataset),
        SEIS_TRAIN_DIR=str(small_dataset / "train"),
        SEIS_TEST_DIR=str(small_dataset / "test"),
        SEIS_OUTPUT_DIR=str(small_dataset / "outputs"),
        SEIS_INCOMING_DIR=str(small_dataset / "incoming"),
        SEIS_BACKBONE="texture",
        SEIS_INPUT_SIZE="native",
    )
    log = tmp_path / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["timeout", str(SERVER_LIFETIME_S), str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port),
             "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield DagsterGraphQLClient("127.0.0.1", port_number=port), server, log, small_dataset
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _predict_runs_settled(client) -> bool:
    runs = _runs(client, "predict_incoming_job")
    return bool(runs) and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)


def _incoming_empty(incoming: Path) -> bool:
    return not list(incoming.glob("*.mat")) and not list_open_claims(incoming)


def _copy_slowly(src: Path, dst: Path, pause_s: float) -> None:
    """A writer that stops half-way for ``pause_s``, keeping the file open (as ``cp`` over a stalled share)."""
    data = src.read_bytes()
    with dst.open("wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(pause_s)
        out.write(data[len(data) // 2:])


def _run_worker_pid(home: Path, run_id: str) -> int | None:
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for entry in instance.all_logs(run_id):
            found = re.search(r"Started process for run \(pid: (\d+)\)", entry.message or "")
            if found:
                return int(found.group(1))
    return None


def _step_started(home: Path, run_id: str) -> bool:
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return bool(instance.all_logs(run_id, of_type=DagsterEventType.STEP_START))


def test_sensor_ingests_graphql_reclusters_and_dropped_files_get_predicted_exactly_once(dagster_dev):
    """Ingest and re-cluster, then drops as people make them, then a prediction run killed with SIGKILL."""
    client, server, log, data = dagster_dev

    def ingest_done():
        runs = _runs(client, "ingest_job")
        failed = [r for r in runs if r["status"] == "FAILURE"]
        assert not failed, f"ingest run failed: {failed}"
        return len(runs) == 4 and all(r["status"] == "SUCCESS" for r in runs) and runs

    runs = _wait("the train sensor's 4 ingest runs", ingest_done, 600, server, log)
    partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
    assert partitions == ["chaotic", "fault", "horizon", "salt dome"]

    run_id = client.submit_job_execution("recluster_job", repository_location_name="seis_assets")
    status = _wait(
        "recluster_job",
        lambda: (s := client.get_run_status(run_id)) in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) and s,
        600, server, log,
    )
    assert status == DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
    assert (data / "outputs" / "metrics.json").exists() and (data / "outputs" / "umap_true_labels.png").exists()
    assert (data / "models" / "CURRENT").read_text().strip() == run_id  # the re-clustering's generation serves

    incoming = data / "incoming"
    incoming.mkdir(exist_ok=True)
    sources = sorted((data / "test").glob("*/*.mat")) + sorted((data / "train").glob("*/*.mat"))
    good = {}  # dropped name -> bytes, for every good drop

    def drop(name, src):
        shutil.copy(src, incoming / name)
        good.setdefault(name, []).append(src.read_bytes())

    # two waves of 20 files, copied one by one, 7 s apart: they straddle at least one sensor tick
    for i in range(20):
        drop(f"w1_{i:03d}.mat", sources[i])
    time.sleep(7)
    for i in range(20):
        drop(f"w2_{i:03d}.mat", sources[20 + i])
    _copy_slowly(sources[40], incoming / "slow.mat", pause_s=SLOW_WRITER_PAUSE_S)
    good["slow.mat"] = [sources[40].read_bytes()]
    bad = {
        "bad_text.mat": b"this is not a MAT-file",
        "bad_truncated.mat": sources[41].read_bytes()[:300],
    }
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"img": np.zeros((99, 99))})
    bad["bad_constant.mat"] = buf.getvalue()
    for name, content in bad.items():
        (incoming / name).write_bytes(content)

    _wait("the first drops to be handled", lambda: _incoming_empty(incoming) and _predict_runs_settled(client)
          and (incoming / "processed" / "slow.mat").exists(), 300, server, log)

    # after they were processed: a new file under a used name, and a cp -p copy of a processed file
    drop("w1_000.mat", sources[42])
    shutil.copy2(incoming / "processed" / "w1_001.mat", incoming / "w1_001.mat")
    good["w1_001.mat"].append(good["w1_001.mat"][0])
    _wait("the re-drops to be handled", lambda: _incoming_empty(incoming) and _predict_runs_settled(client),
          300, server, log)

    # a prediction run killed with SIGKILL once its step started: the run fails, Dagster retries it, same claim
    before = {r["runId"] for r in _runs(client, "predict_incoming_job")}
    for i in range(60):
        drop(f"k_{i:03d}.mat", sources[i % len(sources)])

    def started_run():
        new = [r for r in _runs(client, "predict_incoming_job") if r["runId"] not in before]
        return next((r["runId"] for r in new if r["status"] == "STARTED" and _step_started(home, r["runId"])), None)

    home = data.parent / "dagster_home"
    victim = _wait("a prediction run to start its step", started_run, 300, server, log, every_s=0.5)
    pid = _run_worker_pid(home, victim)
    assert pid, "no run worker pid in the run's events"
    os.kill(pid, signal.SIGKILL)

    def retried():
        runs = _runs(client, "predict_incoming_job")
        retries = [r for r in runs if any(t["key"] == "dagster/parent_run_id" and t["value"] == victim
                                          for t in r["tags"])]
        return any(r["status"] == "SUCCESS" for r in retries) and retries

    _wait("the killed run's retry", retried, 420, server, log)
    assert client.get_run_status(victim) == DagsterRunStatus.FAILURE
    _wait("everything to be handled", lambda: _incoming_empty(incoming) and _predict_runs_settled(client),
          300, server, log)

    rows = pd.concat([read_parquet(p) for p in (data / "warehouse" / "new_file_predictions").glob("*.parquet")],
                     ignore_index=True)
    counts = rows["file_name"].value_counts().to_dict()
    assert counts == {name: len(drops) for name, drops in good.items()}, log.read_text()[-3000:]
    assert rows["generation"].eq(run_id).all() and rows["prediction_id"].is_unique
    redrop = rows[rows["file_name"] == "w1_001.mat"].sort_values("predicted_at")
    assert redrop["duplicate_of"].tolist()[1] == redrop["prediction_id"].tolist()[0]
    rejected = incoming / "rejected"
    assert sorted(p.name for p in rejected.glob("*.mat")) == sorted(bad)
    for name, content in bad.items():
        probe = data / f"probe_{name}"
        probe.write_bytes(content)
        with pytest.raises(PatchLoadError) as expected:
            load_patch(probe)
        assert (rejected / f"{name}.reason.txt").read_text().strip() == expected.value.reason
    assert len(list((incoming / "processed").glob("*.mat"))) == sum(len(d) for d in good.values())
    assert _incoming_empty(incoming)
