"""SEG-Y surveys: windows and their features per survey file, and the facies map painted back onto each section.

``survey_windows[survey]`` cuts every window of one SEG-Y file (``SegySettings``), scales it and makes its backbone
features with the same backbone, input size and precision as the patches. ``facies_map[survey]`` classifies the
windows with the models the recluster job fitted on the labelled patches (``models=patches``: clusters and their
categories) or fits UMAP + KMeans on the survey's own windows (``models=survey``: clusters only), votes them back
onto every inline at sample resolution (windows are cut at the patches' sample interval: a survey at another rate is
resampled first, and the labels SEG-Y goes back to its own rate; the scale used is in both assets' metadata) and
writes ``outputs/sections/<survey>/``: ``facies_map.png`` (+ ``.pdf``, one page per line), ``anomaly_map.png`` (with
the confidence: each sample's vote share), ``facies_labels.sgy``, ``facies_legend.csv``, ``section_assignments.csv``
(with each window's confidence).
"""


import json

import dagster as dg
import numpy as np
import pandas as pd

from seis_assets.assets import HEAVY_POOL, HEAVY_TAG, SECTIONS
from seis_assets.assets._metadata import image_metadata, markdown_preview
from seis_assets.core.dataset import stack_vectors
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.feature_table import table_identity
from seis_assets.core.generations import require_serving_generation
from seis_assets.core.predict import FittedModels
from seis_assets.core.section_grid import scale_record
from seis_assets.core.segy import list_segy_files, survey_name
from seis_assets.core.segy_windows import WINDOW_COLUMNS
from seis_assets.core.stratigraphy import UNIT_TEXTURE_CLUSTERS
from seis_assets.core.survey_models import MODEL_SOURCES, check_window_identity, fit_survey_models, window_qc
from seis_assets.core.window_predict import classify_windows, survey_features
from seis_assets.partitions import survey_partitions
from seis_assets.resources import FeatureSettings, SegySettings, SeisPaths


def survey_file(settings: SegySettings, key: str) -> str:
    """The SEG-Y file of partition ``key`` among the configured files."""
    if not settings.segy:
        raise dg.Failure("no SEG-Y configured: set SEIS_SEGY (files or folders, ':'-separated) or segy_settings.segy")
    files = {survey_name(f): f for f in list_segy_files(settings.segy)}
    if key not in files:
        raise dg.Failure(f"survey partition {key!r} is not among the configured SEG-Y files: {sorted(files)}")
    return files[key]


def output_folder(paths: SeisPaths, key: str):
    return paths.outputs / "sections" / key


@dg.asset(
    partitions_def=survey_partitions,
    io_manager_key="parquet_io_manager",
    group_name=SECTIONS,
    op_tags=HEAVY_TAG,
    pool=HEAVY_POOL,
    kinds={"segy", "parquet"},
    description=(
        "Every window of one SEG-Y survey (position: direction, inline, first crossline, first sample, size) with its "
        "backbone features, made like the patches' features. Scaling per window or survey-wide (robust)."
    ),
)
def survey_windows(
    context: dg.AssetExecutionContext, paths: SeisPaths, feature_settings: FeatureSettings, segy_settings: SegySettings
) -> pd.DataFrame:
    path = survey_file(segy_settings, context.partition_key)
    backbone = feature_settings.load_backbone(logger=context.log)
    identity = table_identity(backbone, feature_settings.input_size_value(), feature_settings.precision)
    with segy_settings.survey_at_patch_scale(path, context.log) as survey:
        info = survey.info
        scale = scale_record(survey, segy_settings.patch_sample_interval_ms, segy_settings.patch_trace_spacing_m)
        positions, X, scaling, qc = survey_features(
            survey, identity, scaling=segy_settings.scaling, n_traces=segy_settings.window_traces,
            n_samples=segy_settings.window_samples, stride=segy_settings.stride,
            directions=segy_settings.direction_list(), weights_path=feature_settings.weights_path,
            device=feature_settings.device, logger=context.log,
        )
    table = positions.copy()
    table["path"] = path
    for key in ("backbone", "weights", "input_size", "precision"):
        table[key] = str(identity.get(key))
    table["scaling"] = scaling["scaling"]
    table["scale"] = float(scaling.get("scale", np.nan))
    for column in qc.columns.drop("path"):  # QC attributes of each window's raw amplitudes (anomaly kinds)
        table[f"qc_{column}"] = qc[column].to_numpy()
    table["features"] = list(X.astype(np.float32))
    context.add_output_metadata(
        {
            "survey": path,
            "geometry": dg.MetadataValue.json({k: v for k, v in info.as_dict().items() if k not in ("inlines", "xlines")}
                                              | {"n_inlines": len(info.inlines), "n_xlines": len(info.xlines)}),
            "n_windows": len(table),
            "window": f"{segy_settings.window_traces} traces x {segy_settings.window_samples} samples, stride {segy_settings.stride}",
            "scaling": json.dumps(scaling),
            "scale": dg.MetadataValue.json(scale),
            "backbone": str(identity["backbone"]),
            "fallback_reason": str(identity.get("fallback_reason") or ""),
            "preview": dg.MetadataValue.md(markdown_preview(positions)),
        }
    )
    return table


def _facies_metadata(result: dict, source: str, k: int, n_windows: int, out) -> dict:
    """What the UI shows of one facies map: where the models came from, class shares, legend, the files."""
    files = result["files"]
    shares = pd.DataFrame(sorted(result["category_share"].items()), columns=["class", "share_of_samples"])
    return {
        "models": source,
        "k": k,
        "n_windows": n_windows,
        "share_of_samples": dg.MetadataValue.md(shares.to_markdown(index=False, floatfmt=".3f")),
        "legend": dg.MetadataValue.md(markdown_preview(result["legend"], n=30)),
        "facies_map": image_metadata(files["facies_map.png"]),
        "anomaly_map": image_metadata(files["anomaly_map.png"]),  # anomaly score and confidence, one above the other
        "confidence_mean": float(result["assignments"]["confidence"].mean()),
        "facies_labels": dg.MetadataValue.path(files["facies_labels.sgy"]),
        "folder": dg.MetadataValue.path(str(out)),
    }


@dg.asset(
    partitions_def=survey_partitions,
    deps=["model_generation"],
    group_name=SECTIONS,
    op_tags=HEAVY_TAG,
    pool=HEAVY_POOL,
    kinds={"segy", "png", "csv"},
    description=(
        "Each window's cluster and mapped category voted back onto the section at sample resolution: facies_map.png "
        "(+ .pdf, a page per line), anomaly_map.png (anomaly score and confidence, the vote share per sample), "
        "facies_labels.sgy (input headers, samples = cluster index), facies_legend.csv, section_assignments.csv "
        "(with each window's confidence), in outputs/sections/<survey>/."
    ),
)
def facies_map(
    context: dg.AssetExecutionContext,
    survey_windows: pd.DataFrame,
    paths: SeisPaths,
    segy_settings: SegySettings,
    feature_settings: FeatureSettings,
) -> dg.MaterializeResult:
    key = context.partition_key
    if segy_settings.models not in MODEL_SOURCES:
        raise dg.Failure(f"segy_settings.models must be one of {MODEL_SOURCES}, got {segy_settings.models!r}")
    if segy_settings.units < 0:
        raise dg.Failure(f"segy_settings.units must be 0 (clusters) or a number of units, got {segy_settings.units}")
    if segy_settings.units and segy_settings.models != "survey":
        raise dg.Failure(f"segy_settings.units={segy_settings.units} needs models=survey (units are cut from the "
                         f"survey's own clusters), got models={segy_settings.models!r}")
    X = stack_vectors(survey_windows["features"])
    windows = survey_windows[WINDOW_COLUMNS].reset_index(drop=True)
    qc = window_qc(survey_windows)
    if segy_settings.models == "patches":
        models = FittedModels.load(require_serving_generation(paths.models))  # one model generation, whole
        check_window_identity(survey_windows, models.identity, key)
        k = int(models.kmeans.n_clusters)
        source = "models fitted on the labelled patches (recluster job)"
    else:
        k = segy_settings.k or (UNIT_TEXTURE_CLUSTERS if segy_settings.units else 4)
        models = fit_survey_models(X, qc, k, 42, context.log)
        source = f"UMAP + KMeans (k={k}) fitted on this survey's {len(X)} windows"
        if segy_settings.units:
            source += f", {segy_settings.units} stratigraphic units per line"
    pred = classify_windows(X, models, qc)
    mapping = {int(c): m for c, m in zip(models.mapping["cluster"], models.mapping["majority"]) if m}
    out = output_folder(paths, key)
    with segy_settings.survey_at_patch_scale(survey_file(segy_settings, key), context.log) as survey:
        scale = scale_record(survey, segy_settings.patch_sample_interval_ms, segy_settings.patch_trace_spacing_m)
        result = write_facies_outputs(
            survey, windows, pred["cluster"].to_numpy(), pred["anomaly_score"].to_numpy(), mapping, k, out,
            map_xlines=segy_settings.map_xlines, units=segy_settings.units,
            extra_columns=pred[(["predicted_hungarian"] if mapping else [])
                               + ["anomaly_percentile", "kind", "qc_score", "qc_reason", "novelty_score"]],
        )
    context.log.info(f"{key}: " + ", ".join(f"{c} {s:.1%}" for c, s in result["category_share"].items()))
    metadata = _facies_metadata(result, source, k, len(windows), out) | {"scale": dg.MetadataValue.json(scale)}
    return dg.MaterializeResult(metadata=metadata)
