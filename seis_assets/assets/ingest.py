"""Per-category ingestion: index the ``.mat`` files (bad ones to quarantine), then extract features.

``raw_mat_index`` and ``quarantine`` come from one pass over ``train_dir/<category>`` and ``test_dir/<category>``:
every file lands in exactly one of them. ``resnet_features`` streams its Parquet table row group by row group and
re-uses rows whose content hash and backbone identity are unchanged.
"""


import dagster as dg
import pandas as pd
from upath import UPath

from seis_assets.assets import HEAVY_POOL, HEAVY_TAG, INGEST, feature_step_k8s_tag
from seis_assets.assets._metadata import markdown_preview
from seis_assets.core.backbones import save_feature_extractor
from seis_assets.core.distributed import BackboneSpec
from seis_assets.core.features import extract_features
from seis_assets.core.sources import index_partition, parse_partition_key
from seis_assets.io_managers import WrittenTable
from seis_assets.partitions import category_partitions
from seis_assets.resources import DaskCluster, FeatureSettings, SeisPaths


@dg.multi_asset(
    outs={
        "raw_mat_index": dg.AssetOut(
            io_manager_key="parquet_io_manager",
            description=(
                "One row per readable patch of the partition (a folder, or a shard of a large one): path, "
                "category, split (train/test), sha256, height, width."
            ),
            kinds={"parquet"},
        ),
        "quarantine": dg.AssetOut(
            io_manager_key="parquet_io_manager",
            description="Files of the partition that could not be used, with the reason. Never replaced by made-up pixels.",
            kinds={"parquet"},
        ),
    },
    partitions_def=category_partitions,
    group_name=INGEST,
)
def raw_mat_index(context: dg.AssetExecutionContext, paths: SeisPaths):
    category = context.partition_key  # a category / folder, or one shard of it (core/sources.py)
    index, rejected = index_partition(
        category, {"train": paths.train, "test": paths.test}, labels=paths.labels, mat_key=paths.mat_key
    )
    if len(rejected):
        context.log.warning(
            f"{len(rejected)} file(s) of '{category}' quarantined, e.g. {rejected.path.iloc[0]}: {rejected.reason.iloc[0]}"
        )
    counts = index.split.value_counts()
    yield dg.Output(
        index,
        output_name="raw_mat_index",
        metadata={
            "n_train": int(counts.get("train", 0)),
            "n_test": int(counts.get("test", 0)),
            "n_quarantined": len(rejected),
            "folder": parse_partition_key(category).group,
            "labels": paths.labels,
            "sizes": ", ".join(f"{h}x{w}: {n}" for (h, w), n in index.groupby(["height", "width"]).size().items()),
            "preview": dg.MetadataValue.md(markdown_preview(index[["path", "split", "height", "width"]])),
        },
    )
    yield dg.Output(
        rejected,
        output_name="quarantine",
        metadata={
            "n_quarantined": len(rejected),
            "rejected": dg.MetadataValue.md(markdown_preview(rejected[["path", "reason"]])),
        },
    )


def _feature_metadata(report, requested: str, ran_on: str, saved) -> dict:
    """What the UI shows of one extraction: the identity actually used, the counts, the throughput, the artifact."""
    identity = report.identity
    return {
        "backbone": identity["backbone"],
        "backbone_requested": identity.get("requested", requested),
        "fallback_reason": identity.get("fallback_reason") or "",
        "weights": identity["weights"],
        "dim": int(identity["dim"]),
        "input_size": str(report.input_size),  # label with the resize mode, e.g. 224:stretch
        "precision": str(report.precision),
        "engine": str(identity.get("engine", "")),
        "engine_note": identity.get("engine_note") or "",
        "threads": int(report.threads),
        "n_extracted": report.n_extracted,
        "n_reused": report.n_reused,
        "n_dropped": report.n_dropped,
        "n_failed": len(report.failures),
        "img_per_s": float(round(report.img_per_s, 1)),
        "seconds": float(round(report.seconds, 2)),
        "ran_on": ran_on,
        "feature_extractor": dg.MetadataValue.path(saved) if saved else "not written (no network ran)",
    }


@dg.asset(
    partitions_def=category_partitions,
    io_manager_key="parquet_io_manager",
    group_name=INGEST,
    op_tags={**HEAVY_TAG, **feature_step_k8s_tag()},
    pool=HEAVY_POOL,
    kinds={"pytorch", "parquet"},
    description=(
        "One feature vector per indexed patch, from the configured backbone: by default (auto) ImageNet ResNet50 "
        "without its classifier when its weights resolve, else the packaged EfficientNet-Lite0. The backbone "
        "actually used is recorded per row and in the file's metadata. Only new or changed files are extracted."
    ),
)
def resnet_features(
    context: dg.AssetExecutionContext,
    raw_mat_index: pd.DataFrame,
    paths: SeisPaths,
    feature_settings: FeatureSettings,
    dask: DaskCluster,
) -> dg.Output[WrittenTable]:
    category = context.partition_key
    out = paths.table("resnet_features", category)
    # the cache: this partition's own table, else the shard it was split from / merged from (core/sources.py)
    previous = paths.previous_table("resnet_features", category)
    if previous is not None and str(previous) != str(out):
        context.log.info(f"[{category}] re-using features of {previous} (the folder was re-sharded)")
    backbone = feature_settings.load_backbone(logger=context.log)
    # unset scheduler (default): None, extraction runs here; else shards go to the Dask cluster's workers
    spec = BackboneSpec.of(backbone, feature_settings.weights, feature_settings.weights_path, feature_settings.device)
    shard_runner = dask.shard_runner(spec, key=paths.mat_key, batch_size=feature_settings.batch_size)
    report = extract_features(
        raw_mat_index,
        out,
        backbone,
        input_size=feature_settings.input_size_value(),
        precision=feature_settings.precision,
        engine=feature_settings.engine,
        engine_cache_dir=feature_settings.engine_cache_dir or str(UPath(paths.data_dir) / "cache" / "engines"),
        batch_size=feature_settings.batch_size,
        previous_path=previous,
        key=paths.mat_key,
        progress=lambda message: context.log.info(f"[{category}] {message}"),
        shard_runner=shard_runner,
    )
    if shard_runner is not None and report.n_extracted and backbone.takes_images:
        backbone.model  # the network ran on the workers: build it here too for the seed's artifact below
    # the seed's artifact: the network that made these features (written when it ran, i.e. not on an all-cached run)
    saved = save_feature_extractor(backbone, paths.output("feature_extractor.pth"))
    if len(report.failures):
        context.log.warning(f"{len(report.failures)} file(s) of '{category}' failed during extraction and were left out")
    ran_on = f"dask {dask.scheduler_address}" if shard_runner is not None else "this process"
    return dg.Output(
        WrittenTable(str(out), report.n_rows),
        metadata=_feature_metadata(report, feature_settings.backbone, ran_on, saved),
    )
