"""``model_generation``: the last step of a re-clustering, switching predictions to the models it fitted.

The re-clustering's assets write their models into the run's own generation (``paths.model(...)``); this asset adds
the cluster mapping, checks that every model a prediction needs is there and loads, and then switches
``models/CURRENT`` in one atomic step. It runs only when everything upstream succeeded and the blocking asset
checks passed, so a failed re-clustering leaves the previous generation serving. The seed-named copies in the
output folder (``umap_reducer.joblib``, ``umap_reducer_2d.joblib``, ``kmeans_model.joblib``) follow the switch.
"""

import dagster as dg
import pandas as pd

from seis_assets.assets import EVALUATION
from seis_assets.core.generations import copy_file, promote
from seis_assets.core.predict import FittedModels
from seis_assets.core.storage import load_joblib, path_str, write_parquet_atomic
from seis_assets.resources import SeisPaths

#: Seed artifacts that are copies of the serving generation's models.
SEED_COPIES = ("umap_reducer.joblib", "umap_reducer_2d.joblib", "kmeans_model.joblib")


def _copy_to_outputs(generation, paths: SeisPaths) -> list[str]:
    out = []
    for name in SEED_COPIES:
        if generation.file(name).exists():
            copy_file(generation.file(name), paths.output(name))
            out.append(name)
    return out


@dg.asset(
    ins={"cluster_mapping": dg.AssetIn(input_manager_key="parquet_io_manager")},
    deps=["umap_50d", "umap_2d", "kmeans_model", "anomalies", "metrics"],
    group_name=EVALUATION,
    kinds={"sklearn"},
    description="Switches predictions to the models this re-clustering fitted (one atomic step, after the checks).",
)
def model_generation(
    context: dg.AssetExecutionContext, cluster_mapping: pd.DataFrame, paths: SeisPaths
) -> dg.MaterializeResult:
    write_parquet_atomic(cluster_mapping, paths.model("cluster_mapping.parquet"))

    def validate(generation):
        FittedModels.load(generation)  # every model a prediction needs loads
        if generation.file("umap_reducer_2d.joblib").exists():
            load_joblib(generation.file("umap_reducer_2d.joblib"))

    new, previous = promote(paths.models, paths.staging_generation, validate=validate)
    copied = _copy_to_outputs(new, paths)
    context.log.info(f"model generation {new.id} serves predictions now (previous: {previous.id if previous else None})")
    return dg.MaterializeResult(
        metadata={
            "generation": new.id,
            "previous_generation": previous.id if previous else "",
            "path": dg.MetadataValue.path(path_str(new.path)),
            "seed_copies": ", ".join(copied),
        }
    )
