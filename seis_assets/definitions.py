"""The one ``Definitions`` object: assets, checks, jobs, sensors, schedule, resources, IO managers."""

import dagster as dg

from seis_assets.assets import clustering, embedding, evaluation, generations, incoming, ingest, quality, sections
from seis_assets.checks import ALL_CHECKS
from seis_assets.executors import executor_from_env
from seis_assets.io_managers import AtomicPickleIOManager, ParquetIOManager
from seis_assets.jobs import ingest_job, predict_incoming_job, recluster_job, segy_job
from seis_assets.resources import AnalysisSettings, DaskCluster, FeatureSettings, SegySettings, SeisPaths
from seis_assets.schedules import recluster_schedule
from seis_assets.sensors import incoming_files_sensor, train_folder_sensor

ALL_ASSETS = dg.load_assets_from_modules(
    [ingest, quality, embedding, clustering, evaluation, generations, incoming, sections]
)


#: The settings resources besides ``paths``, each under its ``resource_key`` (the key the variables table uses).
SETTINGS = (FeatureSettings, AnalysisSettings, DaskCluster, SegySettings)


def build_resources(paths: SeisPaths | None = None, **overrides) -> dict:
    """Resources for the definitions, the demo and the tests; settings default from the environment."""
    paths = paths or SeisPaths.from_env()
    resources = {
        SeisPaths.resource_key: paths,
        **{settings.resource_key: settings.from_env() for settings in SETTINGS},
        "parquet_io_manager": ParquetIOManager(base_path=str(paths.warehouse)),
        "io_manager": AtomicPickleIOManager(base_dir=str(paths.models / "dagster")),
    }
    resources.update(overrides)
    return resources


defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[ingest_job, recluster_job, predict_incoming_job, segy_job],
    sensors=[train_folder_sensor, incoming_files_sensor],
    schedules=[recluster_schedule],
    resources=build_resources(),
    executor=executor_from_env(),  # default unless SEIS_EXECUTOR=k8s (deploy/k8s/)
)
