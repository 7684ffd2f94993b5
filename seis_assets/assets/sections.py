"""SEG-Y surveys: windows and their features per survey file, and the facies map painted back onto each section.

``survey_windows[survey]`` cuts every window of one SEG-Y file (``SegySettings``), scales it and makes its backbone
features with the same backbone, input size and precision as the patches. ``facies_map[survey]`` classifies the
windows with the models the recluster job fitted on the labelled patches (``models=patches``: clusters and their
categories) or fits UMAP + KMeans on the survey's own windows (``models=survey``: clusters only), votes them back
onto every inline at sample resolution (windows are cut at the patches' sample interval: a survey at another rate is
resampled first, and the labels SEG-Y goes back to its own rate; the scale used is in both assets' metadata) and
writes ``outputs/sections/<survey>/``: ``facies_map.png`` (+ ``.pdf``, one page per line), ``anomaly_map.png`` (with
the confidence: each sample's vote share), ``facies_labels.sgy``, ``facies_legend.csv``, ``section_assignments.csv``
(with each window's confidence). Where interpreters' labels lie beside a section (``<stem>_labels.npy``), the map is
scored against them (``map_vs_labels.json``, ``map_vs_labels.png``, and the scores in the metadata).
"""


import json
import time

import dagster as dg
import numpy as np
import pandas as pd

from seis_assets.assets import HEAVY_POOL, HEAVY_TAG, SECTIONS
from seis_assets.assets._metadata import image_metadata, markdown_preview
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.feature_table import table_identity
from seis_assets.core.generations import require_serving_generation
from seis_assets.core.map_vs_labels import clear_scores, labels_beside, score_section
from seis_assets.core.predict import Embedder, FittedModels
from seis_assets.core.section_grid import scale_record
from seis_assets.core.segy import list_segy_files, section_direction, survey_name
from seis_assets.core.segy_windows import WINDOW_COLUMNS
from seis_assets.core.stratigraphy import UNIT_TEXTURE_CLUSTERS
from seis_assets.core.storage import ParquetTable, is_local
from seis_assets.core.survey_models import WINDOW_IDENTITY, check_window_identity, fit_sample, fit_survey_models
from seis_assets.core.volume_views import check_times, is_volume, write_corrupt_traces, write_volume_views
from seis_assets.core.window_features import (
    WindowCache, local_runner, read_corrupt_traces, read_dead_windows, read_line_step, read_short_runs,
    write_survey_windows,
)
from seis_assets.core.window_predict import classify_table
from seis_assets.partitions import survey_partitions
from seis_assets.io_managers import LAZY, WrittenTable
from seis_assets.resources import DaskCluster, FeatureSettings, SegySettings, SeisPaths


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
        "QC attributes and backbone features, made like the patches' features, line by line (a cube is never held "
        "whole). Each line's windows are cached by content: a re-run re-uses them. Windows containing a corrupt "
        "trace are left out and the trace reported; dead windows (one value throughout: zero padding, a muted zone) are "
        "left out and counted; windows never span a gap in a line's trace numbering (irregular outlines)."
    ),
)
def survey_windows(
    context: dg.AssetExecutionContext,
    paths: SeisPaths,
    feature_settings: FeatureSettings,
    segy_settings: SegySettings,
    dask: DaskCluster,
) -> dg.Output[WrittenTable]:
    key = context.partition_key
    path = survey_file(segy_settings, key)
    segy_settings.check_line_step()
    backbone = feature_settings.load_backbone(logger=context.log)
    identity = table_identity(backbone, feature_settings.input_size_value(), feature_settings.precision)
    out = paths.table("survey_windows", key)
    weights, device = feature_settings.weights_path, feature_settings.device
    with segy_settings.survey_at_patch_scale(path, context.log) as survey:
        info = survey.info
        scale = scale_record(survey, segy_settings.patch_sample_interval_ms, segy_settings.patch_trace_spacing_m)
        spec = segy_settings.window_spec(survey)
        batch_size = feature_settings.batch_size
        runner = dask.line_runner(spec, identity, weights, device, batch_size) or local_runner(
            spec, lambda: Embedder.build(identity, weights, device, context.log, batch_size=batch_size))
        constants = {"path": path, **{k: str(identity.get(k)) for k in WINDOW_IDENTITY},
                     "scaling": spec.scaling, "scale": float(spec.scale) if spec.scale else np.nan}
        report = write_survey_windows(survey, segy_settings.direction_list(), spec, identity, out, runner,
                                      WindowCache(paths.window_cache), constants, context.log,
                                      line_step=segy_settings.line_step)
    corrupt = pd.DataFrame([c.__dict__ for c in report.corrupt], columns=["direction", "inline", "xline", "reason"])
    return dg.Output(
        WrittenTable(str(out), report.n_windows),
        metadata={
            "survey": path,
            "geometry": dg.MetadataValue.json({k: v for k, v in info.as_dict().items() if k not in ("inlines", "xlines")}
                                              | {"n_inlines": len(info.inlines), "n_xlines": len(info.xlines)}),
            "window": f"{spec.n_traces} traces x {spec.n_samples} samples, stride {spec.stride}"
                      + (f", on one line in {segy_settings.line_step}" if segy_settings.line_step > 1 else ""),
            "scaling": json.dumps({"scaling": spec.scaling, "scale": spec.scale}),
            "scale": dg.MetadataValue.json(scale),
            "backbone": str(identity["backbone"]),
            "fallback_reason": str(identity.get("fallback_reason") or ""),
            "ran_on": f"dask {dask.scheduler_address}" if dask.scheduler_address else "this process",
            "lines": dg.MetadataValue.json(report.metadata()),
            "corrupt_traces": dg.MetadataValue.md(markdown_preview(corrupt, n=30)) if len(corrupt) else "none",
            "dead_windows": report.dead_windows,
            "short_runs": dg.MetadataValue.json({"runs": report.short_runs, "traces": report.short_run_traces,
                                                  "e.g.": report.short_examples}),
        },
    )


def _vs_labels(context, segy_path: str, map_segy: str | None, out, k: int, map_class: str,
               trace_numbers: tuple[str, np.ndarray]) -> dict:
    """The map scored against interpreters' labels beside the section (``map_vs_labels``), as metadata: nothing
    when there are none. A labels file that does not fit the section is named in the metadata and the log, and the
    map stands."""
    clear_scores(out)
    labels_path = labels_beside(segy_path) if is_local(segy_path) else None
    if labels_path is None:
        return {}
    if map_segy is None or not is_local(map_segy):
        why = "the map is an MDIO store" if map_segy is None else f"the map is written to a bucket ({map_segy})"
        context.log.warning(f"{labels_path}: not scored, {why}")
        return {"vs_labels": f"not scored: {why}"}
    try:
        scores = score_section(segy_path, map_segy, out, k, map_class, trace_numbers)
    except ValueError as e:
        context.log.error(f"the map is not scored against {labels_path}: {e}")
        return {"vs_labels": f"not scored: {e}"}
    table = pd.DataFrame([{"map": "this map", **{s: scores[s] for s in ("ari", "nmi", "miou")}},
                          {"map": f"{k} depth bands", **{s: scores[f"depth_band_{s}"] for s in ("ari", "nmi", "miou")}}])
    context.log.info(f"{survey_name(segy_path)} against {labels_path}: ARI {scores['ari']:.3f}, NMI {scores['nmi']:.3f}, "
                     f"mIoU {scores['miou']:.3f} ({k} depth bands: ARI {scores['depth_band_ari']:.3f})")
    return {
        "vs_labels": dg.MetadataValue.md(table.to_markdown(index=False, floatfmt=".3f")
                                         + f"\n\nagainst `{labels_path}`; no class on {scores['no_class']:.1%} of samples"),
        "vs_labels_ari": float(scores["ari"]),
        "map_vs_labels": image_metadata(scores["figure"]),
    }


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
        "facies_labels": dg.MetadataValue.path(files.get("facies_labels.sgy") or files["facies_labels.mdio"]),
        "folder": dg.MetadataValue.path(str(out)),
    }


@dg.asset(
    partitions_def=survey_partitions,
    deps=["model_generation"],
    ins={"survey_windows": dg.AssetIn(metadata={LAZY: True})},  # read in batches: a cube's features never whole
    group_name=SECTIONS,
    op_tags=HEAVY_TAG,
    pool=HEAVY_POOL,
    kinds={"segy", "png", "csv"},
    description=(
        "Each window's cluster and mapped category voted back onto the section at sample resolution: facies_map.png "
        "(+ .pdf, a page per line), anomaly_map.png (anomaly score and confidence, the vote share per sample), "
        "facies_labels.sgy (input headers, samples = cluster index), facies_legend.csv, section_assignments.csv "
        "(with each window's confidence), in outputs/sections/<survey>/; for 3-D cubes also time slices and "
        "facies_volume_summary.csv, and corrupt_traces.csv where traces were left out; where interpreters' labels lie "
        "beside a section (<stem>_labels.npy), the map scored against them (map_vs_labels.json and .png)."
    ),
)
def facies_map(
    context: dg.AssetExecutionContext,
    survey_windows: ParquetTable,
    paths: SeisPaths,
    segy_settings: SegySettings,
    feature_settings: FeatureSettings,
) -> dg.MaterializeResult:
    key = context.partition_key
    segy_settings.check_map_settings()
    windows = survey_windows.read(WINDOW_COLUMNS)
    corrupt = read_corrupt_traces(survey_windows.path)
    dead = read_dead_windows(survey_windows.path)
    short = read_short_runs(survey_windows.path)
    line_step = read_line_step(survey_windows.path)  # as the windows were cut, whatever the settings say now
    started = time.perf_counter()
    if segy_settings.models == "patches":
        models = FittedModels.load(require_serving_generation(paths.models))  # one model generation, whole
        check_window_identity(survey_windows.read(list(WINDOW_IDENTITY)).iloc[:1], models.identity, key)
        k = int(models.kmeans.n_clusters)
        source = "models fitted on the labelled patches (recluster job)"
    else:
        k = segy_settings.k or (UNIT_TEXTURE_CLUSTERS if segy_settings.units else 4)
        fit_rows, X_fit, qc_fit = fit_sample(survey_windows)
        models = fit_survey_models(X_fit, qc_fit, k, 42, context.log)
        source = f"UMAP + KMeans (k={k}) fitted on {len(fit_rows)} of this survey's {len(windows)} windows"
        if segy_settings.units:
            source += f", {segy_settings.units} stratigraphic units per line"
            if segy_settings.tie_lines:
                source += f" (a cube's inlines cut with {segy_settings.tie_lines} on each side)"
    pred = classify_table(survey_windows, models)
    seconds = {"fit_and_classify": time.perf_counter() - started}
    mapping = {int(c): m for c, m in zip(models.mapping["cluster"], models.mapping["majority"]) if m}
    out = output_folder(paths, key)
    path = survey_file(segy_settings, key)
    with segy_settings.survey_at_patch_scale(path, context.log) as survey:
        scale = scale_record(survey, segy_settings.patch_sample_interval_ms, segy_settings.patch_trace_spacing_m)
        if is_volume(survey.info):
            check_times(survey.info, segy_settings.map_times_ms)
        result = write_facies_outputs(
            survey, windows, pred["cluster"].to_numpy(), pred["anomaly_score"].to_numpy(), mapping, k, out,
            map_xlines=segy_settings.map_xlines, units=segy_settings.units, page_lines=segy_settings.page_lines,
            gaps=bool(corrupt) or dead > 0 or short["runs"] > 0, line_step=line_step, tie_lines=segy_settings.tie_lines,
            extra_columns=pred[(["predicted_hungarian"] if mapping else [])
                               + ["anomaly_percentile", "kind", "qc_score", "qc_reason", "novelty_score"]],
        )
        seconds["vote_and_write"] = time.perf_counter() - started - seconds["fit_and_classify"]
        along = "crossline" if section_direction(survey.info) == "inline" else "inline"  # what numbers its traces
        trace_numbers = (along, np.asarray(survey.trace_xline if along == "crossline" else survey.trace_inline))
        labels = result["files"].get("facies_labels.sgy") or result["files"]["facies_labels.mdio"]
        result["files"] |= write_volume_views(  # read back from the labels just written, SEG-Y or MDIO
            labels, result["legend"], survey.info, out,
            times_ms=segy_settings.map_times_ms, bin_ms=segy_settings.summary_bin_ms,
        )
    result["files"] |= write_corrupt_traces(corrupt, out)
    context.log.info(f"{key}: " + ", ".join(f"{c} {s:.1%}" for c, s in result["category_share"].items()))
    vs_labels = _vs_labels(context, path, result["files"].get("facies_labels.sgy"), out,
                           len(result["legend"]), "map unit" if segy_settings.units else "cluster", trace_numbers)
    metadata = _facies_metadata(result, source, k, len(windows), out) | vs_labels | {
        "scale": dg.MetadataValue.json(scale), "corrupt_traces": len(corrupt), "dead_windows": dead,
        "short_runs": dg.MetadataValue.json(short), "line_step": line_step,
        "seconds": dg.MetadataValue.json({k: round(v, 2) for k, v in seconds.items()}
                                         | {"volume_views": round(time.perf_counter() - started - sum(seconds.values()), 2)}),
    }
    return dg.MaterializeResult(metadata=metadata)
