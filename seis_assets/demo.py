"""``make demo``: generate patches if there are none, materialize every asset, print the metrics.

Runs the same jobs the Dagster UI runs (``ingest_job`` per category, then ``recluster_job``) in this process,
against the instance in ``DAGSTER_HOME`` (the Makefile points it at ``.dagster_home/``), so the runs, partitions
and materializations show up in ``make dev`` afterwards.

``SEIS_TRAIN_DIR=~/LANDMASS/LANDMASS1 make demo`` runs on those files and generates nothing. With ``SEIS_SEGY`` set
(SEG-Y files or folders), each survey is then cut into windows and mapped with the fitted models (``segy_job``).
"""

import json
import logging
import os
import sys
import time

import dagster as dg
import pandas as pd

from seis_assets.core.listing import list_categories
from seis_assets.core.sources import current_partition_keys, list_groups
from seis_assets.core.synthetic import write_dataset
from seis_assets.definitions import defs
from seis_assets.demo_segy import run_surveys
from seis_assets.environment import env
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import SeisPaths

log = logging.getLogger("seis_assets.demo")


def ensure_data(paths: SeisPaths) -> None:
    """Generate the synthetic set into the data folder when the default train folder holds no category."""
    has_data = paths.train.exists() and (
        list_categories(paths.train) if paths.labels == "folders" else list_groups(paths.train, None, "none").files
    )
    if has_data:
        return
    if env("SEIS_TRAIN_DIR") is not None:
        raise SystemExit(
            f"SEIS_TRAIN_DIR={env('SEIS_TRAIN_DIR')} holds no category folder with .mat files "
            f"({paths.train}); expected <train_dir>/<category>/*.mat"
        )
    root = paths.train.parent
    print(f"no patches in {paths.train}: generating a synthetic LANDMASS-like set into {root}/train and {root}/test")
    write_dataset(root)


def sync_partitions(instance: dg.DagsterInstance, categories: list[str]) -> None:
    """One dynamic partition per category folder; partitions whose folder is gone are removed (and said so)."""
    known = set(instance.get_dynamic_partitions(CATEGORY_PARTITIONS_NAME))
    for gone in sorted(known - set(categories)):
        print(f"category '{gone}' has no folder in the train set any more: removing its partition")
        instance.delete_dynamic_partition(CATEGORY_PARTITIONS_NAME, gone)
    new = sorted(set(categories) - known)
    if new:
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, new)


#: The run log at INFO (progress, warnings such as the backbone fallback); DEBUG events stay in the UI's run view.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _run(job_name: str, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, raise_on_error=True, run_config=QUIET_LOGS, **kwargs)


def print_report(paths: SeisPaths, checks: list) -> None:
    doc = json.loads(paths.output("metrics.json").read_text())
    print("\n=== metrics (data/outputs/metrics.json) ===")
    keys = ["backbone", "ari", "ami", "nmi", "homogeneity", "completeness", "v_measure", "silhouette",
            "davies_bouldin", "stability_ari", "accuracy_test", "accuracy_test_hungarian", "anomaly_roc_auc",
            "n_train", "n_test", "n_quarantined", "k", "k_rule"]
    for key in keys:
        value = doc.get(key)
        print(f"  {key:<24} {value:.3f}" if isinstance(value, float) else f"  {key:<24} {value}")
    if doc.get("fallback_reason"):
        print(f"  note: backbone fell back: {doc['fallback_reason']}")
    table = pd.read_csv(str(paths.output("classification_metrics.csv")))
    if len(table):
        print("\n=== test set, per class (majority mapping) ===")
        print(table[table["mapping"] == "majority"].drop(columns=["mapping"]).to_string(index=False, float_format="%.3f"))
    print("\n=== asset checks ===")
    for check in checks:
        print(f"  {'PASS' if check.passed else 'FAIL'}  {check.asset_key.to_user_string()}:{check.check_name}")
    print(f"\noutputs in {paths.outputs}:")
    for p in sorted(paths.outputs.iterdir()):
        print(f"  {p.name}")
    print("\nbrowse the runs and assets: make dev, then open http://127.0.0.1:3000")


def require_dagster_home(command: str) -> None:
    """Stop with a clear message when ``DAGSTER_HOME`` (Dagster's variable, not a setting) is unset."""
    if not os.environ.get("DAGSTER_HOME"):
        raise SystemExit(f"DAGSTER_HOME is not set: run `{command}` (it points DAGSTER_HOME at .dagster_home/)")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    require_dagster_home("make demo")
    paths = defs.resources["paths"]
    ensure_data(paths)
    # one partition per category folder, or per shard of a large folder (the train sensor's plan)
    categories = current_partition_keys(paths.train, paths.test, paths.labels, paths.shard_size)
    what = "categories" if paths.labels == "folders" else "unlabelled partitions"
    print(f"train: {paths.train} ({len(categories)} {what}: {', '.join(categories)})")
    print(f"test:  {paths.test}{'' if paths.test.exists() else ' (absent: no test predictions)'}")
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance, categories)
        t0 = time.perf_counter()
        for category in categories:
            print(f"ingest_job [{category}] ...", flush=True)
            _run("ingest_job", instance, partition_key=category)
        print(f"features done in {time.perf_counter() - t0:.0f} s; recluster_job ...", flush=True)
        result = _run("recluster_job", instance)
        checks = result.get_asset_check_evaluations()
        print_report(paths, checks)
        if defs.resources["segy_settings"].segy:  # SEIS_SEGY: map the surveys with the models just fitted
            run_surveys(defs, instance, QUIET_LOGS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
