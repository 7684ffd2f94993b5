"""Confidence (vote share) and colours of a ``models=survey`` map: one real section mapped as the ``facies_map``
asset maps it with ``segy_settings.models=survey``, no labels used.

The windows go through ``window_predict.survey_features`` -> ``survey_models.fit_survey_models`` (UMAP 50-d + KMeans
+ anomaly scorer, seed 42) -> ``classify_windows`` -> ``facies.write_facies_outputs``; the map files land in --out
(look at ``facies_map.png`` and ``anomaly_map.png``). Prints the per-sample and per-window confidence.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_confidence.py                       # inline 362, texture, k 12
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_confidence.py --backbone auto+instnorm --k 12

Last line: ``confidence section= k= windows= sample_mean= sample_median= sample_below_half= window_mean=
window_min= seconds=``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from seis_assets.core.facies import write_facies_outputs  # noqa: E402
from seis_assets.core.feature_table import table_identity  # noqa: E402
from seis_assets.core.segy import open_survey  # noqa: E402
from seis_assets.core.survey_models import fit_survey_models  # noqa: E402
from seis_assets.core.window_predict import classify_windows, survey_features  # noqa: E402
from seis_assets.resources import FeatureSettings  # noqa: E402

SECTION = os.path.join(ROOT, "..", "shared", "data", "sections", "f3_inline362.sgy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segy", default=SECTION)
    ap.add_argument("--backbone", default="texture")
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--out", default="/tmp/seis_bench_confidence")
    args = ap.parse_args()
    if not os.path.exists(args.segy):
        sys.exit(f"{args.segy}: no such SEG-Y file (the shared data sit beside the repository, in ../shared/data)")
    log = logging.getLogger("bench_confidence")
    t0 = time.time()
    settings = FeatureSettings(backbone=args.backbone)
    identity = table_identity(settings.load_backbone(logger=log), settings.input_size_value(), settings.precision)
    with open_survey(args.segy) as survey:
        pos, X, _, qc = survey_features(survey, identity, scaling="per_window", device="cpu", logger=log)
        qc = qc.assign(path=[f"window {i}" for i in range(len(qc))])  # as survey_models.window_qc names them
        models = fit_survey_models(X, qc, args.k, 42, log)
        pred = classify_windows(X, models, qc)
        result = write_facies_outputs(survey, pos, pred["cluster"].to_numpy(), pred["anomaly_score"].to_numpy(), {},
                                      args.k, args.out, keep_maps=True)
    share = np.concatenate([c.ravel() for c in result["confidence"].values()])
    window = result["assignments"]["confidence"]
    print(f"maps in {args.out}")
    print(f"confidence section={os.path.basename(args.segy)} k={args.k} windows={len(pos)} "
          f"sample_mean={share.mean():.3f} sample_median={np.median(share):.3f} "
          f"sample_below_half={(share < 0.5).mean():.3f} window_mean={window.mean():.3f} window_min={window.min():.3f} "
          f"seconds={time.time() - t0:.0f}")


if __name__ == "__main__":
    main()
