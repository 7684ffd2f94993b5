"""Drop-to-row latency and throughput of dropped files, against a running instance (webserver + daemon).

What it does, in a temporary folder (nothing in the repository is touched):
1. generates the small synthetic set (16 train / 6 test patches per class) and starts `dagster dev` on 127.0.0.1
   with the repository's dagster.yaml and the `texture` backbone (``--backbone`` to change);
2. waits for the train sensor's ingest runs, launches ``recluster_job`` through GraphQL;
3. drops ONE file ``--singles`` times, one after the other, and times drop -> its row in
   ``warehouse/new_file_predictions`` (p95 over the drops);
4. drops ``--n`` files at once (copied one by one) and times the first drop -> the last row;
5. counts duplicates (a drop with more than one row) and lost files (a drop without a row ``--timeout`` s later).

Last line: ``incoming n=500 single_p95_s=... batch_total_s=... duplicates=... lost=...``

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_incoming.py [--n 500] [--singles 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(warehouse: Path) -> pd.DataFrame:
    from seis_assets.core.storage import read_parquet

    parts = list((warehouse / "new_file_predictions").glob("*.parquet"))
    if not parts:
        return pd.DataFrame(columns=["file_name"])
    return pd.concat([read_parquet(p, columns=["file_name"]) for p in parts], ignore_index=True)


def _wait(what, predicate, timeout_s, server, every_s=0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"dagster dev exited while waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--singles", type=int, default=10)
    ap.add_argument("--backbone", default="texture")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    from dagster_graphql import DagsterGraphQLClient

    from seis_assets.core.synthetic import write_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_incoming_"))
    data, home = tmp / "data", tmp / "dagster_home"
    write_dataset(data, n_train=16, n_test=6, seed=7, anomaly_share=0.25)
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), SEIS_DATA_DIR=str(data), SEIS_TRAIN_DIR=str(data / "train"),
               SEIS_TEST_DIR=str(data / "test"), SEIS_OUTPUT_DIR=str(data / "outputs"),
               SEIS_INCOMING_DIR=str(data / "incoming"), SEIS_BACKBONE=args.backbone, SEIS_INPUT_SIZE="native",
               PYTHONPATH=str(ROOT))
    dagster = Path(sys.executable).parent / "dagster"
    log = (tmp / "dagster_dev.log").open("w")
    server = subprocess.Popen(
        ["timeout", "3600", str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    keep = False
    try:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        load = os.getloadavg()[0]
        print(f"cpu cores: {os.cpu_count()}, load average before: {load:.1f}, folder: {tmp}", flush=True)
        ingested = _wait("ingest", lambda: len(list((data / "warehouse" / "resnet_features").glob("*.parquet"))) == 4
                         if (data / "warehouse" / "resnet_features").exists() else False, 900, server, every_s=2)
        if not ingested:
            raise SystemExit(f"ingest did not finish; see {tmp / 'dagster_dev.log'}")
        time.sleep(5)
        run_id = _wait("graphql", lambda: _try_submit(client), 120, server, every_s=2)
        ok = _wait("recluster", lambda: client.get_run_status(run_id).value in ("SUCCESS", "FAILURE"), 900, server,
                   every_s=2)
        if not ok or client.get_run_status(run_id).value != "SUCCESS":
            keep = True
            raise SystemExit(f"recluster_job {run_id} did not succeed; see {tmp / 'dagster_dev.log'}")
        incoming = data / "incoming"
        incoming.mkdir(exist_ok=True)
        sources = sorted((data / "test").glob("*/*.mat")) + sorted((data / "train").glob("*/*.mat"))
        warehouse = data / "warehouse"

        singles = []
        for i in range(args.singles):
            name = f"single_{i:03d}.mat"
            t0 = time.monotonic()
            shutil.copy(sources[i % len(sources)], incoming / name)
            done = _wait(name, lambda: name in set(_rows(warehouse)["file_name"]), args.timeout, server, every_s=0.2)
            singles.append(time.monotonic() - t0 if done else float("nan"))
            print(f"single drop {i + 1}/{args.singles}: {singles[-1]:.1f} s", flush=True)

        names = [f"batch_{i:04d}.mat" for i in range(args.n)]
        t0 = time.monotonic()
        for i, name in enumerate(names):
            shutil.copy(sources[i % len(sources)], incoming / name)
        wanted = set(names)
        _wait("batch", lambda: wanted <= set(_rows(warehouse)["file_name"]), args.timeout, server, every_s=1)
        batch_total = time.monotonic() - t0
        time.sleep(10)  # let any stray run finish before counting
        counts = _rows(warehouse)["file_name"].value_counts()
        dropped = names + [f"single_{i:03d}.mat" for i in range(args.singles)]
        duplicates = int(sum(max(int(counts.get(n, 0)) - 1, 0) for n in dropped))
        lost = int(sum(1 for n in dropped if counts.get(n, 0) == 0))
        p95 = float(np.nanpercentile(singles, 95)) if singles else float("nan")
        print(f"single drops (s): {', '.join(f'{s:.1f}' for s in singles)}; load average after: "
              f"{os.getloadavg()[0]:.1f}")
        print(f"incoming n={args.n} single_p95_s={p95:.1f} batch_total_s={batch_total:.1f} "
              f"duplicates={duplicates} lost={lost}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _try_submit(client):
    try:
        return client.submit_job_execution("recluster_job", repository_location_name="seis_assets")
    except Exception:
        return None


if __name__ == "__main__":
    main()
