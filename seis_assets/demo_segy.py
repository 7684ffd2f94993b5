"""The SEG-Y part of the demo: one ``segy_job`` run per survey file named by ``SEIS_SEGY``, then what came out.

``make demo`` calls :func:`run_surveys` after the recluster job when ``SEIS_SEGY`` is set; ``make demo-segy`` sets it
(and ``SEIS_TRAIN_DIR``) to the real F3 files beside the repository.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from seis_assets.core.segy import list_segy_files, survey_name
from seis_assets.partitions import SURVEY_PARTITIONS_NAME


def sync_survey_partitions(instance: dg.DagsterInstance, surveys: list[str]) -> None:
    """One ``survey`` partition per configured SEG-Y file (existing ones are kept: they may hold earlier maps)."""
    known = set(instance.get_dynamic_partitions(SURVEY_PARTITIONS_NAME))
    new = sorted(set(surveys) - known)
    if new:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, new)


def run_surveys(defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict) -> list[str]:
    """Materialize ``survey_windows`` and ``facies_map`` for every configured survey; print the class shares."""
    settings = defs.resources["segy_settings"]
    backbone = defs.resources["feature_settings"].backbone
    paths = defs.resources["paths"]
    files = list_segy_files(settings.segy)
    surveys = [survey_name(f) for f in files]
    sync_survey_partitions(instance, surveys)
    job = defs.resolve_job_def("segy_job")
    for key in surveys:
        print(f"segy_job [{key}] ...", flush=True)
        job.execute_in_process(instance=instance, raise_on_error=True, run_config=run_config, partition_key=key)
        folder = paths.outputs / "sections" / key
        table = pd.read_csv(str(folder / "section_assignments.csv"))
        legend = pd.read_csv(str(folder / "facies_legend.csv"))
        classes = f"{len(legend)} units over {table['cluster'].nunique()} clusters" if settings.units else f"k = {len(legend)}"
        print(f"\n=== {key}: {len(table)} windows ({settings.window_traces} x {settings.window_samples}, stride "
              f"{settings.stride}, scaling {settings.scaling}), {classes}, backbone {backbone} ===")
        print("  windows per predicted class: " + ", ".join(
            f"{c} {n}" for c, n in table["predicted_label"].fillna("").replace("", "(cluster only)").value_counts().items()))
        print(f"  outputs in {folder}:")
        for p in sorted(folder.iterdir()):
            print(f"    {p.name}")
    return surveys
