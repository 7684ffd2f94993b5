"""Sensors: they list files and request runs; they never run a model (a sensor tick must finish in seconds).

- ``train_folder_sensor``: a folder appears -> a dynamic partition is added (one per shard of a large folder,
  see core/sources.py); a partition's files change (count, names, sizes, mtimes) -> ``ingest_job`` runs for it; a
  failed ingest is requested again. Only a folder that was really deleted loses its partitions (a missing,
  unreadable or empty train folder removes none), so re-clustering does not read stale features. A folder or file
  whose name cannot be used is logged with the reason and skipped; the others go on.
- ``incoming_files_sensor``: ``.mat`` files in ``incoming_dir`` whose size and mtime have been stable for
  ``incoming_stable_s`` (default: the sensor interval) are *claimed* (moved into ``incoming/.claims/<claim>/``) and
  one ``predict_incoming_job`` run is requested per claim, once a model generation serves. The run moves the files
  to ``processed/`` or ``rejected/``, or back to ``incoming/`` when one fails to read and is still being written
  (claimed again like a new drop). See seis_assets/core/claims.py.
"""


import hashlib
import json
import time

import dagster as dg

from seis_assets.assets.incoming import CLAIM_TAG
from seis_assets.core.claims import claim, new_claim_id, open_claims, reject_bad_names, scan
from seis_assets.core.generations import serving_generation
from seis_assets.core.matfiles import FileInfo, list_categories, list_mat_files_detailed
from seis_assets.core.sources import list_groups, parse_partition_key, plan_partitions
from seis_assets.jobs import ingest_job, predict_incoming_job
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import SeisPaths

TRAIN_SENSOR_INTERVAL_S = 30
INCOMING_SENSOR_INTERVAL_S = 5
MAX_FILES_PER_RUN = 500
#: A failed ingest of unchanged files is requested again this many times, then logged and left until they change.
MAX_INGEST_RETRIES = 3
RUN_KEY_TAG = "dagster/run_key"


def folder_fingerprint(files: list[FileInfo]) -> str:
    """Changes when a file is added, removed, renamed, rewritten (size or mtime). No request per file."""
    h = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.size}\0{f.mtime}\n".encode())
    return h.hexdigest()[:16]


def _load_cursor(text: str | None) -> dict:
    state = json.loads(text) if text else {}
    if state and "fingerprints" not in state:  # cursor of an older version: {category: fingerprint}
        state = {"fingerprints": state}
    return {"fingerprints": {}, "pending": {}, "gave_up": {}, **state}


def _ingest_runs_by_run_key(instance: dg.DagsterInstance, run_keys: list[str]) -> dict[str, dg.DagsterRun]:
    """The ingest runs created for these run keys (one query, however many keys)."""
    if not run_keys:
        return {}
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=ingest_job.name, tags={RUN_KEY_TAG: run_keys}))
    found: dict[str, dg.DagsterRun] = {}
    for run in runs:  # newest first: keep the newest run of each key
        found.setdefault(run.tags.get(RUN_KEY_TAG), run)
    return found


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=TRAIN_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adds a partition per folder of train_dir (or per shard of a large folder) and re-ingests one whose files "
        "changed; requests a failed ingest again; never drops a partition whose folder is only unreadable or empty."
    ),
)
def train_folder_sensor(context: dg.SensorEvaluationContext, paths: SeisPaths) -> dg.SensorResult | dg.SkipReason:
    """One tick: list the folders (core/sources.py), plan the partition keys, compare with the cursor.

    The cursor holds each key's fingerprint, the keys whose ingest was requested and not yet seen succeed
    (``pending``, with the run key), and those given up after :data:`MAX_INGEST_RETRIES` failed retries. A failed or
    canceled ingest is requested again with a new run key; the fingerprint alone never marks a key as done.
    """
    try:
        listing = list_groups(paths.train, paths.test, paths.labels)
    except FileNotFoundError:
        return dg.SkipReason(f"train_dir {paths.train} does not exist: no partition is removed")
    except OSError as exc:
        return dg.SkipReason(
            f"train_dir {paths.train} cannot be listed ({type(exc).__name__}: {exc}): no partition is removed"
        )
    for name, reason in listing.skipped:
        context.log.warning(f"skipped {name}: {reason}")
    for name, reason in sorted(listing.unreadable.items()):
        context.log.warning(f"folder {name} cannot be listed ({reason}): its partitions are kept, not re-ingested")
    state = _load_cursor(context.cursor)
    known = set(context.instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME))
    if not listing.files and not listing.empty and not listing.unreadable and known:
        return dg.SkipReason(
            f"train_dir {paths.train} holds nothing (unmounted?): {len(known)} partition(s) kept; delete the "
            "folders one by one to remove partitions"
        )
    plan = {
        key: hashlib.sha1(f"{paths.labels}:{fp}".encode()).hexdigest()[:16]
        for key, fp in plan_partitions(listing.files, paths.shard_size).items()
    }
    # folders that exist but cannot be listed or are empty right now keep their partitions and fingerprints
    held = {g for g in (*listing.empty, *listing.unreadable)}
    for group in sorted(listing.empty):
        context.log.info(f"folder {group} is empty: its partitions and features are kept (delete it to drop them)")
    kept = {k for k in known | set(state["fingerprints"]) if parse_partition_key(k).group in held}
    fingerprints = {**{k: state["fingerprints"][k] for k in kept if k in state["fingerprints"]}, **plan}
    pending = {k: v for k, v in state["pending"].items() if k in plan}
    gave_up = {k: v for k, v in state["gave_up"].items() if plan.get(k) == v}

    run_requests = []

    def request(key: str, run_key: str, attempt: int):
        run_requests.append(dg.RunRequest(partition_key=key, run_key=run_key))
        pending[key] = {"run_key": run_key, "attempt": attempt}

    runs = _ingest_runs_by_run_key(context.instance, [v["run_key"] for v in pending.values()])
    for key, fp in sorted(plan.items()):
        if state["fingerprints"].get(key) != fp:
            gave_up.pop(key, None)
            request(key, f"{key}:{fp}", 0)
            continue
        if key not in pending:
            continue
        run = runs.get(pending[key]["run_key"])
        if run is None or not run.is_finished:
            continue  # not launched yet, queued or running
        if run.status == dg.DagsterRunStatus.SUCCESS:
            del pending[key]
        elif pending[key]["attempt"] < MAX_INGEST_RETRIES:
            attempt = pending[key]["attempt"] + 1
            context.log.warning(f"ingest of {key} ended {run.status.value} (run {run.run_id}): requesting it again")
            request(key, f"{key}:{fp}:retry{attempt}", attempt)
        else:
            context.log.error(
                f"ingest of {key} failed {MAX_INGEST_RETRIES + 1} times (last run {run.run_id}): not requested again "
                "until its files change; fix the cause and launch ingest_job for it from the UI"
            )
            gave_up[key] = fp
            del pending[key]
    gone = sorted(known - set(plan) - kept)
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            r
            for r in (
                dg.AddDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, sorted(set(plan) - known)),
                dg.DeleteDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, gone),
            )
            if r.partition_keys
        ],
        cursor=json.dumps({"fingerprints": fingerprints, "pending": pending, "gave_up": gave_up}, sort_keys=True),
    )


def _predict_request(claim: str, files: list[str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"claim:{claim}",  # one run per claim, never reused: a later drop is always a new claim
        run_config=dg.RunConfig(ops={"new_file_predictions": {"config": {"files": files, "claim": claim}}}),
        tags={CLAIM_TAG: claim},
    )


@dg.sensor(
    job=predict_incoming_job,
    minimum_interval_seconds=INCOMING_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Claims .mat files dropped into incoming_dir once they are complete (size and mtime stable) and requests one "
        "prediction run per claim, with the serving model generation."
    ),
)
def incoming_files_sensor(context: dg.SensorEvaluationContext, paths: SeisPaths) -> dg.SensorResult | dg.SkipReason:
    incoming = paths.incoming
    if not incoming.exists():
        return dg.SkipReason(f"incoming_dir {incoming} does not exist")
    previous = json.loads(context.cursor) if context.cursor else {}
    stable_s = paths.incoming_stable_s or INCOMING_SENSOR_INTERVAL_S
    try:
        found = scan(incoming, time.time(), stable_s, previous.get("state"))
    except OSError as exc:  # unreadable or unmounted folder: nothing is claimed, the next tick tries again
        return dg.SkipReason(f"cannot list incoming_dir {incoming}: {type(exc).__name__}: {exc}")
    for target in reject_bad_names(incoming, found.bad_names):
        context.log.warning(f"rejected {target!r}: its file name is not valid UTF-8 (see its .reason.txt)")
    n_files = len(found.eligible) + len(found.waiting)
    try:
        serving = serving_generation(paths.models)
    except FileNotFoundError as exc:
        return dg.SkipReason(f"{n_files} file(s) waiting, but the model generation is broken: {exc}")
    if serving is None:
        return dg.SkipReason(f"{n_files} file(s) waiting, but no fitted models yet: run recluster_job first")

    open_now = open_claims(incoming)
    emitted = set(previous.get("emitted", []))
    # a claim made by a tick whose requests were never recorded (daemon stopped mid-tick) is requested again
    requests = [_predict_request(c, files) for c, files in open_now.items() if c not in emitted]
    names, seen = [f.name for f in found.eligible], {f.name: f for f in found.eligible}
    for start in range(0, len(names), MAX_FILES_PER_RUN):
        claim_id = new_claim_id()
        claimed = claim(incoming, names[start:start + MAX_FILES_PER_RUN], claim_id, seen)
        if claimed:
            requests.append(_predict_request(claim_id, claimed))
    if found.waiting:
        context.log.info(
            f"{len(found.waiting)} file(s) not stable for {stable_s:g} s yet (still being written?), e.g. "
            f"{found.waiting[0].name}"
        )
    waiting_on_runs = sorted(set(open_now) & emitted)
    if waiting_on_runs:
        context.log.info(f"{len(waiting_on_runs)} claim(s) still open (queued, running, or failed): {waiting_on_runs[:5]}")
    state = {k: v for k, v in found.state.items() if k not in set(names)}
    cursor = json.dumps(
        {"state": state, "emitted": sorted(set(waiting_on_runs) | {r.tags[CLAIM_TAG] for r in requests})},
        sort_keys=True,
    )
    if not requests:
        context.update_cursor(cursor)
        return dg.SkipReason(
            f"no complete new file in {incoming}" + (f" ({len(found.waiting)} still settling)" if found.waiting else "")
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)
