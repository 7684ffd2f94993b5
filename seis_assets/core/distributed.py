"""Feature extraction on a Dask cluster: shards of files are read and embedded on the workers, the table is
written here. No Dagster imports.

Why a Dask *client* that the features step submits shards to (and not ``dagster-dask``'s executor)
--------------------------------------------------------------------------------------------------
The heavy work of an ingest is reading, decoding and embedding the files of one category; everything around it
(the feature cache by content hash, the identity checks, the one streamed Parquet table per category, the run's
metadata) is cheap and must stay in one place. ``dagster-dask``'s executor ships whole Dagster *steps* to
workers: one category stays one task however large it is, and every worker needs the Dagster instance (its
run storage) and imports Dagster and torch per step. Submitting shards from the step instead:

- splits a category of 10,000 files into ``10,000 / shard_size`` tasks spread over every worker;
- leaves the run where it is (the daemon's machine, a Kubernetes run pod): workers need only this package and
  read access to the files (a bucket or a shared folder), not the Dagster instance;
- keeps the written table byte-for-byte the local one: shards are taken in the local processing order and
  written in that order, so the features (and the row order UMAP sees) equal the local run's.

Each worker loads the backbone once per process (:func:`worker_backbone`) and refuses to embed when its
identity (backbone, weights, weights fingerprint, dim, input size, precision) differs from the one the table
records, e.g. ResNet50 weights present on the scheduler's machine but not on a worker: features of different
networks are never mixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seis_assets.core.backbones import Backbone, load_backbone
from seis_assets.core.engines import available_cores, batch_size_for
from seis_assets.core.feature_table import CACHE_KEYS, BackboneMismatchError, table_identity
from seis_assets.core.features import embed_in_batches, load_checked_patch, use_cpu_threads

__all__ = [
    "BackboneSpec", "ShardResult", "DEFAULT_SHARD_SIZE", "embed_shard", "worker_backbone", "dask_shard_runner",
    "make_line", "dask_line_runner", "dask_client", "local_cluster_workers",
]

#: Files per Dask task: large enough that a task is seconds of work (scheduling costs ~ms), small enough that a
#: category of a few thousand files keeps every worker busy.
DEFAULT_SHARD_SIZE = 256

ShardRunner = Callable[[pd.DataFrame, dict], Iterator[tuple[list, np.ndarray, list[dict]]]]


@dataclass(frozen=True)
class BackboneSpec:
    """What a worker needs to build the same backbone: the *resolved* name (never ``auto``), weights, device."""

    name: str
    weights: str
    weights_path: str | None
    device: str

    @classmethod
    def of(cls, backbone: Backbone, weights: str, weights_path: str | None, device: str) -> "BackboneSpec":
        return cls(backbone.name, weights, weights_path, device)


@dataclass
class ShardResult:
    """Features of the loadable files of one shard (``index`` in the order of ``features``) and the rest."""

    index: list
    features: np.ndarray
    failures: list[dict]


_BACKBONES: dict[BackboneSpec, Backbone] = {}

#: ``local`` or ``local:N`` as a scheduler address: a cluster of this machine's own, for the run's duration
_LOCAL = re.compile(r"local(?::(\d+))?")


def local_cluster_workers(address: str, cores: int | None = None) -> int | None:
    """The workers of the cluster ``address`` asks this machine to start (``local``: one per core this process may
    use; ``local:N``: N), or None for the address of a running cluster. Raises ValueError for ``local:0``."""
    match = _LOCAL.fullmatch(address.strip())
    if match is None:
        return None
    if match.group(1) is None:
        return cores or available_cores()
    n = int(match.group(1))
    if n < 1:
        raise ValueError(f"Dask scheduler address {address!r}: a local cluster needs at least one worker")
    return n


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A Dask ``Client`` of the cluster at ``address`` (``tcp://host:8786``: a running cluster, which stays up).

    ``local`` / ``local:N`` start a ``LocalCluster`` here for the ``with`` block: N (default one per core) worker
    processes of one thread each on 127.0.0.1, no dashboard; they and their processes stop when the block ends.
    On one machine that maps a cube faster than the run's own process: two one-thread processes make more of two
    cores than one process with two threads (benchmarks/README.md, 3-D cubes).
    """
    from distributed import Client  # the dask extra

    workers = local_cluster_workers(address)
    if workers is None:
        with Client(address, set_as_default=False, timeout="30s") as client:
            yield client
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


def worker_backbone(spec: BackboneSpec) -> Backbone:
    """The backbone for ``spec``, built once per (worker) process."""
    if spec not in _BACKBONES:
        _BACKBONES[spec] = load_backbone(spec.name, weights=spec.weights, weights_path=spec.weights_path,
                                         device=spec.device)
    return _BACKBONES[spec]


def _worker_threads() -> int | None:
    try:
        from distributed import get_worker  # lazy: Dask is optional, and only workers have a current worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


def _check_worker_identity(backbone: Backbone, identity: dict) -> None:
    """Raise BackboneMismatchError when this worker's features would differ from the run's (``CACHE_KEYS``)."""
    mine = table_identity(backbone, identity["input_size"], identity["precision"], identity.get("engine", "torch"))
    diffs = [f"{k}: worker {mine.get(k)!r} != run {identity.get(k)!r}" for k in CACHE_KEYS
             if str(mine.get(k)) != str(identity.get(k))]
    if diffs:
        raise BackboneMismatchError(
            f"Dask worker {os.uname().nodename} (pid {os.getpid()}) would make different features ("
            + "; ".join(diffs) + "): give every worker the same weights (weights_path) and package versions"
        )


def _load_by_size(rows: pd.DataFrame, key: str | None) -> tuple[dict, list[dict]]:
    """The loadable patches of ``rows`` grouped by size, ``{shape: (index labels, patches)}`` in order of first
    appearance, and the failures (path, reason)."""
    groups: dict[tuple[int, int], tuple[list, list[np.ndarray]]] = {}
    failures = []
    for i, path, sha in zip(rows.index, rows["path"], rows["sha256"]):
        patch, reason = load_checked_patch(path, str(sha), key)
        if reason is not None:
            failures.append({"path": str(path), "reason": reason})
        else:
            idx, patches = groups.setdefault(patch.shape, ([], []))
            idx.append(i)
            patches.append(patch)
    return groups, failures


def embed_shard(
    rows: pd.DataFrame, spec: BackboneSpec, identity: dict, key: str | None, batch_size: int | None = None
) -> ShardResult:
    """Load and embed one shard (runs on a worker).

    Parameters
    ----------
    rows : DataFrame with columns path, sha256 (its index is returned as :attr:`ShardResult.index`)
    spec : BackboneSpec
    identity : dict
        The table identity of the run (:func:`~seis_assets.core.feature_table.table_identity`); the worker's own
        must match on :data:`~seis_assets.core.feature_table.CACHE_KEYS`.
    key : str or None
        MATLAB variable holding the patch.
    batch_size : int or None
        Patches per forward pass (None: the engine's default, ``engines.batch_size_for``).

    Returns
    -------
    ShardResult
        Rows grouped by patch size in order of first appearance (the local order when ``rows`` is sorted by size).

    Raises
    ------
    BackboneMismatchError
        The worker's backbone identity differs from ``identity``.
    """
    backbone = worker_backbone(spec)
    _check_worker_identity(backbone, identity)
    # the engine the run resolved, so workers compute the same features
    batch_size = batch_size_for(identity.get("engine", "torch"), batch_size, backbone.device, identity.get("input_size"),
                                backbone.name, identity.get("precision", "fp32"))
    threads = _worker_threads()
    use_cpu_threads(backbone, threads)  # the worker's thread budget, not every core of the machine
    groups, failures = _load_by_size(rows, key)
    index = [i for idx, _ in groups.values() for i in idx]
    parts = [embed_in_batches(backbone, np.stack(patches), identity, batch_size, threads=threads)
             for _, patches in groups.values()]
    features = np.concatenate(parts) if parts else np.zeros((0, int(identity["dim"])), np.float32)
    return ShardResult(index, features, failures)


def dask_shard_runner(
    client: Any,
    spec: BackboneSpec,
    *,
    key: str | None,
    batch_size: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_in_flight: int | None = None,
) -> ShardRunner:
    """A ``shard_runner`` for :func:`~seis_assets.core.features.extract_features` that embeds on ``client``'s
    cluster.

    The files to extract are cut into shards of ``shard_size`` rows in their order; at most ``max_in_flight``
    shards (default: twice the workers' threads) are submitted at a time, and results are yielded in shard
    order, so memory here stays bounded and the table's rows come out in the local order. A task that fails on a
    worker raises here with the worker's exception.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")

    def run(todo: pd.DataFrame, identity: dict) -> Iterator[tuple[list, np.ndarray, list[dict]]]:
        limit = max_in_flight or max(2, 2 * sum(client.nthreads().values()))
        shards = (todo[["path", "sha256"]].iloc[j : j + shard_size] for j in range(0, len(todo), shard_size))
        in_flight: deque = deque()
        for shard in shards:
            in_flight.append(client.submit(embed_shard, shard, spec, identity, key, batch_size, pure=False))
            if len(in_flight) >= limit:
                result = in_flight.popleft().result()
                yield result.index, result.features, result.failures
        while in_flight:
            result = in_flight.popleft().result()
            yield result.index, result.features, result.failures

    return run


# --------------------------------------------------------------------------- survey lines
_EMBEDDERS: dict = {}


def make_line(job, spec, identity: dict, weights_path: str | None, device: str, batch_size: int | None = None):
    """One line's windows table and stage seconds (runs on a worker; the embedder is built once per process)."""
    from seis_assets.core.predict import Embedder  # lazy: predict imports the fitted-model stack
    from seis_assets.core.window_features import line_windows_table

    key = (json.dumps(identity, sort_keys=True, default=str), weights_path, device, batch_size)
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = Embedder.build(identity, weights_path, device, None, threads=_worker_threads(),
                                         batch_size=batch_size)
        use_cpu_threads(_EMBEDDERS[key].backbone, _worker_threads())
    times: dict = {}
    return line_windows_table(job, spec, _EMBEDDERS[key], times), times


def dask_line_runner(client: Any, spec, identity: dict, weights_path: str | None = None, device: str = "cpu",
                     max_in_flight: int | None = None, batch_size: int | None = None):
    """A line runner for :func:`seis_assets.core.window_features.write_survey_windows` that makes lines on
    ``client``'s cluster. Each job carries its line's samples, so workers need no access to the survey file. At
    most ``max_in_flight`` lines (default: twice the workers' threads) are submitted at a time; results come back
    in line order, cached lines pass straight through. A task that fails on a worker raises here."""

    def head(queue: deque):
        job, value = queue.popleft()
        if hasattr(value, "result"):  # a future: the line was made on a worker
            table, times = value.result()
            return job, table, times, False
        return job, value, {}, True  # cached rows pass straight through

    def run(items):
        limit = max_in_flight or max(2, 2 * sum(client.nthreads().values()))
        queue: deque = deque()
        for job, cached in items:
            made = cached is None
            queue.append((job, client.submit(make_line, job, spec, identity, weights_path, device, batch_size, pure=False)
                          if made else cached))
            # yield in order as soon as the head is cached, or when as many lines as allowed are in flight
            while queue and (not hasattr(queue[0][1], "result")
                             or sum(hasattr(v, "result") for _, v in queue) >= limit):
                yield head(queue)
        while queue:
            yield head(queue)

    return run
