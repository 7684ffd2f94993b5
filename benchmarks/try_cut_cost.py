"""Tried, not adopted: a Gaussian cost for where the stratigraphic units are cut (issue 16).

``stratigraphy.segment_profile`` cuts a line's character profile into n runs with the least summed within-run
squared deviation: every run is scored as if all units were equally homogeneous, so a thick package whose
character varies (clinoforms) is split while two calm packages of like character are merged. A Gaussian cost scores
each run by the log of its own variance instead (``0.5 * weight * sum_d log(var_d + floor_d)``, the negative
log-likelihood of a run under its own diagonal Gaussian), so a run may be variable as long as it is variable
throughout. It has one free number, the variance floor: ``absolute`` (floor_d = f) or ``relative`` (floor_d = f x
the feature's variance over the whole profile).

This script replaces ``segment_profile`` in the units path (``unit_map``; the ceiling diagnostic keeps the
variance cost) and runs ``bench_labelled_sections.py`` once per floor, features from its cache:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/try_cut_cost.py --cache /tmp/seis_bench_labelled

Each setting prints bench_labelled_sections' rows; the last line of each is ``cut_cost=... floor=...``, the mean
ARI of 3 units on test_stratigraphy's generated three-package section (seeds 0-3, ``synthetic_ari``) and the
means over the real sections. Figures: benchmarks/README.md, "Survey maps against interpreters' labels".
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_labelled_sections  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from seis_assets.core import stratigraphy  # noqa: E402
from seis_assets_tests.core.test_stratigraphy import _section  # noqa: E402


def synthetic_ari(seeds=range(4)) -> float:
    """Mean ARI of 3 units against the truth on the generated three-package section of test_stratigraphy (two
    layered packages around a chaotic one, all dipping), one section per seed."""
    scores = []
    for seed in seeds:
        section, units = _section(seed)
        scores.append(adjusted_rand_score(units.ravel(), stratigraphy.unit_map(section.T, 3).T.ravel()))
    return float(np.mean(scores))


def gaussian_segment(profile: np.ndarray, n: int, weights: np.ndarray | None, floor: np.ndarray) -> np.ndarray:
    """``segment_profile``'s cuts with each run costing ``0.5 * W * sum_d log(var_d + floor_d)`` (W its summed
    weight, var_d its weighted variance of feature d); the same exact dynamic programming
    (``stratigraphy.optimal_cuts``)."""
    profile = np.asarray(profile, dtype=np.float64)
    rows, dims = profile.shape
    if not 1 <= n <= rows:
        raise ValueError(f"cannot cut {rows} levels into {n} units")
    w = np.ones(rows) if weights is None else np.asarray(weights, dtype=np.float64)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cs = np.vstack([np.zeros(dims), np.cumsum(profile * w[:, None], axis=0)])
    cs2 = np.vstack([np.zeros(dims), np.cumsum(w[:, None] * profile**2, axis=0)])
    cost = np.full((rows + 1, rows + 1), np.inf)  # cost[i, j]: rows i..j-1 in one run
    for i in range(rows):
        run_w = np.maximum(cw[i + 1:] - cw[i], 1e-12)[:, None]
        mean = (cs[i + 1:] - cs[i]) / run_w
        var = np.maximum((cs2[i + 1:] - cs2[i]) / run_w - mean * mean, 0.0)
        cost[i, i + 1:] = 0.5 * run_w[:, 0] * np.log(var + floor[None, :]).sum(axis=1)
    return stratigraphy.optimal_cuts(cost, n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default="/tmp/seis_bench_labelled", help="bench_labelled_sections' feature cache")
    ap.add_argument("--data", help="as bench_labelled_sections --data")
    ap.add_argument("--precision", default="auto", help="as bench_labelled_sections --precision")
    ap.add_argument("--absolute", type=float, nargs="*", default=[0.001, 0.003, 0.01, 0.03, 0.1])
    ap.add_argument("--relative", type=float, nargs="*", default=[0.003, 0.01, 0.03, 0.1])
    args = ap.parse_args(argv)
    variance_cost = stratigraphy.segment_profile
    settings = [("variance", 0.0)] + [("absolute", f) for f in args.absolute] + [("relative", f) for f in args.relative]
    bench_argv = ["--cache", args.cache, "--precision", args.precision] + (["--data", args.data] if args.data else [])
    try:
        for kind, f in settings:
            if kind == "variance":
                stratigraphy.segment_profile = variance_cost
            else:
                def cut(profile, n, weights=None, kind=kind, f=f):
                    profile = np.asarray(profile, dtype=np.float64)
                    floor = np.full(profile.shape[1], f) if kind == "absolute" else f * profile.var(axis=0)
                    return gaussian_segment(profile, n, weights, floor)
                stratigraphy.segment_profile = cut
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                bench_labelled_sections.main(bench_argv)
            lines = out.getvalue().strip().splitlines()
            for line in lines[:-1]:
                print("  " + line.split("  k=")[0])
            print(f"cut_cost={kind} floor={f:g} synthetic_ari={synthetic_ari():.3f} " + lines[-1].split(" ", 2)[2],
                  flush=True)
    finally:
        stratigraphy.segment_profile = variance_cost
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
