"""ARI of the default pipeline (backbone -> UMAP 50-d -> KMeans k=4) on synthetic data, per difficulty.

Usage:
    python benchmarks/ari_vs_difficulty.py [--n 100] [--difficulties 0.3 0.5 0.7] [--backbone auto] [--seed 0]

For each difficulty: ``synthetic.write_dataset`` (n per class, train only) into a temporary folder,
``mat_index.scan_category`` per class, ``features.extract_features`` with ``backbones.load_backbone``
(``auto`` falls back to efficientnet_lite0 offline; the texture backbone is z-scored before UMAP, as in
the pipeline), ``reduce.fit_reducer`` (50-d), ``cluster.fit_kmeans`` (k = number of classes) and
``sklearn.metrics.adjusted_rand_score`` against the generated class. The last line reads
``ari_vs_difficulty backbone=<b> n=<n> d=<ari> ...`` (used to calibrate ``DEFAULT_DIFFICULTY``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_rand_score

from seis_assets.core import synthetic
from seis_assets.core.backbones import load_backbone
from seis_assets.core.cluster import fit_kmeans
from seis_assets.core.feature_table import feature_matrix
from seis_assets.core.features import extract_features
from seis_assets.core.mat_index import scan_category
from seis_assets.core.reduce import fit_reducer


def ari_at(difficulty: float, n: int, backbone, seed: int, workdir: Path) -> float:
    root = workdir / f"d{difficulty:.3f}"
    synthetic.write_dataset(root, n_train=n, n_test=0, difficulty=difficulty, seed=seed, force=True)
    index = pd.concat([scan_category(root / "train", c, "train")[0] for c in synthetic.CLASSES], ignore_index=True)
    out = workdir / f"features_{difficulty:.3f}.parquet"
    extract_features(index, out, backbone, progress=lambda p: None)
    table = pd.read_parquet(out)
    X = feature_matrix(table)
    _, Z = fit_reducer(X, 50, standardize=backbone.identity["backbone"] == "texture", random_state=42)
    clusters = fit_kmeans(Z, len(synthetic.CLASSES), random_state=42).labels_
    return float(adjusted_rand_score(table["category"], clusters))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100, help="patches per class")
    p.add_argument("--difficulties", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    p.add_argument("--backbone", default="auto", help="auto, resnet50, efficientnet_lite0 or texture")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    backbone = load_backbone(args.backbone)
    name = backbone.identity["backbone"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="ari_vs_difficulty_") as tmp:
        for d in args.difficulties:
            t0 = time.perf_counter()
            results[d] = ari_at(d, args.n, backbone, args.seed, Path(tmp))
            print(f"difficulty {d:.2f}  ARI {results[d]:.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    pairs = " ".join(f"{d:g}={a:.3f}" for d, a in results.items())
    print(f"ari_vs_difficulty backbone={name} n={args.n} {pairs}")


if __name__ == "__main__":
    main()
