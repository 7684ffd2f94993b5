"""Real servers for the scale tests, on 127.0.0.1 in their own process group, stopped with everything they spawned.

- :func:`moto_s3_server`: moto's S3-compatible server (``python -m moto.server``) as a subprocess;
- :func:`dask_local_cluster`: a Dask ``LocalCluster`` run by a helper process;
- :func:`count_s3_requests`: counts the S3 API calls s3fs makes (every request goes through ``_call_s3``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # anything left in the group
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def moto_s3_server(log_path) -> Iterator[str]:
    """Start ``moto.server`` on a free 127.0.0.1 port; yield its endpoint URL; stop its process group."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {endpoint} within 60 s; see {log_path}")
                time.sleep(0.2)
        yield endpoint
    finally:
        stop_group(proc)


@contextlib.contextmanager
def count_s3_requests() -> Iterator[collections.Counter]:
    """Count s3fs's S3 API calls by operation name (``list_objects_v2``, ``head_object``, ``get_object`` ...)."""
    import s3fs

    counts: collections.Counter = collections.Counter()
    original = s3fs.S3FileSystem._call_s3

    async def counting(self, method, *args, **kwargs):
        counts[method if isinstance(method, str) else method.__name__] += 1
        return await original(self, method, *args, **kwargs)

    s3fs.S3FileSystem._call_s3 = counting
    try:
        yield counts
    finally:
        s3fs.S3FileSystem._call_s3 = original


_CLUSTER_SCRIPT = """
import sys
from distributed import LocalCluster
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    print("SCHEDULER", cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    cluster.close()
"""


@contextlib.contextmanager
def dask_local_cluster(log_path, n_workers: int = 2, env: dict | None = None) -> Iterator[str]:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes on 127.0.0.1, run by a helper process
    in its own process group (environment ``env``, default this one's); yields the scheduler address. On exit the cluster is closed, then the whole group
    is stopped and checked gone."""
    import psutil

    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", _CLUSTER_SCRIPT, str(n_workers)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log, start_new_session=True, env=env)
    try:
        line = proc.stdout.readline().decode()  # blocks until the cluster is up (or the helper died)
        if not line.startswith("SCHEDULER "):
            raise RuntimeError(f"Dask LocalCluster did not start (exit code {proc.poll()}); see {log_path}")
        group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == proc.pid]
        if len(group) < 1 + n_workers:  # the helper and its worker processes
            raise RuntimeError(f"expected the helper and {n_workers} workers in process group {proc.pid}: {group}")
        yield line.split()[1]
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()  # the helper closes the cluster and exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        stop_group(proc)
    _, alive = psutil.wait_procs([p for p in group if p.is_running()], timeout=10)
    if alive:
        raise RuntimeError(f"Dask left processes running: {[p.pid for p in alive]}")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None
