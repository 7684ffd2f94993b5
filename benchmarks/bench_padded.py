"""A real section padded with zero traces and muted at the top, mapped through the real assets beside the original.

Exported surveys are often padded: an irregular outline written as a rectangle of traces, the traces outside it all
zero, and processing may mute the shallow part. Windows wholly in such a zone are *dead* (one value throughout):
``survey_windows`` leaves them out and counts them, and ``facies_map`` gives no class to their samples and to the
zero traces (``seis_assets/core/segy_windows.py``, "Dead windows").

This makes two copies of the real F3 inline 362 (``$SHARED_DATA/sections``): ``edge``, its first ``--edge`` traces
set to zero, and ``top``, its first ``--mute-ms`` of every trace set to zero; then runs what ``make demo-segy`` runs
(the recluster job on the 1,000 real F3 patches, then ``segy_job`` on the original and both copies, the default
survey backbone, stride 11) in a fresh process with its own ``DAGSTER_HOME``. For each copy it prints the dead windows,
the share of samples with no class, and how many of its live samples keep the original map's category: all of them,
and those at least one window (99 traces or samples) away from the zeros, whose windows hold no zero sample.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_padded.py

Last line: ``padded maps=2 edge_dead_windows= top_dead_windows= edge_no_class= top_no_class= edge_agree_live=
edge_agree_far= top_agree_live= top_agree_far= seconds=``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import segyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cube import ROOT, SHARED, TRAIN, cpu_flags, run_step  # noqa: E402

sys.path.insert(0, str(ROOT))
from seis_assets.core.window_features import read_dead_windows  # noqa: E402

WINDOW = 99  # the default window's traces and samples


def padded_copy(source: Path, dest: Path, edge: int = 0, mute_samples: int = 0) -> Path:
    """``source`` with its first ``edge`` traces and every trace's first ``mute_samples`` samples set to zero."""
    shutil.copyfile(source, dest)
    with segyio.open(str(dest), "r+", ignore_geometry=True) as f:
        for i in range(f.tracecount):
            trace = np.array(f.trace[i])
            if i < edge:
                trace[:] = 0
            trace[:mute_samples] = 0
            f.trace[i] = trace
    return dest


def categories(folder: Path) -> np.ndarray:
    """(n_traces, n_samples) category names of a map's ``facies_labels.sgy`` ('' where no class)."""
    legend = pd.read_csv(folder / "facies_legend.csv")
    names = np.array([*legend.sort_values("index")["category"].astype(str), ""], dtype=object)
    with segyio.open(str(folder / "facies_labels.sgy"), ignore_geometry=True) as f:
        labels = segyio.tools.collect(f.trace[:]).astype(int)
    return names[np.where(labels >= 0, labels, -1)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=SHARED / "sections" / "f3_inline362.sgy")
    ap.add_argument("--edge", type=int, default=200, help="zero traces at the start of the line (default 200)")
    ap.add_argument("--mute-ms", type=float, default=500.0, help="zeroed time at the top of every trace (default 500)")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    if not args.source.exists():
        raise SystemExit(f"{args.source} is missing: set SHARED_DATA=/path/to/shared/data or --source")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_padded_"))
    work.mkdir(parents=True, exist_ok=True)
    with segyio.open(str(args.source), ignore_geometry=True) as f:
        dt_ms = segyio.tools.dt(f) / 1000.0
    mute = int(round(args.mute_ms / dt_ms))
    files = {"original": work / args.source.name,
             "edge": padded_copy(args.source, work / f"edge_{args.source.name}", edge=args.edge),
             "top": padded_copy(args.source, work / f"top_{args.source.name}", mute_samples=mute)}
    shutil.copyfile(args.source, files["original"])
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, flags: {cpu_flags()}")
    print(f"{args.source.name}: edge = first {args.edge} traces zero; top = first {args.mute_ms:g} ms ({mute} samples)"
          " zero", flush=True)
    data, home = work / "data", work / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "SEIS_DATA_DIR": str(data),
           "SEIS_TRAIN_DIR": str(SHARED / "f3_patches"), "SEIS_SEGY": ":".join(str(p) for p in files.values()),
           "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    run_step("train and map the three files (make demo-segy's steps)", TRAIN, env, work / "log.txt")
    seconds = time.perf_counter() - started

    maps = {k: categories(data / "outputs" / "sections" / p.name) for k, p in files.items()}
    original = maps["original"]
    n_traces, n_samples = original.shape
    trace, sample = np.meshgrid(np.arange(n_traces), np.arange(n_samples), indexing="ij")
    zero = {"edge": trace < args.edge, "top": sample < mute}
    far = {"edge": trace >= args.edge + WINDOW, "top": sample >= mute + WINDOW}
    result = {}
    for name in ("edge", "top"):
        m = maps[name]
        dead = read_dead_windows(data / "warehouse" / "survey_windows" / f"{files[name].name}.parquet")
        live = ~zero[name]
        result |= {f"{name}_dead_windows": dead, f"{name}_no_class": float((m == "").mean()),
                   f"{name}_agree_live": float((m[live] == original[live]).mean()),
                   f"{name}_agree_far": float((m[far[name]] == original[far[name]]).mean())}
        print(f"  {name}: {dead} dead windows; no class on {(m == '').mean():.1%} of samples (zero samples "
              f"{zero[name].mean():.1%}, of which no class {(m[zero[name]] == '').mean():.1%}); the original's category "
              f"on {result[f'{name}_agree_live']:.1%} of the live samples, {result[f'{name}_agree_far']:.1%} of those a "
              f"window away from the zeros", flush=True)
    print(f"  the original map: {', '.join(f'{c} {s:.1%}' for c, s in pd.Series(original.ravel()).value_counts(normalize=True).items())}")
    print("padded maps=2 " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items())
          + f" seconds={seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
