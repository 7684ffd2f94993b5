"""Sensors: they list files and request runs; they never run a model (a sensor tick must finish in seconds).

- ``train_folder_sensor``: a category folder appears -> a dynamic partition is added; a folder's files change
  (count, names, sizes, mtimes) -> ``ingest_job`` runs for that category. A folder that disappeared loses its
  partition, so re-clustering does not read stale features.
- ``incoming_files_sensor``: ``.mat`` files in ``incoming_dir`` -> one ``predict_incoming_job`` run for the batch,
  once models exist. The run moves the files to ``processed/`` or ``rejected/``.
"""


import hashlib
import json

import dagster as dg

from seis_assets.core.matfiles import FileInfo, list_categories, list_mat_files_detailed
from seis_assets.jobs import ingest_job, predict_incoming_job
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import SeisPaths

TRAIN_SENSOR_INTERVAL_S = 30
INCOMING_SENSOR_INTERVAL_S = 15
MAX_FILES_PER_RUN = 500


def folder_fingerprint(files: list[FileInfo]) -> str:
    """Changes when a file is added, removed, renamed, rewritten (size or mtime). No request per file."""
    h = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.size}\0{f.mtime}\n".encode())
    return h.hexdigest()[:16]


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=TRAIN_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition per category folder of train_dir and re-ingests a category whose files changed.",
)
def train_folder_sensor(context: dg.SensorEvaluationContext, paths: SeisPaths) -> dg.SensorResult | dg.SkipReason:
    if not paths.train.exists():
        return dg.SkipReason(f"train_dir {paths.train} does not exist")
    seen = json.loads(context.cursor) if context.cursor else {}
    categories = list_categories(paths.train)
    known = set(context.instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME))
    current, run_requests = {}, []
    for category in categories:
        files = list_mat_files_detailed(paths.train / category)
        if paths.test.exists() and (paths.test / category).exists():
            files += list_mat_files_detailed(paths.test / category)
        current[category] = folder_fingerprint(files)
        if seen.get(category) != current[category]:
            run_requests.append(
                dg.RunRequest(partition_key=category, run_key=f"{category}:{current[category]}")
            )
    gone = sorted(known - set(categories))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            r
            for r in (
                dg.AddDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, sorted(set(categories) - known)),
                dg.DeleteDynamicPartitionsRequest(CATEGORY_PARTITIONS_NAME, gone),
            )
            if r.partition_keys
        ],
        cursor=json.dumps(current, sort_keys=True),
    )


@dg.sensor(
    job=predict_incoming_job,
    minimum_interval_seconds=INCOMING_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Predicts .mat files dropped into incoming_dir with the last fitted models.",
)
def incoming_files_sensor(context: dg.SensorEvaluationContext, paths: SeisPaths) -> dg.RunRequest | dg.SkipReason:
    if not paths.incoming.exists():
        return dg.SkipReason(f"incoming_dir {paths.incoming} does not exist")
    files = list_mat_files_detailed(paths.incoming)[:MAX_FILES_PER_RUN]
    if not files:
        return dg.SkipReason(f"no .mat files in {paths.incoming}")
    if not (paths.models / "anomaly_scorer.joblib").exists():
        return dg.SkipReason(f"{len(files)} file(s) waiting, but no fitted models yet: run recluster_job first")
    return dg.RunRequest(
        run_key=f"incoming:{folder_fingerprint(files)}",
        run_config=dg.RunConfig(ops={"new_file_predictions": {"config": {"files": [f.path for f in files]}}}),
    )
