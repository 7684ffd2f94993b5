"""Forward pass of the survey backbone on real SEG-Y windows: engine x batch size, img/s and cosine to torch fp32.

A survey is mapped with ``SURVEY_MAPPING_BACKBONE`` (``auto+instnorm``: EfficientNet-Lite0 with per-image instance
normalisation in its shallow layers when the ResNet50 weights are not at hand) at input 224. Instance normalisation
reads every activation of those layers twice per image, so its speed depends on whether a batch's activations stay
in the CPU caches; this benchmark measures what ``engines.batch_size_for`` and the ``auto`` rule should pick for it.

Windows: 99 x 99 every 33 traces and samples of one line of ``--segy`` (default: the real F3 inline 362 in
``../shared/data/sections``, else ``$SHARED_DATA``), min-max scaled per window as ``survey_windows`` does. Each cell
runs the same ``--n`` windows through ``features.embed`` (preprocessing included, after one warm-up batch); the
cells run in interleaved rounds (``--rounds``) and each cell's best round is kept, so a busy moment on the machine
does not decide a cell.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_survey_engine.py
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_survey_engine.py --backbone efficientnet_lite0 --batches 8 64

First line: CPU model and flags, threads. Last line:
``survey_engine backbone= before_engine= before_batch= before_img_s= best_engine= best_batch= best_img_s= speedup=
fastest_engine= fastest_batch= fastest_img_s= fastest_cosine=`` where *before* is the engine and batch the pipeline
used before this benchmark (ONNX Runtime, 64), *best* the fastest cell whose features are within cosine 0.999 of
torch fp32 and *fastest* the fastest cell of all (``openvino:bf16`` is below that cosine; its gate is the map,
``bench_facies_map.py --precision bf16``). ``openvino:bf16`` needs a CPU with native bf16.
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

from seis_assets.core.engines import cpu_flags, has_native_bf16, thread_budget  # noqa: E402
from seis_assets.core.features import embed  # noqa: E402
from seis_assets.core.segy import open_survey  # noqa: E402
from seis_assets.core.segy_windows import iter_windows, scale_window  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from bench_features import SHOWN_FLAGS, cosine_rows  # noqa: E402

log = logging.getLogger("bench_survey_engine")
#: What the pipeline ran the survey backbone with before this benchmark (engines.BATCH_SIZES of 2026-12-05).
BEFORE = ("onnxruntime", 64)


def default_segy() -> str:
    base = os.environ.get("SHARED_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")
    return os.path.join(base, "sections", "f3_inline362.sgy")


def line_windows(path: str, n: int, side: int = 99, stride: int = 33) -> np.ndarray:
    """Up to ``n`` windows (n, side, side) of the first inline of ``path``, evenly spread, per-window min-max scaled."""
    out = []
    with open_survey(path) as survey:
        first = int(survey.info.inlines[0])
        for position, window in iter_windows(survey, n_traces=side, n_samples=side, stride=stride):
            if position["inline"] != first:
                break
            out.append(scale_window(window, "per_window", name=f"{path} {position}"))
    if len(out) < n:
        raise SystemExit(f"{path}: {len(out)} windows, fewer than --n {n}")
    pick = np.linspace(0, len(out) - 1, n).round().astype(int)
    return np.stack([out[i] for i in pick])


def cpu_line() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu: {model}; flags: {' '.join(sorted(SHOWN_FLAGS & cpu_flags()))}; threads: {thread_budget()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--segy", default=default_segy(), help="SEG-Y file whose first inline is cut (default: F3 inline 362)")
    ap.add_argument("--backbone", default="auto+instnorm")
    ap.add_argument("--n", type=int, default=192, help="windows per cell (default 192)")
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    ap.add_argument("--engines", nargs="+", default=None,
                    help="engines, each ENGINE or ENGINE:PRECISION (default precision fp32), e.g. openvino:bf16 "
                         "(default: torch, onnxruntime, openvino, and openvino:bf16 on a CPU with native bf16)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default="/tmp/seis_bench_survey_engine", help="exported models' folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from seis_assets.resources import FeatureSettings

    if not os.path.isfile(args.segy):
        sys.exit(f"bench_survey_engine: {args.segy} not found; give --segy (any SEG-Y line or cube)")
    backbone = FeatureSettings(backbone=args.backbone).load_backbone(logger=log)
    P = line_windows(args.segy, args.n)
    print(cpu_line())
    print(f"backbone: {backbone.name} (asked {args.backbone}), input 224, {len(P)} windows of {args.segy}", flush=True)
    ref = embed(backbone, P, 224, "fp32", "torch")
    if args.engines is None:
        args.engines = ["torch", "onnxruntime", "openvino"] + (["openvino:bf16"] if has_native_bf16(cpu_flags()) else [])
    cells = [(e, b) for e in args.engines for b in args.batches]
    rates: dict = {c: 0.0 for c in cells}
    cosine: dict = {}

    def run(cell, i):
        engine, precision = (cell[0].split(":", 1) + ["fp32"])[:2]
        return embed(backbone, P[i : i + cell[1]], 224, precision, engine, args.cache)

    for cell in cells:  # export once, warm up, check the features
        X = np.concatenate([run(cell, i) for i in range(0, len(P), cell[1])])
        cosine[cell] = float(cosine_rows(X, ref).min())
    for _ in range(args.rounds):
        for cell in cells:
            t = time.perf_counter()
            for i in range(0, len(P), cell[1]):
                run(cell, i)
            rates[cell] = max(rates[cell], len(P) / (time.perf_counter() - t))
    print("| engine | batch | img/s (best of rounds) | cosine min vs torch fp32 |")
    print("|---|---:|---:|---:|")
    for cell in cells:
        print(f"| {cell[0]} | {cell[1]} | {rates[cell]:.1f} | {cosine[cell]:.6f} |")
    ok = [c for c in cells if cosine[c] >= 0.999]
    best = max(ok, key=lambda c: rates[c]) if ok else None
    fastest = max(cells, key=lambda c: rates[c])
    before = rates.get(BEFORE, float("nan"))
    best_line = (f"best_engine={best[0]} best_batch={best[1]} best_img_s={rates[best]:.1f} "
                 f"speedup={rates[best] / before:.2f}") if best else "best_engine=none"
    print(f"survey_engine backbone={backbone.name} before_engine={BEFORE[0]} before_batch={BEFORE[1]} "
          f"before_img_s={before:.1f} {best_line} fastest_engine={fastest[0]} fastest_batch={fastest[1]} "
          f"fastest_img_s={rates[fastest]:.1f} fastest_cosine={cosine[fastest]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
