"""End to end against a real webserver + daemon on loopback, driven through the GraphQL client.

`dagster dev` is started the way `make dev` starts it (workspace.yaml, the repository's dagster.yaml), with the
folders pointed at a temporary copy of the small generated set. The train-folder sensor discovers the categories
and launches the ingest runs by itself; the test launches the re-clustering through GraphQL, then drops files into
the incoming folder and waits for the sensor-triggered prediction run. The server runs under `timeout`, so it
stops by itself even if the test process dies.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from seis_assets.core.storage import read_parquet

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVER_LIFETIME_S = 900
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
    home = tmp_path / "dagster_home"
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


def test_sensor_ingests_graphql_reclusters_and_dropped_files_get_predicted(dagster_dev):
    client, server, log, data = dagster_dev

    def ingest_done():
        runs = _runs(client, "ingest_job")
        failed = [r for r in runs if r["status"] == "FAILURE"]
        assert not failed, f"ingest run failed: {failed}"
        return len(runs) == 4 and all(r["status"] == "SUCCESS" for r in runs) and runs

    runs = _wait("the train sensor's 4 ingest runs", ingest_done, 420, server, log)
    partitions = sorted(t["value"] for r in runs for t in r["tags"] if t["key"] == "dagster/partition")
    assert partitions == ["chaotic", "fault", "horizon", "salt dome"]

    run_id = client.submit_job_execution("recluster_job", repository_location_name="seis_assets")
    status = _wait(
        "recluster_job",
        lambda: (s := client.get_run_status(run_id)) in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) and s,
        420, server, log,
    )
    assert status == DagsterRunStatus.SUCCESS, log.read_text()[-4000:]
    assert (data / "outputs" / "metrics.json").exists() and (data / "outputs" / "umap_true_labels.png").exists()

    incoming = data / "incoming"
    incoming.mkdir(exist_ok=True)
    shutil.copy(data / "test" / "fault" / "fault_0001.mat", incoming / "dropped_0001.mat")

    def predicted():
        runs = _runs(client, "predict_incoming_job")
        return any(r["status"] == "SUCCESS" for r in runs) and runs

    _wait("the incoming sensor's prediction run", predicted, 240, server, log)
    [part] = (data / "warehouse" / "new_file_predictions").glob("*.parquet")
    assert read_parquet(part)["file_name"].tolist() == ["dropped_0001.mat"]
    assert (incoming / "processed" / "dropped_0001.mat").exists()
