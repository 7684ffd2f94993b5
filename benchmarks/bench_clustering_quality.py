"""Clustering quality (ARI) of feature variants: resize modes, native input, multi-scale, CNN + texture fusion.

Usage:
    python benchmarks/bench_clustering_quality.py [--datasets f3 demo demo150x300] [--few 25] [--draws 5]
        [--cache /tmp/seis_clustering_quality] [--backbone auto]

For every data set the features of each input setting are extracted once with ``features.extract_features``
(cached as Parquet under ``--cache``, reused by content hash on a rerun) and then combined:

- ``cnn <input>``: the CNN features at ``224:stretch`` / ``224:pad`` / ``224:crop`` / ``native`` (the pipeline's
  path: UMAP 50-d on the raw features, KMeans k = number of classes);
- ``multi-scale``: the CNN features at ``native`` and at 224 (stretch) side by side (2 x dim);
- ``fusion w``: z-scored CNN features (224 stretch) and z-scored texture attributes (``attributes.py``), each block
  divided by the square root of its width so both weigh the same at w = 1, the texture block times w
  (w = 0: the z-scored CNN features alone); z-scores fitted on the training patches;
- ``fusion-raw w``: the CNN features unscaled per column (divided by one number, their RMS column std), next to
  the z-scored texture block, each block / sqrt(width), texture times w;
- ``texture``: the texture attributes alone (z-scored, as the pipeline does for that backbone).

Two regimes per data set, ARI against the folder labels:
- ``all``: fit UMAP + KMeans on every patch and score them (``metrics.json``'s ``ari``);
- ``few``: fit on ``--few`` patches per class (``--draws`` random draws), embed the other patches with
  ``reducer.transform`` and ``kmeans.predict``, and score those held-out patches (mean, min over draws).

Data sets: ``f3`` = the 1000 real F3 patches (99x99, ``../shared/data/f3_patches``); ``demo`` = ``make demo``'s
generated train set (150 per class, 99x99); ``demo150x300`` = the generator at LANDMASS-2's 150x300 size
(``--wide-n`` per class, default 100), the only one where the resize modes differ (99x99 patches are upsampled the same way in every
mode: the script checks on a sample that their features are equal and reuses the stretch features). The last line reads
``clustering_quality <dataset>/<regime>/<variant>=<ari> ...``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from seis_assets.core import synthetic
from seis_assets.core.backbones import load_backbone
from seis_assets.core.cluster import fit_kmeans
from seis_assets.core.feature_table import feature_matrix
from seis_assets.core.features import embed, extract_features
from seis_assets.core.listing import list_categories
from seis_assets.core.mat_index import scan_category
from seis_assets.core.patches import load_patch
from seis_assets.core.reduce import fit_reducer

F3 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "f3_patches"
CNN_INPUTS = ("224:stretch", "224:pad", "224:crop", "native")
FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


def dataset_index(name: str, cache: Path, wide_n: int = 100) -> pd.DataFrame:
    if name == "f3":
        root = F3
    elif name == "demo":
        root = cache / "demo"
        if not (root / "train").is_dir():
            synthetic.write_dataset(root, n_train=synthetic.DEFAULT_N_TRAIN, n_test=0)
        root = root / "train"
    elif name == "demo150x300":
        root = cache / "demo150x300"
        if not (root / "train").is_dir():
            synthetic.write_dataset(root, n_train=wide_n, n_test=0, size=(150, 300))
        root = root / "train"
    else:
        raise ValueError(f"unknown data set {name!r}")
    cats = list_categories(root)
    return pd.concat([scan_category(root, c, "train")[0] for c in cats], ignore_index=True)


def features(index: pd.DataFrame, name: str, setting: str, backbones: dict, cache: Path) -> np.ndarray:
    """Feature matrix of ``index`` (rows in index order) for ``setting`` = a CNN input label or ``texture``."""
    out = cache / f"{name}__{setting.replace(':', '_')}.parquet"
    bb = backbones["texture" if setting == "texture" else "cnn"]
    t0 = time.perf_counter()
    rep = extract_features(index, out, bb, input_size="native" if setting == "texture" else setting,
                           previous_path=out if out.exists() else None, progress=lambda p: None)
    if rep.n_extracted:
        print(f"  [{name}] {setting}: extracted {rep.n_extracted} ({rep.img_per_s:.0f} img/s, "
              f"{time.perf_counter() - t0:.0f} s), reused {rep.n_reused}", flush=True)
    table = pd.read_parquet(out)
    pos = pd.Series(np.arange(len(table)), index=table["path"].to_numpy())
    return feature_matrix(table)[pos.loc[index["path"].to_numpy()].to_numpy()]


def _blocks(parts: list[np.ndarray], weights: list[float], train: np.ndarray) -> np.ndarray:
    out = []
    for X, w in zip(parts, weights):
        if w == 0:
            continue
        s = StandardScaler().fit(X[train])
        Xs = s.transform(X)
        out.append(np.nan_to_num(Xs) * (w / np.sqrt(X.shape[1])))
    return np.hstack(out).astype(np.float32)


def _raw_fusion(cnn: np.ndarray, tex: np.ndarray, w: float, train: np.ndarray) -> np.ndarray:
    """CNN features as they are, divided by one number (their RMS column std on the training patches, so rare
    features are not blown up as per-column z-scores do), next to the z-scored texture block, both / sqrt(width)."""
    scale = float(np.sqrt(np.mean(cnn[train].var(axis=0)))) + 1e-12
    t = np.nan_to_num(StandardScaler().fit(tex[train]).transform(tex))
    return np.hstack([cnn / scale / np.sqrt(cnn.shape[1]), w * t / np.sqrt(tex.shape[1])]).astype(np.float32)


def variants(F: dict[str, np.ndarray]) -> dict[str, callable]:
    """name -> f(train mask) -> (matrix, standardize flag)."""
    v = {f"cnn {s}": (lambda train, s=s: (F[s], False)) for s in CNN_INPUTS}
    v["multi-scale native+224"] = lambda train: (np.hstack([F["native"], F["224:stretch"]]), False)
    for w in FUSION_WEIGHTS:
        v[f"fusion w={w:g}"] = lambda train, w=w: (
            _blocks([F["224:stretch"], F["texture"]], [1.0, w], train) if w else _blocks([F["224:stretch"]], [1.0], train),
            False,
        )
    for w in FUSION_WEIGHTS[2:]:
        v[f"fusion-raw w={w:g}"] = lambda train, w=w: (_raw_fusion(F["224:stretch"], F["texture"], w, train), False)
    v["texture"] = lambda train: (F["texture"], True)
    return v


def ari_all(X, y, standardize: bool) -> float:
    _, Z = fit_reducer(X, 50, standardize=standardize, random_state=42)
    return float(adjusted_rand_score(y, fit_kmeans(Z, len(set(y)), random_state=42).labels_))


def ari_few(X, y, train, standardize: bool) -> float:
    reducer, Z = fit_reducer(X[train], 50, standardize=standardize, random_state=42)
    km = fit_kmeans(Z, len(set(y)), random_state=42)
    held = ~train
    Zh = np.asarray(reducer.transform(X[held]), dtype=km.cluster_centers_.dtype)
    return float(adjusted_rand_score(y[held], km.predict(Zh)))


def markdown(df: pd.DataFrame) -> str:
    cols = ["dataset", "variant", "ari_all", "ari_few_mean", "ari_few_min"]
    lines = ["| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * 3]
    for r in df.itertuples():
        lines.append(f"| {r.dataset} | {r.variant} | {r.ari_all:.3f} | {r.ari_few_mean:.3f} | {r.ari_few_min:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["f3", "demo", "demo150x300"])
    p.add_argument("--few", type=int, default=25, help="training patches per class in the 'few' regime")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--cache", type=Path, default=Path("/tmp/seis_clustering_quality"))
    p.add_argument("--backbone", default="auto")
    p.add_argument("--wide-n", type=int, default=100, help="patches per class of demo150x300")
    p.add_argument("--only", nargs="*", default=None, help="variant names to run (default all)")
    p.add_argument("--regimes", nargs="+", default=["all", "few"], choices=["all", "few"])
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    cnn = load_backbone(args.backbone)
    backbones = {"cnn": cnn, "texture": load_backbone("texture")}
    print(f"backbone: {cnn.identity['backbone']} (requested {args.backbone}; "
          f"fallback: {cnn.identity.get('fallback_reason') or 'none'}); cpu cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for name in args.datasets:
        index = dataset_index(name, args.cache, args.wide_n)
        y = index["category"].to_numpy()
        square = bool((index["height"] == index["width"]).all())
        settings = ("224:stretch", "native", "texture") if square else (*CNN_INPUTS, "texture")
        F = {s: features(index, name, s, backbones, args.cache) for s in settings}
        if square:
            # a square patch is resized the same way in every mode: check it on a sample, then reuse the features
            sample = np.stack([load_patch(p) for p in index["path"].iloc[:: max(1, len(index) // 16)]])
            ref = embed(cnn, sample, "224:stretch", "fp32")
            same = all(np.array_equal(ref, embed(cnn, sample, f"224:{m}", "fp32")) for m in ("pad", "crop"))
            print(f"  [{name}] square patches: stretch/pad/crop features identical on {len(sample)} patches: {same}",
                  flush=True)
            if not same:
                raise SystemExit("pad/crop differ from stretch on square patches: extract them separately")
            F["224:pad"] = F["224:crop"] = F["224:stretch"]
        for vname, make in variants(F).items():
            if args.only and vname not in args.only:
                continue
            t0 = time.perf_counter()
            a_all = float("nan")
            if "all" in args.regimes:
                X, std = make(np.ones(len(y), bool))
                a_all = ari_all(X, y, std)
            few = []
            for d in range(args.draws if "few" in args.regimes else 0):
                rng = np.random.default_rng([d, 7])
                train = np.zeros(len(y), bool)
                for c in np.unique(y):
                    train[rng.choice(np.where(y == c)[0], args.few, replace=False)] = True
                Xd, std = make(train)
                few.append(ari_few(Xd, y, train, std))
            results.append(dict(dataset=name, variant=vname, ari_all=a_all,
                                ari_few_mean=float(np.mean(few)) if few else float("nan"),
                                ari_few_min=float(np.min(few)) if few else float("nan"), seconds=time.perf_counter() - t0))
            r = results[-1]
            print(f"  [{name}] {vname:<24} all {a_all:.3f}  few({args.few}/class, {args.draws} draws) "
                  f"mean {r['ari_few_mean']:.3f} min {r['ari_few_min']:.3f}  ({r['seconds']:.0f} s)", flush=True)
    df = pd.DataFrame(results)
    print()
    print(f"ARI; 'all' = fit and score every patch; 'few' = fit on {args.few}/class, score the held-out rest "
          f"(mean / min of {args.draws} draws); load average now {os.getloadavg()[0]:.1f}")
    print(markdown(df))
    line = " ".join(f"{r.dataset}/all/{r.variant.replace(' ', '_')}={r.ari_all:.3f} "
                    f"{r.dataset}/few/{r.variant.replace(' ', '_')}={r.ari_few_mean:.3f}" for r in df.itertuples())
    print(f"clustering_quality {line}")


if __name__ == "__main__":
    main()
