"""Anomaly benchmark: the combined rank (QC + novelty) on injected anomalies, and the novelty score on unseen F3 classes.

Usage::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_anomaly.py
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_anomaly.py --skip-real --seeds 0

Sections
--------
synthetic   ``synthetic.write_dataset(n_train=--n-train, n_test=40, anomaly_share=0.15, seed=s)`` at the default
            difficulty for each ``--seeds`` s; features with ``load_backbone(--backbone)`` + ``extract_features``;
            QC attributes with ``core.qc.qc_table`` from the raw arrays (``read_mat_array``);
            ``core.anomaly.fit_anomaly_model`` on the training patches and ``score_anomalies`` on the test patches,
            exactly as the ``anomalies`` asset and ``predict_files`` do. The clustering embedding ``Z`` only feeds
            diagnostic columns (``centroid_z``, ``knn``), never ``anomaly_score``, so a PCA-50 of the features stands
            in for the 50-d UMAP here (saves a UMAP fit per run). ROC AUC of ``anomaly_score`` (the combined rank) for
            the test patches listed in ``<root>/test/anomalies.csv`` against the other test patches, overall and per
            kind (that kind's anomalies against all normal test patches).
real F3     leave one class out on the 1000 real F3 patches (read in place from ../shared/data/f3_patches):
            the other classes split ``tail`` (last 20 % of each class in file order are the normal evaluation
            patches: neighbouring patches overlap), the novelty scorer fitted on the rest, AUC of ``novelty_score``
            for the held-out class against the normal evaluation patches, for each ``--loco-seeds`` random state
            (k-means in PCA space). Also the false-positive rate of the QC threshold (fitted on the fit part) on the
            normal evaluation patches.

Novelty candidates (``NOVELTY_CANDIDATES``): the terms of ``core.anomaly.NoveltyScorer`` alone and combined (mean of
robust z-scores); the default (``core.anomaly.DEFAULT_NOVELTY_TERMS``) is what the last line reports.

Generated sets and feature tables are cached in ``--cache-dir`` (default ``$TMPDIR/seis_assets_bench_anomaly``).

The last line is ``anomaly injected_auc= polarity_auc= clipping_auc= dead_auc= spike_auc= loco_auc_mean=
loco_auc_min=`` (the first five: mean over generator seeds of the combined rank's AUC; loco: default novelty
score, mean over held-out classes of the mean over random states, and the worst class).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

F3_ROOT = REPO.parent / "shared" / "data" / "f3_patches"
N_TEST = 40
ANOMALY_SHARE = 0.15
K = 4
N_COMPONENTS = 50
#: name -> novelty terms
NOVELTY_CANDIDATES = {
    "knn": ("knn",),
    "gauss": ("gauss",),
    "cluster_maha": ("cluster_mahalanobis",),
    "knn+cluster_maha": ("knn", "cluster_mahalanobis"),
    "knn+gauss+cluster_maha": ("knn", "gauss", "cluster_mahalanobis"),
}
#: last-line names of the artefact kinds
KIND_NAMES = {"polarity_block": "polarity", "clipped": "clipping", "dead_traces": "dead", "spikes": "spike"}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def features_for(index: pd.DataFrame, out: Path, backbone) -> pd.DataFrame:
    from seis_assets.core.features import extract_features

    out.parent.mkdir(parents=True, exist_ok=True)
    rep = extract_features(index, out, backbone, previous_path=out if out.exists() else None)
    rate = f"{rep.img_per_s:.0f} img/s" if rep.n_extracted else "cached"
    print(f"  features {out.name}: {rep.n_rows} rows, {rep.n_extracted} extracted, {rep.n_reused} reused ({rate})")
    if rep.n_dropped:
        raise RuntimeError(f"{rep.n_dropped} files failed to load: {rep.failures.head()}")
    return pd.read_parquet(out).sort_values("path", kind="stable").reset_index(drop=True)


def scan(root: Path, split: str) -> pd.DataFrame:
    from seis_assets.core.listing import list_categories
    from seis_assets.core.mat_index import scan_category

    frames = []
    for cat in list_categories(root):
        index, quarantine = scan_category(root, cat, split)
        if len(quarantine):
            raise RuntimeError(f"quarantined files in {root / cat}: {quarantine['reason'].tolist()[:3]}")
        frames.append(index)
    return pd.concat(frames, ignore_index=True)


def qc_for(paths) -> pd.DataFrame:
    from seis_assets.core.matfiles import read_mat_array
    from seis_assets.core.qc import qc_table

    return qc_table(list(paths), (read_mat_array(p) for p in paths))


def pca_embedding(X_train, X_test, seed):
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(N_COMPONENTS, *X_train.shape), random_state=seed).fit(X_train)
    return pca.transform(X_train), pca.transform(X_test)


# --------------------------------------------------------------------------- synthetic
def synthetic_run(args, backbone, feat_dir: Path, seed: int) -> list[dict]:
    from seis_assets.core import synthetic
    from seis_assets.core.anomaly import fit_anomaly_model, score_anomalies
    from seis_assets.core.anomaly_evaluation import roc_auc
    from seis_assets.core.cluster import fit_kmeans
    from seis_assets.core.dataset import known_anomaly_kinds, read_known_anomalies
    from seis_assets.core.feature_table import feature_matrix

    name = f"synth_n{args.n_train}_t{N_TEST}_a{ANOMALY_SHARE}_d{synthetic.DEFAULT_DIFFICULTY}_s{seed}"
    root = args.cache_dir / "data" / name
    if not (root / "test" / "anomalies.csv").exists():
        synthetic.write_dataset(root, n_train=args.n_train, n_test=N_TEST, anomaly_share=ANOMALY_SHARE, seed=seed,
                                force=True)
    train = features_for(scan(root / "train", "train"), feat_dir / f"{name}_train.parquet", backbone)
    test = features_for(scan(root / "test", "test"), feat_dir / f"{name}_test.parquet", backbone)
    kinds = known_anomaly_kinds(test, read_known_anomalies(root / "test")).to_numpy()
    t = time.perf_counter()
    X_train, X_test = feature_matrix(train), feature_matrix(test)
    qc_train, qc_test = qc_for(train["path"]), qc_for(test["path"])
    Z_train, Z_test = pca_embedding(X_train, X_test, args.seed)
    km = fit_kmeans(Z_train, K, random_state=args.seed)
    rows = []
    for cand, terms in NOVELTY_CANDIDATES.items():
        model = fit_anomaly_model(Z_train, km, X_train, qc_train, train["path"].to_numpy(), novelty_terms=terms,
                                  random_state=args.seed)
        s = score_anomalies(model, Z_test, X_test, qc_test)
        score = s["anomaly_score"].to_numpy()
        row = {"seed": seed, "candidate": cand, "n_anomaly": int((kinds != "").sum()),
               "n_normal": int((kinds == "").sum()), "all": roc_auc(kinds != "", score)}
        normal = kinds == ""
        for kind in synthetic.ANOMALY_KINDS:
            sel = normal | (kinds == kind)
            row[kind] = roc_auc(kinds[sel] == kind, score[sel])
            row[f"flagged:{kind}"] = float((s["kind"][kinds == kind] != "normal").mean()) if (kinds == kind).any() \
                else float("nan")
        row["flagged:normal"] = float((s["kind"][normal] != "normal").mean())
        row["artefact_kind_ok"] = float(np.mean(
            [(s["kind"][kinds == k] == "artefact").mean() for k in KIND_NAMES if (kinds == k).any()]))
        rows.append(row)
    print(f"  seed {seed}: {len(train)} train, {len(test)} test, {(kinds != '').sum()} anomalies; "
          f"scored {len(NOVELTY_CANDIDATES)} candidates in {time.perf_counter() - t:.0f} s")
    return rows


# --------------------------------------------------------------------------- real F3
def loco_rows(X, labels, paths, qc_all, held_out, seed) -> list[dict]:
    from seis_assets.core.anomaly import NoveltyScorer
    from seis_assets.core.anomaly_evaluation import roc_auc
    from seis_assets.core.qc import fit_qc

    fit_idx, eval_idx = [], []
    for cls in sorted(set(labels) - {held_out}):
        idx = np.flatnonzero(labels == cls)
        n_eval = int(round(0.2 * len(idx)))
        eval_idx.append(idx[-n_eval:]), fit_idx.append(idx[:-n_eval])
    fit_idx, eval_idx = np.concatenate(fit_idx), np.concatenate(eval_idx)
    anom_idx = np.flatnonzero(labels == held_out)
    ev = np.r_[eval_idx, anom_idx]
    y = np.r_[np.zeros(len(eval_idx), bool), np.ones(len(anom_idx), bool)]
    k = len(set(labels)) - 1
    qc = fit_qc(qc_all.iloc[fit_idx].reset_index(drop=True))
    qc_fp = float(qc.score(qc_all.iloc[eval_idx].reset_index(drop=True))["qc_artefact"].mean())
    rows = []
    for cand, terms in NOVELTY_CANDIDATES.items():
        nov = NoveltyScorer(X[fit_idx], n_clusters=k, terms=terms, random_state=seed)
        s = nov.score(X[ev])["novelty_score"].to_numpy()
        thr = float(np.quantile(nov.training_scores_["novelty_score"], 0.99))
        rows.append({"held_out": held_out, "seed": seed, "candidate": cand, "auc": roc_auc(y, s),
                     "novel_flagged_heldout": float((s[y] > thr).mean()),
                     "novel_flagged_normal": float((s[~y] > thr).mean()), "qc_fp_normal": qc_fp,
                     "n_fit": len(fit_idx), "n_normal": len(eval_idx), "n_anomaly": len(anom_idx)})
    return rows


def real_section(args, backbone, feat_dir: Path) -> pd.DataFrame:
    from seis_assets.core.feature_table import feature_matrix

    table = features_for(scan(F3_ROOT, "train"), feat_dir / "f3_patches.parquet", backbone)
    table = table.sort_values(["category", "path"], kind="stable").reset_index(drop=True)
    X, labels = feature_matrix(table), table["category"].to_numpy(str)
    t = time.perf_counter()
    qc_all = qc_for(table["path"])
    print(f"  QC attributes of {len(table)} F3 patches in {time.perf_counter() - t:.0f} s")
    rows = []
    for seed in args.loco_seeds:
        for held_out in args.held_out:
            rows += loco_rows(X, labels, table["path"], qc_all, held_out, seed)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- output
def md_table(df: pd.DataFrame, cols=None) -> str:
    cols = list(cols or df.columns)

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df[cols].itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    from seis_assets.core.anomaly import DEFAULT_NOVELTY_TERMS
    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.synthetic import ANOMALY_KINDS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=100, help="generated train patches per class (default 100)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="generator seeds")
    ap.add_argument("--seed", type=int, default=42, help="random state of PCA / k-means, synthetic section")
    ap.add_argument("--loco-seeds", type=int, nargs="+", default=[42, 0, 1])
    ap.add_argument("--held-out", nargs="+", default=["fault", "chaotic", "other", "salt dome"])
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "seis_assets_bench_anomaly")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    backbone = load_backbone(args.backbone, device="cpu")
    ident = backbone.identity
    print(f"backbone: requested {ident['requested']!r}, used {ident['backbone']!r} ({ident['weights']}, dim "
          f"{ident['dim']}); fallback: {ident.get('fallback_reason') or 'none'}")
    feat_dir = args.cache_dir / "features" / _slug(f"{ident['backbone']}-{ident['weights']}")
    default = next(c for c, t in NOVELTY_CANDIDATES.items() if tuple(t) == tuple(DEFAULT_NOVELTY_TERMS))
    t0 = time.perf_counter()
    out = []
    line = {k: float("nan") for k in ("injected", *KIND_NAMES.values(), "loco_mean", "loco_min")}
    if not args.skip_synthetic:
        print("synthetic:")
        syn = pd.DataFrame([r for s in args.seeds for r in synthetic_run(args, backbone, feat_dir, s)])
        auc_cols = ["all", *ANOMALY_KINDS]
        flag_cols = [f"flagged:{k}" for k in ANOMALY_KINDS] + ["flagged:normal", "artefact_kind_ok"]
        mean = syn.groupby("candidate", sort=False)[auc_cols + flag_cols].mean().reset_index()
        out += [
            f"### Synthetic injected anomalies: ROC AUC of the combined rank (`anomaly_score`), mean over seeds "
            f"{args.seeds} (n_train={args.n_train}/class, n_test={N_TEST}/class, anomaly_share={ANOMALY_SHARE}); "
            "rows = novelty candidates (QC part identical)",
            md_table(mean, ["candidate", *auc_cols]),
            "### Synthetic: share flagged (kind != normal) per injected kind and among normal test patches; "
            "`artefact_kind_ok` = share of the four artefact kinds labelled `artefact`",
            md_table(mean, ["candidate", *flag_cols]),
            f"### Synthetic, default candidate `{default}`, per seed",
            md_table(syn[syn["candidate"] == default], ["seed", "n_anomaly", "n_normal", *auc_cols]),
        ]
        d = mean.set_index("candidate").loc[default]
        line["injected"] = d["all"]
        line.update({KIND_NAMES[k]: d[k] for k in KIND_NAMES})
    if not args.skip_real and F3_ROOT.is_dir():
        print("real F3:")
        loco = real_section(args, backbone, feat_dir)
        by = loco.groupby(["candidate", "held_out"], sort=False)["auc"].mean().unstack("held_out")
        by["mean over classes"] = by.mean(axis=1)
        by["worst class"] = by[args.held_out].min(axis=1)
        worst_seed = loco.groupby(["candidate", "held_out"], sort=False)["auc"].min().unstack("held_out")
        flags = loco.groupby(["candidate"], sort=False)[["novel_flagged_heldout", "novel_flagged_normal"]].mean()
        fp = loco.groupby("held_out", sort=False)["qc_fp_normal"].first()
        out += [
            f"### Real F3, leave one class out: ROC AUC of `novelty_score`, mean over random states "
            f"{args.loco_seeds} (split tail, 20 % of each remaining class as normals)",
            md_table(by.reset_index(), ["candidate", *args.held_out, "mean over classes", "worst class"]),
            "### Real F3, leave one class out: worst random state per class",
            md_table(worst_seed.reset_index(), ["candidate", *args.held_out]),
            "### Real F3: share above the novelty threshold (training 99th percentile), held-out class and normals",
            md_table(flags.reset_index()),
            "### Real F3: QC false-positive rate on the normal evaluation patches (threshold fitted on the fit part)",
            md_table(fp.reset_index()),
        ]
        line["loco_mean"] = by.loc[default, "mean over classes"]
        line["loco_min"] = by.loc[default, "worst class"]
    print()
    print(f"backbone used: {ident['backbone']} (requested {ident['requested']}); default novelty terms "
          f"{DEFAULT_NOVELTY_TERMS} = `{default}`; total {time.perf_counter() - t0:.0f} s")
    print()
    print("\n\n".join(out))
    print()
    names = {k: f"{k}_auc" for k in ("injected", *KIND_NAMES.values())}
    names.update(loco_mean="loco_auc_mean", loco_min="loco_auc_min")
    print("anomaly " + " ".join(f"{names[k]}={v:.3f}" for k, v in line.items()))


if __name__ == "__main__":
    main()
