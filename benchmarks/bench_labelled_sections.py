"""Survey maps (``segy_settings.models=survey``) of real F3 sections scored against their interpreters' labels.

Each section of ``labelled_sections/`` (every SEG-Y file there with its ``<stem>_labels.npy`` beside it, as
``make demo-survey`` finds them: in ``../shared/data``, inline 241 and crossline 575, every sample labelled with one of
10 lithostratigraphic units; ``--sections`` picks some by stem) is mapped **without its labels**, through the steps the ``facies_map`` asset takes for
``models=survey``: windows and backbone features as ``survey_windows`` makes them (``survey_features``, the
``SegySettings`` / ``FeatureSettings`` defaults, backbone ``SURVEY_MAPPING_BACKBONE`` as for any ``SEIS_SEGY`` run),
UMAP + KMeans fitted on the section's own windows (``fit_survey_models``, seed 42), each window classified
(``classify_windows``) and voted back onto every sample (``vote_line``); a trace without data (one value throughout:
crossline 575's last 50) gets no class, as ``facies_map`` paints it, and is scored as the map's "no class"
(``section_scores``; ``no_class`` is its share of the samples). Only then are the labels read, to score
the map (``seis_assets.core.section_scores``: ARI, NMI, Hungarian mIoU) beside k equal depth bands (same k).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_labelled_sections.py                   # SHARED_DATA or ../shared/data
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_labelled_sections.py --data /path/to/data
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_labelled_sections.py --units 0 --k 10 --centre-votes

By default each section is mapped into 10 stratigraphic units, as ``make demo-survey`` maps it
(``segy_settings.units=10``, ``seis_assets.core.stratigraphy``: relative geologic time from the structure tensor's
dip, the line cut where its character and the clusters' vote shares change, over 16 window clusters); 10 is the
number of units in the F3 interpretation's scheme, never read from a section's labels. The depth bands are then 10
bands. ``--units n`` cuts n units; ``--units 0`` maps the window clusters themselves (k by the auto rule unless
``--k``), which is what the options below change.

Options that change the window clusters (none is the pipeline's default; each is label-free and the same for every
section): with ``--units 0`` k comes from the recluster job's auto rule (k sweep 2..10 with stability,
``choose_k("auto")``) unless ``--k`` is given (with units, ``--k`` sets the clusters the units are cut over);
``--time-weight w`` appends each window's centre time (0 at the top, 1 at the bottom of the section) to its
features, scaled to ``w`` times the features' RMS distance from their mean; ``--centre-votes`` weights each window's
vote on a sample by a Gaussian of the sample's distance from the window centre (sigma a quarter of the window;
window clusters only);
``--window n`` cuts n x n windows instead of the patches' 99 x 99 (same stride).

With units (the default), each section's row also gives ``ceiling_ari`` / ``ceiling_miou``: a diagnostic that **reads the
labels**, not a map. It cuts the map's own relative-time levels (``stratigraphy.time_levels``) into the same number
of contiguous runs where the labels say (the runs that best separate the labels' shares per level), so it is the
best any cut placement could score on these levels: the gap from the map to it is lost placing the cuts, the gap
from it to 1 is lost following the layers.

Backbone features are cached per section in ``--cache`` (default /tmp/seis_bench_labelled), so options re-run fast;
``seconds=`` on the last line counts everything this run did (features included unless cached).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from seis_assets.core.cluster import choose_k, k_sweep  # noqa: E402
from seis_assets.core.facies import count_votes, vote_line  # noqa: E402
from seis_assets.core.feature_table import table_identity  # noqa: E402
from seis_assets.core.patches import live_traces  # noqa: E402
from seis_assets.core.reduce import fit_reducer  # noqa: E402
from seis_assets.core.section_scores import NO_CLASS, SCORE_NAMES, baseline_scores, score_map  # noqa: E402
from seis_assets.core.map_vs_labels import labels_beside  # noqa: E402
from seis_assets.core.segy import list_segy_files, open_survey, section_direction  # noqa: E402
from seis_assets.core.stratigraphy import UNIT_TEXTURE_CLUSTERS, segment_profile, time_levels, unit_map  # noqa: E402
from seis_assets.core.survey_models import fit_survey_models  # noqa: E402
from seis_assets.core.window_predict import classify_windows, survey_features  # noqa: E402
from seis_assets.resources import SURVEY_MAPPING_BACKBONE, AnalysisSettings, FeatureSettings, SegySettings  # noqa: E402

SEED = 42
# The F3 interpretation's scheme has 10 units (labelled_sections/README.md); make demo-survey maps as many. A number
# of the scheme, not read from a section's labels: a section showing fewer units is still mapped into 10.
DEFAULT_UNITS = 10
log = logging.getLogger("bench_labelled_sections")


def labelled_sections(given: str | None, stems: list[str] | None = None) -> list[tuple[str, str]]:
    """``(SEG-Y, labels)`` of every section in ``labelled_sections/`` under --data, else $SHARED_DATA, else
    ../shared/data beside the repository: each SEG-Y file with ``<stem>_labels.npy`` beside it
    (:func:`~seis_assets.core.map_vs_labels.labels_beside`), sorted; only ``stems`` when given."""
    base = given or os.environ.get("SHARED_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")
    folder = os.path.join(base, "labelled_sections")
    if not os.path.isdir(folder):
        sys.exit(f"bench_labelled_sections: no folder {folder}; set --data or SHARED_DATA to the folder holding "
                 "labelled_sections/")
    found = {Path(p).stem: (p, str(labels_beside(p))) for p in list_segy_files(folder) if labels_beside(p)}
    missing = sorted(set(stems or ()) - set(found))
    if missing or not found:
        sys.exit(f"bench_labelled_sections: {folder} holds no SEG-Y section with <stem>_labels.npy beside it"
                 + (f" named {', '.join(missing)}" if missing else "") + f" (sections there: {sorted(found) or 'none'})")
    return [found[s] for s in (stems or sorted(found))]


def section_line(survey) -> tuple[str, int]:
    """The one line a section file holds: (direction, number); a file holding one crossline is cut along it, as
    the pipeline cuts it (``segy.section_direction``)."""
    info = survey.info
    direction = section_direction(info)
    lines = survey.lines(direction)
    if len(lines) != 1:
        raise SystemExit(f"{info.path}: not one section ({len(info.inlines)} inlines x {len(info.xlines)} crosslines)")
    return direction, int(lines[0])


def section_features(path: str, backbone: str, cache: str, window: int = 99, precision: str = "auto"):
    """Windows and features of one section as ``survey_windows`` makes them (cached in ``cache``)."""
    segy = SegySettings(window_traces=window, window_samples=window)
    features = FeatureSettings(backbone=backbone, precision=precision)
    with open_survey(path, segy.iline_byte, segy.xline_byte) as survey:
        direction, number = section_line(survey)
        identity = table_identity(features.load_backbone(logger=log), features.input_size_value(), features.precision)
        name = (f"{os.path.basename(path)}_{backbone}_{identity['engine']}_{identity['precision']}_"
                f"{segy.window_traces}x{segy.window_samples}_s{segy.stride}_{segy.scaling}")
        files = [os.path.join(cache, name + ext) for ext in (".positions.parquet", ".X.npy", ".qc.parquet")]
        if all(os.path.exists(f) for f in files):
            return pd.read_parquet(files[0]), np.load(files[1]), pd.read_parquet(files[2]), (direction, number)
        positions, X, _, qc = survey_features(
            survey, identity, scaling=segy.scaling, n_traces=segy.window_traces, n_samples=segy.window_samples,
            stride=segy.stride, directions=(direction,), device=features.device, logger=log,
        )
    os.makedirs(cache, exist_ok=True)
    positions.to_parquet(files[0])
    np.save(files[1], X)
    qc.to_parquet(files[2])
    return positions, X, qc, (direction, number)


def with_time_feature(X: np.ndarray, positions: pd.DataFrame, n_samples: int, weight: float) -> np.ndarray:
    """``X`` with one more column: each window's centre time (0 top, 1 bottom), standardised and scaled to
    ``weight`` times the features' RMS distance from their mean (weight 1: as much spread as all features)."""
    if weight <= 0:
        return X
    centre = (positions["sample"].to_numpy() + positions["n_samples"].to_numpy() / 2) / n_samples
    spread = float(np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean()))
    column = weight * spread * (centre - centre.mean()) / max(float(centre.std()), 1e-12)
    return np.hstack([X, column[:, None].astype(X.dtype)])


def survey_k(X: np.ndarray, k: int) -> tuple[int, str]:
    """``k`` when set, else the recluster job's auto rule on the 50-d UMAP fit_survey_models fits (same seed)."""
    if k:
        return k, "set"
    analysis = AnalysisSettings()
    _, Z = fit_reducer(X, 50, random_state=SEED, logger=log)
    sweep = k_sweep(Z, range(2, analysis.k_sweep_max + 1), random_state=SEED, stability_runs=analysis.stability_runs)
    return choose_k("auto", sweep, None)


def centre_votes(positions: pd.DataFrame, clusters: np.ndarray, k: int, n_traces: int, n_samples: int,
                 line_other: np.ndarray) -> np.ndarray:
    """The cluster of every sample of one line, each window's vote weighted by a Gaussian of the distance from
    its centre (sigma a quarter of the window's size on each axis); (n_traces, n_samples), like ``vote_line``."""
    votes = np.zeros((k, n_traces, n_samples), dtype=np.float64)
    pos = {int(v): i for i, v in enumerate(line_other)}
    key = "xline" if positions["direction"].iloc[0] == "inline" else "inline"
    kernels: dict[tuple[int, int], np.ndarray] = {}
    for first, s0, nt, ns, c in zip(positions[key], positions["sample"], positions["n_traces"],
                                    positions["n_samples"], clusters):
        nt, ns = int(nt), int(ns)
        if (nt, ns) not in kernels:
            gt = np.exp(-0.5 * ((np.arange(nt) - (nt - 1) / 2) / (nt / 4)) ** 2)
            gs = np.exp(-0.5 * ((np.arange(ns) - (ns - 1) / 2) / (ns / 4)) ** 2)
            kernels[(nt, ns)] = np.outer(gt, gs)
        t0 = pos[int(first)]
        votes[int(c), t0 : t0 + nt, int(s0) : int(s0) + ns] += kernels[(nt, ns)]
    if (votes.sum(axis=0) == 0).any():
        raise RuntimeError("centre_votes: samples no window covers")
    return votes.argmax(axis=0)


def map_section(path: str, args) -> dict:
    """The survey map of one section, (n_samples, n_traces) cluster indices, without reading its labels."""
    positions, X, qc, (direction, number) = section_features(path, args.backbone, args.cache, args.window, args.precision)
    with open_survey(path) as survey:
        section, idx = survey.read_line(direction, number)
        other = survey.trace_xline[idx] if direction == "inline" else survey.trace_inline[idx]
        n_samples = survey.info.n_samples
    X = with_time_feature(X, positions, n_samples, args.time_weight)
    k, rule = survey_k(X, args.k or (UNIT_TEXTURE_CLUSTERS if args.units else 0))
    models = fit_survey_models(X, qc, k, SEED, log)
    clusters = classify_windows(X, models, qc)["cluster"].to_numpy()
    if args.units:  # what facies_map paints with segy_settings.units
        votes = count_votes(positions, clusters, None, k, len(idx), n_samples, direction, number, other, keep_shares=True)
        cmap = unit_map(section, args.units, votes.shares)
        k, rule = args.units, f"{args.units} units over {k} clusters"
    elif args.centre_votes:
        cmap = centre_votes(positions, clusters, k, len(idx), n_samples, other)
    else:
        cmap, _ = vote_line(positions, clusters, None, k, len(idx), n_samples, direction, number, other)
    live = live_traces(section)
    cmap[~live] = NO_CLASS  # as facies_map paints: no class on traces without data (dead, one value throughout)
    if (cmap[live] < 0).any():
        raise RuntimeError(f"{path}: samples no window covers")
    levels = time_levels(np.asarray(section, dtype=np.float64).T) if args.units else None
    return {"map": cmap.T.astype(np.int64), "k": k, "k_rule": rule, "n_windows": len(positions), "levels": levels}


def ceiling_scores(levels: np.ndarray, labels: np.ndarray, n: int) -> dict[str, float]:
    """Scores of the best ``n`` contiguous runs of ``levels`` (samples x traces) **chosen with the labels**: each
    level's share of every label, cut by ``segment_profile`` (levels weighted by their samples). A diagnostic of
    the relative-time levels, never a map."""
    n_levels = int(levels.max()) + 1
    flat, lab = levels.ravel(), labels.ravel().astype(np.int64)
    count = np.bincount(flat, minlength=n_levels).astype(np.float64)
    shares = np.stack([np.bincount(flat, weights=(lab == u).astype(np.float64), minlength=n_levels)
                       for u in range(int(lab.max()) + 1)], axis=1) / np.maximum(count, 1.0)[:, None]
    cuts = segment_profile(shares, n, weights=count / count.max())
    return score_map(np.searchsorted(cuts, levels, side="right"), labels)


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="folder holding labelled_sections/ (default: $SHARED_DATA, else ../shared/data)")
    ap.add_argument("--sections", nargs="+", help="only these sections, by file stem (default: every labelled one)")
    ap.add_argument("--k", type=int, default=0, help="clusters (default 0: the auto rule)")
    ap.add_argument("--backbone", default=SURVEY_MAPPING_BACKBONE)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="the network's precision (default auto: what the pipeline picks on this machine)")
    ap.add_argument("--time-weight", type=float, default=0.0, help="window centre time as a feature (0: off)")
    ap.add_argument("--units", type=int, default=DEFAULT_UNITS,
                    help=f"map this many stratigraphic units (segy_settings.units; k then defaults to "
                         f"{UNIT_TEXTURE_CLUSTERS}); default {DEFAULT_UNITS}, as make demo-survey; 0 maps the window "
                         "clusters instead")
    ap.add_argument("--centre-votes", action="store_true", help="votes weighted by distance from the window centre")
    ap.add_argument("--window", type=int, default=99, help="window size in traces and samples (default 99, the patches')")
    ap.add_argument("--cache", default="/tmp/seis_bench_labelled")
    args = ap.parse_args(argv)
    if args.units and args.centre_votes:
        ap.error("--centre-votes changes how window clusters are voted; units are cut from the plain votes' shares: "
                 "give --units 0 with it")
    logging.basicConfig(level=logging.WARNING)
    sections = labelled_sections(args.data, args.sections)
    start = time.perf_counter()
    rows = []
    for segy_path, labels_path in sections:
        name = Path(segy_path).stem
        t0 = time.perf_counter()
        result = map_section(segy_path, args)
        labels = np.load(labels_path)  # read only now: the map never sees them
        scores, base = score_map(result["map"], labels), baseline_scores(labels, result["k"])
        row = {"section": name, **scores, "k": result["k"], "k_rule": result["k_rule"],
               **{f"depth_band_{s}": base[s] for s in SCORE_NAMES},
               "ari_x_baseline": scores["ari"] / base["ari"], "n_windows": result["n_windows"],
               **({f"ceiling_{s}": v for s, v in ceiling_scores(result["levels"], labels, result["k"]).items()
                   if s in ("ari", "miou")} if result["levels"] is not None else {}),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(_fmt(row), flush=True)
    mean = {c: float(np.mean([r[c] for r in rows])) for c in ("ari", "nmi", "miou", "depth_band_ari", "k")}
    print(f"labelled sections={len(rows)} ari_mean={mean['ari']:.3f} nmi_mean={mean['nmi']:.3f} "
          f"miou_mean={mean['miou']:.3f} depth_band_ari_mean={mean['depth_band_ari']:.3f} k_mean={mean['k']:.1f} "
          f"seconds={time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
