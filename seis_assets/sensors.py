"""Sensors: they list files and request runs; they never run a model (a sensor tick must finish in seconds).

- ``train_folder_sensor``: a folder appears -> a dynamic partition is added (one per shard of a large folder,
  see core/sources.py); a partition's files change (count, names, sizes, mtimes) -> ``ingest_job`` runs for it; a
  failed ingest is requested again (the decisions: core/ingest_requests.py). Only a folder that was really deleted loses its partitions (a missing,
  unreadable or empty train folder removes none), so re-clustering does not read stale features. A folder or file
  whose name cannot be used is logged with the reason and skipped; the others go on.
- ``incoming_files_sensor``: ``.mat`` files in ``incoming_dir`` whose size and mtime have been stable for
  ``incoming_stable_s`` (default: the sensor interval) are *claimed* (moved into ``incoming/.claims/<claim>/``) and
  one ``predict_incoming_job`` run is requested per claim, once a model generation serves. The run moves the files
  to ``processed/`` or ``rejected/``, or back to ``incoming/`` when one fails to read and is still being written
  (claimed again like a new drop). See seis_assets/core/claims.py.
"""

import json
import time

import dagster as dg

from seis_assets.assets.incoming import CLAIM_TAG
from seis_assets.core.claims import claim, new_claim_id, open_claims, reject_bad_names, scan
from seis_assets.core.generations import serving_generation
from seis_assets.core.ingest_requests import RunOutcome, decide_ingests
from seis_assets.core.sources import list_groups
from seis_assets.core.still_writing import revive_rejected
from seis_assets.jobs import ingest_job, predict_incoming_job
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import SeisPaths

TRAIN_SENSOR_INTERVAL_S = 30
INCOMING_SENSOR_INTERVAL_S = 5
MAX_FILES_PER_RUN = 500
RUN_KEY_TAG = "dagster/run_key"


def _ingest_outcomes(instance: dg.DagsterInstance, run_keys: list[str]) -> dict[str, RunOutcome]:
    """How the newest ingest run of each of these run keys stands (one query, however many keys)."""
    if not run_keys:
        return {}
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=ingest_job.name, tags={RUN_KEY_TAG: run_keys}))
    found: dict[str, RunOutcome] = {}
    for run in runs:  # newest first: keep the newest run of each key
        found.setdefault(
            run.tags.get(RUN_KEY_TAG),
            RunOutcome(run.is_finished, run.status == dg.DagsterRunStatus.SUCCESS, run.status.value, run.run_id),
        )
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
    """One tick: list the folders (core/sources.py), let core/ingest_requests.py decide, log its notes, request.

    A failed or canceled ingest is requested again with a new run key (up to ``MAX_INGEST_RETRIES`` times); the
    fingerprint alone never marks a partition as done.
    """
    try:
        listing = list_groups(paths.train, paths.test, paths.labels)
    except FileNotFoundError:
        return dg.SkipReason(f"train_dir {paths.train} does not exist: no partition is removed")
    except OSError as exc:
        return dg.SkipReason(
            f"train_dir {paths.train} cannot be listed ({type(exc).__name__}: {exc}): no partition is removed"
        )
    decision = decide_ingests(
        listing, context.instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME), context.cursor,
        labels=paths.labels, shard_size=paths.shard_size, train_dir=str(paths.train),
        outcomes=lambda run_keys: _ingest_outcomes(context.instance, run_keys),
    )
    for level, message in decision.notes:
        getattr(context.log, level)(message)
    if decision.skip:
        return dg.SkipReason(decision.skip)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=run_key) for key, run_key in decision.runs],
        dynamic_partitions_requests=[
            r
            for r in (
                dg.AddDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, decision.add),
                dg.DeleteDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, decision.delete),
            )
            if r.partition_keys
        ],
        cursor=decision.cursor.dumps(),
    )


def _predict_request(claim: str, files: list[str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"claim:{claim}",  # one run per claim, never reused: a later drop is always a new claim
        run_config=dg.RunConfig(ops={"new_file_predictions": {"config": {"files": files, "claim": claim}}}),
        tags={CLAIM_TAG: claim},
    )


def _revive_rejected(context: dg.SensorEvaluationContext, paths: SeisPaths) -> None:
    """Files rejected as unreadable whose writer went on since: back to incoming/ (core/claims.py)."""
    revived = revive_rejected(paths.incoming, time.time(), paths.incoming_max_changing_s)
    for old, new in revived.returned:
        context.log.info(f"{old} changed after it was rejected as unreadable: still being written, moved back to "
                         f"{new}, to be claimed again once it is stable")
    for path in revived.never_finished:
        context.log.warning(f"{path} is still changing {paths.incoming_max_changing_s:g} s after it was first seen: "
                            "rejected as never finishing (see its .reason.txt)")


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
    _revive_rejected(context, paths)
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
