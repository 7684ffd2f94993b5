"""What ``k = auto`` picks, against the labelled default (the number of categories), on a real or demo set.

Runs ``python -m seis_assets.demo`` twice in a private data folder and Dagster home (features are extracted once
and reused by the second run): first with ``SEIS_K=auto``, then with the labelled default. Prints the k sweep
(silhouette, Davies-Bouldin, stability) and, as the last line::

    k_auto set=<name> n_train=<n> categories=<c> auto_k=<k> ari_auto=<ari> ari_default=<ari> seconds=<s>

Usage::

    python benchmarks/k_auto.py --train ../shared/data/f3_patches --name f3
    python benchmarks/k_auto.py --demo --name demo       # generates the demo set (make demo's) first

Other settings come from the environment as for ``make demo`` (``SEIS_BACKBONE``, ``SEIS_INPUT_SIZE``, ...).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _demo(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "seis_assets.demo"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", help="train folder (category folders)")
    ap.add_argument("--demo", action="store_true", help="generate make demo's synthetic set and use it")
    ap.add_argument("--name", default="set")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="k_auto_") as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "DAGSTER_HOME": str(Path(tmp) / "home"), "SEIS_DATA_DIR": str(data),
               "PYTHONPATH": str(ROOT)}
        Path(env["DAGSTER_HOME"]).mkdir()
        if args.demo:
            env.pop("SEIS_TRAIN_DIR", None)  # the demo generates data/train and data/test
        else:
            env["SEIS_TRAIN_DIR"] = str(Path(args.train).resolve())
        t0 = time.perf_counter()
        _demo({**env, "SEIS_K": "auto"})
        auto = json.loads((data / "outputs" / "metrics.json").read_text())
        sweep = pd.read_parquet(data / "warehouse" / "k_sweep.parquet")
        _demo({**env, "SEIS_K": "default"})
        default = json.loads((data / "outputs" / "metrics.json").read_text())
        seconds = time.perf_counter() - t0
    print(sweep.to_string(index=False, float_format="%.3f"))
    print(f"backbone={auto['backbone']} input_size={auto['input_size']} k_rule={auto['k_rule']!r}")
    print(
        f"k_auto set={args.name} n_train={auto['n_train']} categories={len(default['categories'])} "
        f"auto_k={auto['k']} ari_auto={auto['ari']:.3f} ari_default={default['ari']:.3f} seconds={seconds:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
