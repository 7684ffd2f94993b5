"""Anomaly detector benchmark: ROC AUC of ``core.anomaly`` scores on injected and on unseen-class anomalies.

Usage::

    .venv/bin/python benchmarks/bench_anomaly.py        # both sections: ~5 min cold, ~1.5 min cached (2 cores)
    .venv/bin/python benchmarks/bench_anomaly.py --skip-real --seeds 0
    .venv/bin/python benchmarks/bench_anomaly.py --skip-synthetic --loco-seeds 42

Sections
--------
synthetic   ``synthetic.write_dataset(n_train=--n-train, n_test=40, anomaly_share=0.15, seed=s)`` at the default
            difficulty for each ``--seeds`` s; index with ``matfiles.scan_category``; features with
            ``load_backbone(--backbone)`` + ``extract_features``; 50-d UMAP (``reduce.fit_reducer``) fitted on train
            only, test embedded with ``.transform``; ``cluster.fit_kmeans(k=4)``; ``anomaly.fit_anomaly_scorer``.
            ROC AUC of the test patches listed in ``<root>/test/anomalies.csv`` against the other test patches,
            overall and per kind (the kind's anomalies against all normal test patches).
real F3     ``anomaly.leave_one_class_out_auc`` on the 1000 real F3 patches in /work/shared/data/f3_patches (read
            in place), 50-d UMAP as ``embed``, ``split="tail"`` (neighbouring patches overlap), one row per held-out
            class and ``--loco-seeds`` random state.

The scorer is fitted with the backbone features (``X_train``), so its ``score`` column is the default three-term
mean ``(centroid_z + knn_z + feature_knn_z) / 3``; ``mean`` is the previous default ``(centroid_z + knn_z) / 2``.
Both sections also score alternative combinations of the two UMAP robust z-scores (``centroid_z``, ``knn_z``):
each one alone, their mean, their max, and a weighted mean. For the
leave-one-class-out runs the embedding and k-means fitted inside ``leave_one_class_out_auc`` are recovered through
the ``embed`` callable (k-means is refitted with the same seed, and the default combination is checked against
the function's own ``auc``), so every column comes from the same fit. One diagnostic column, ``knn_pca50``, is not
a combination: the kNN distance in a 50-d PCA of the backbone features (fitted on the same training rows), to show
how much the UMAP step itself costs.

Feature-space candidates (``FEATURE_SPACES`` x ``FEATURE_COMBINATIONS``, printed as separate tables with candidates
as rows): the robust kNN z in a PCA of the features (``pca50`` plain, ``pcaw50`` whitened, ``std_pca50``
standardised features, ``pca20``) alone (``f:``), as a third term beside centroid_z and knn_z (``mean3:``), or beside
knn_z only (``mean2:``). Every run checks that the scorer's ``score`` AUC equals ``DEFAULT_CANDIDATE``'s.

Generated sets and feature tables are cached in ``--cache-dir`` (default ``$TMPDIR/seis_assets_bench_anomaly``),
features keyed by the backbone actually used (``extract_features(previous_path=...)`` reuses rows by sha256).

The last line is ``anomaly backbone=<b> synthetic_auc=<x> f3_loco_fault_auc=<y>`` (default ``score``; x = mean
over seeds, y = mean over loco seeds).
"""

from __future__ import annotations

import argparse
import functools
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

F3_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "f3_patches"
N_TEST = 40
ANOMALY_SHARE = 0.15
K = 4
N_COMPONENTS = 50

#: name -> f(centroid_z, knn_z); "score" is whatever core.anomaly puts in its ``score`` column.
COMBINATIONS = {
    "centroid_z": lambda cz, kz: cz,
    "knn": lambda cz, kz: kz,  # knn_z is a monotone function of knn: same AUC
    "mean": lambda cz, kz: (cz + kz) / 2,
    "max": lambda cz, kz: np.maximum(cz, kz),
    "0.25cz+0.75knn": lambda cz, kz: 0.25 * cz + 0.75 * kz,
}
#: diagnostic column: kNN distance in PCA-50 of the features, without UMAP (see knn_in_feature_space)
KNN_FEAT = "knn_pca50"

#: feature-space variants for the candidate scores: name -> (standardise features first, whiten, n_components).
#: fz = robust z of the kNN distance in that PCA space (median/MAD of the training leave-self-out distances).
FEATURE_SPACES = {
    "pca50": (False, False, 50),
    "pcaw50": (False, True, 50),
    "std_pca50": (True, False, 50),
    "pca20": (False, False, 20),
}
#: name -> f(centroid_z, knn_z, fz): candidate scores that add a feature-space kNN term (fz) to the UMAP scores.
FEATURE_COMBINATIONS = {
    "f": lambda cz, kz, fz: fz,
    "mean3": lambda cz, kz, fz: (cz + kz + fz) / 3,
    "mean2": lambda cz, kz, fz: (kz + fz) / 2,
}
CAND_COLS = [f"{c}:{v}" for v in FEATURE_SPACES for c in FEATURE_COMBINATIONS]
#: what ``core.anomaly``'s ``score`` is when the scorer is fitted with features (checked on every run)
DEFAULT_CANDIDATE = "mean3:pca50"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def features_for(index: pd.DataFrame, out: Path, backbone) -> pd.DataFrame:
    """Extract (or reuse) features for ``index`` into ``out``; rows sorted by path."""
    from seis_assets.core.features import extract_features

    out.parent.mkdir(parents=True, exist_ok=True)
    rep = extract_features(index, out, backbone, previous_path=out if out.exists() else None)
    rate = f"{rep.img_per_s:.0f} img/s" if rep.n_extracted else "cached"
    print(f"  features {out.name}: {rep.n_rows} rows, {rep.n_extracted} extracted, {rep.n_reused} reused ({rate})")
    if rep.n_dropped:
        raise RuntimeError(f"{rep.n_dropped} files failed to load: {rep.failures.head()}")
    return pd.read_parquet(out).sort_values("path", kind="stable").reset_index(drop=True)


def scan(root: Path, split: str) -> pd.DataFrame:
    from seis_assets.core.matfiles import list_categories, scan_category

    frames = []
    for cat in list_categories(root):
        index, quarantine = scan_category(root, cat, split)
        if len(quarantine):
            raise RuntimeError(f"quarantined files in {root / cat}: {quarantine['reason'].tolist()[:3]}")
        frames.append(index)
    return pd.concat(frames, ignore_index=True)


def combination_aucs(is_anom: np.ndarray, scores: pd.DataFrame, knn_feat=None, feat_z: dict | None = None) -> dict:
    """AUCs of ``score``, the UMAP combinations, the PCA-50 kNN diagnostic and the feature-space candidates.

    ``feat_z``: variant name -> robust kNN z in that feature space, aligned with ``scores``.
    """
    from seis_assets.core.anomaly import roc_auc

    cz, kz = scores["centroid_z"].to_numpy(), scores["knn_z"].to_numpy()
    out = {"score": roc_auc(is_anom, scores["score"])}
    out.update({name: roc_auc(is_anom, f(cz, kz)) for name, f in COMBINATIONS.items()})
    out[KNN_FEAT] = float("nan") if knn_feat is None else roc_auc(is_anom, knn_feat)
    for v, fz in (feat_z or {}).items():
        out.update({f"{c}:{v}": roc_auc(is_anom, f(cz, kz, fz)) for c, f in FEATURE_COMBINATIONS.items()})
    return out


def feature_knn_z(X_fit: np.ndarray, X_eval: np.ndarray, seed: int) -> dict:
    """Robust kNN z (n_neighbors 10, training leave-self-out median/MAD) of ``X_eval`` in each FEATURE_SPACES variant.

    Same definition as ``AnomalyScorer.knn_z``, computed by a scorer fitted on the PCA-space training rows (its
    centroid part is unused, so one dummy centroid is passed).
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from seis_assets.core.anomaly import fit_anomaly_scorer

    out = {}
    for v, (standardize, whiten, n) in FEATURE_SPACES.items():
        A, B = np.asarray(X_fit, np.float64), np.asarray(X_eval, np.float64)
        if standardize:
            sc = StandardScaler().fit(A)
            A, B = sc.transform(A), sc.transform(B)
        pca = PCA(n_components=min(n, *A.shape), whiten=whiten, random_state=seed).fit(A)
        P_fit, P_eval = pca.transform(A), pca.transform(B)
        scorer = fit_anomaly_scorer(P_fit, P_fit.mean(axis=0, keepdims=True))
        out[v] = scorer.score(P_eval)["knn_z"].to_numpy()
    return out


def knn_in_feature_space(X_fit: np.ndarray, X_eval: np.ndarray, seed: int) -> np.ndarray:
    """Diagnostic, not a candidate default: kNN distance in a 50-d PCA of the backbone features (no UMAP)."""
    from sklearn.decomposition import PCA

    from seis_assets.core.anomaly import fit_anomaly_scorer
    from seis_assets.core.cluster import fit_kmeans

    pca = PCA(n_components=min(N_COMPONENTS, *X_fit.shape), random_state=seed).fit(X_fit)
    P_fit, P_eval = pca.transform(X_fit), pca.transform(X_eval)
    return fit_anomaly_scorer(P_fit, fit_kmeans(P_fit, K, random_state=seed)).score(P_eval)["knn"].to_numpy()


# --------------------------------------------------------------------------- synthetic
def synthetic_run(args, backbone, feat_dir: Path, seed: int) -> tuple[dict, pd.DataFrame]:
    from seis_assets.core import synthetic
    from seis_assets.core.anomaly import fit_anomaly_scorer
    from seis_assets.core.cluster import fit_kmeans
    from seis_assets.core.dataset import known_anomaly_kinds, read_known_anomalies
    from seis_assets.core.features import feature_matrix
    from seis_assets.core.reduce import fit_reducer

    name = f"synth_n{args.n_train}_t{N_TEST}_a{ANOMALY_SHARE}_d{synthetic.DEFAULT_DIFFICULTY}_s{seed}"
    root = args.cache_dir / "data" / name
    if not (root / "test" / "anomalies.csv").exists():
        t = time.perf_counter()
        synthetic.write_dataset(root, n_train=args.n_train, n_test=N_TEST, anomaly_share=ANOMALY_SHARE, seed=seed,
                                force=True)
        print(f"  wrote {root} in {time.perf_counter() - t:.0f} s")
    train = features_for(scan(root / "train", "train"), feat_dir / f"{name}_train.parquet", backbone)
    test = features_for(scan(root / "test", "test"), feat_dir / f"{name}_test.parquet", backbone)
    kinds = known_anomaly_kinds(test, read_known_anomalies(root / "test")).to_numpy()
    n_listed = len(read_known_anomalies(root / "test"))
    if (kinds != "").sum() != n_listed:
        raise RuntimeError(f"{n_listed} anomalies listed but {(kinds != '').sum()} matched test paths")

    t = time.perf_counter()
    X_train, X_test = feature_matrix(train), feature_matrix(test)
    reducer, Z_train = fit_reducer(X_train, N_COMPONENTS, random_state=args.umap_seed)
    Z_test = reducer.transform(X_test)
    knn_feat = knn_in_feature_space(X_train, X_test, args.umap_seed)
    feat_z = feature_knn_z(X_train, X_test, args.umap_seed)
    km = fit_kmeans(Z_train, K, random_state=args.umap_seed)
    scores = fit_anomaly_scorer(Z_train, km, X_train=X_train, random_state=args.umap_seed).score(Z_test, X_test)
    print(f"  seed {seed}: UMAP + k-means + scores in {time.perf_counter() - t:.0f} s; "
          f"{len(train)} train, {len(test)} test, {n_listed} anomalies")

    row = {"seed": seed, "n_anomaly": int((kinds != "").sum()), "n_normal": int((kinds == "").sum())}
    row.update(combination_aucs(kinds != "", scores, knn_feat, feat_z))
    _check_default(row)
    per_kind = []
    normal = kinds == ""
    for kind in synthetic.ANOMALY_KINDS:
        sel = normal | (kinds == kind)
        r = {"seed": seed, "kind": kind, "n": int((kinds == kind).sum())}
        r.update(combination_aucs(kinds[sel] == kind, scores[sel].reset_index(drop=True), knn_feat[sel],
                                  {v: z[sel] for v, z in feat_z.items()}))
        per_kind.append(r)
    return row, pd.DataFrame(per_kind)


# --------------------------------------------------------------------------- real F3
class _Recorder:
    """Wraps a fitted reducer so the rows it embeds inside ``leave_one_class_out_auc`` are kept."""

    def __init__(self, model, X_fit, Z_fit, log: dict):
        self.model, self.log = model, log
        log["X_fit"], log["Z_fit"] = X_fit, Z_fit

    def transform(self, X):
        Z = self.model.transform(X)
        self.log["X_eval"], self.log["Z_eval"] = X, Z
        return Z


def loco_run(X: np.ndarray, labels: np.ndarray, held_out: str, seed: int) -> dict:
    from seis_assets.core.anomaly import fit_anomaly_scorer, leave_one_class_out_auc
    from seis_assets.core.cluster import fit_kmeans
    from seis_assets.core.reduce import fit_reducer

    log: dict = {}
    base = functools.partial(fit_reducer, n_components=N_COMPONENTS, random_state=seed)

    def embed(X_fit):
        model, Z_fit = base(X_fit)
        return _Recorder(model, X_fit, Z_fit, log), Z_fit

    res = leave_one_class_out_auc(X, labels, held_out, embed=embed, split="tail", random_state=seed)
    # same fit as inside leave_one_class_out_auc: same Z, same k-means seed
    km = fit_kmeans(log["Z_fit"], res["k"], random_state=seed)
    scores = fit_anomaly_scorer(log["Z_fit"], km, X_train=log["X_fit"], random_state=seed).score(
        log["Z_eval"], log["X_eval"])
    is_anom = np.r_[np.zeros(res["n_normal"], bool), np.ones(res["n_anomaly"], bool)]
    row = {"held_out": held_out, "seed": seed, "n_fit": res["n_fit"], "n_normal": res["n_normal"],
           "n_anomaly": res["n_anomaly"]}
    row.update(combination_aucs(is_anom, scores, knn_in_feature_space(log["X_fit"], log["X_eval"], seed),
                                feature_knn_z(log["X_fit"], log["X_eval"], seed)))
    for ours, theirs in (("score", "auc"), ("centroid_z", "auc_centroid_z"), ("knn", "auc_knn"),
                         (KNN_FEAT, "auc_feature_knn")):
        if not np.isclose(row[ours], res[theirs]):
            raise RuntimeError(f"recomputed {ours} AUC {row[ours]:.4f} != leave_one_class_out_auc {res[theirs]:.4f}")
    _check_default(row)
    return row


def _check_default(row: dict) -> None:
    """The scorer's own ``score`` (fitted with features) must be the candidate recomputed here."""
    if not np.isclose(row["score"], row[DEFAULT_CANDIDATE]):
        raise RuntimeError(f"scorer's score AUC {row['score']:.4f} != {DEFAULT_CANDIDATE} {row[DEFAULT_CANDIDATE]:.4f}")


def real_section(args, backbone, feat_dir: Path) -> pd.DataFrame:
    from seis_assets.core.features import feature_matrix

    table = features_for(scan(F3_ROOT, "train"), feat_dir / "f3_patches.parquet", backbone)
    # input order = class, then file name: the tail split keeps the last 20 % of each class as normals
    table = table.sort_values(["category", "path"], kind="stable").reset_index(drop=True)
    X, labels = feature_matrix(table), table["category"].to_numpy(str)
    rows = []
    for seed in args.loco_seeds:
        for held_out in args.held_out:
            t = time.perf_counter()
            rows.append(loco_run(X, labels, held_out, seed))
            print(f"  loco held_out={held_out!r} seed={seed}: score AUC {rows[-1]['score']:.3f} "
                  f"({time.perf_counter() - t:.0f} s)")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- output
UMAP_COLS = ["score", *COMBINATIONS, KNN_FEAT]
AUC_COLS = [*UMAP_COLS, *CAND_COLS]


def candidate_table(df: pd.DataFrame, key: str, cols: list[str]) -> str:
    """Candidates as rows (``score`` first), one column per ``key`` value: wide tables read badly."""
    t = df.set_index(key)[["mean", "score", *CAND_COLS]].T
    t.columns = [str(c).replace("*", "") for c in t.columns]
    t = t.reset_index().rename(columns={"index": "candidate"})
    names = {"mean": "mean (previous default)", "score": f"score (scorer default = {DEFAULT_CANDIDATE})"}
    t["candidate"] = [names.get(c, c) for c in t["candidate"]]
    return md_table(t, ["candidate", *t.columns[1:]])


def md_table(df: pd.DataFrame, cols: list[str]) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df[cols].itertuples(index=False)]
    return "\n".join(lines)


def with_mean(df: pd.DataFrame, key: str, label: str = "mean") -> pd.DataFrame:
    mean = df[AUC_COLS].mean().to_dict()
    mean.update({c: "" for c in df.columns if c not in AUC_COLS})
    mean[key] = f"**{label}**"
    return pd.concat([df, pd.DataFrame([mean])], ignore_index=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=100, help="generated train patches per class (default 100)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="generator seeds (default 0 1 2 3 4)")
    ap.add_argument("--umap-seed", type=int, default=42, help="UMAP / k-means random state, synthetic section")
    ap.add_argument("--loco-seeds", type=int, nargs="+", default=[42, 0, 1],
                    help="UMAP / k-means random states for leave-one-class-out (default 42 0 1)")
    ap.add_argument("--held-out", nargs="+", default=["fault", "chaotic", "other", "salt dome"])
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "seis_assets_bench_anomaly")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from seis_assets.core.backbones import load_backbone

    backbone = load_backbone(args.backbone, device="cpu")
    ident = backbone.identity
    print(f"backbone: requested {ident['requested']!r}, used {ident['backbone']!r} ({ident['weights']}, dim "
          f"{ident['dim']}); fallback: {ident.get('fallback_reason') or 'none'}")
    feat_dir = args.cache_dir / "features" / _slug(f"{ident['backbone']}-{ident['weights']}")
    t0 = time.perf_counter()

    synth_auc = f3_fault = float("nan")
    out = []
    if not args.skip_synthetic:
        print("synthetic:")
        rows, kinds = zip(*(synthetic_run(args, backbone, feat_dir, s) for s in args.seeds))
        overall = with_mean(pd.DataFrame(rows), "seed")
        synth_auc = float(pd.DataFrame(rows)["score"].mean())
        per_kind = pd.concat(kinds, ignore_index=True)
        kind_mean = per_kind.groupby("kind", sort=False).agg({"n": "sum", **{c: "mean" for c in AUC_COLS}})
        out += [
            f"### Synthetic injected anomalies (n_train={args.n_train}/class, n_test={N_TEST}/class, "
            f"anomaly_share={ANOMALY_SHARE}, default difficulty): ROC AUC per generator seed",
            md_table(overall, ["seed", "n_anomaly", "n_normal", *UMAP_COLS]),
            f"### Synthetic, per anomaly kind (mean AUC over seeds {args.seeds}; n = anomalies of that kind, "
            "all seeds; negatives = all normal test patches)",
            md_table(kind_mean.reset_index(), ["kind", "n", *UMAP_COLS]),
            "### Synthetic, feature-space candidates (rows; `f:v` = robust kNN z in feature space v alone, "
            "`mean3:v` = (centroid_z + knn_z + f)/3, `mean2:v` = (knn_z + f)/2): AUC per seed, mean, per kind",
            candidate_table(pd.concat([overall, kind_mean.reset_index().rename(columns={"kind": "seed"})],
                                      ignore_index=True), "seed", CAND_COLS),
        ]
    if not args.skip_real and F3_ROOT.is_dir():
        print("real F3:")
        loco = real_section(args, backbone, feat_dir)
        by_class = loco.groupby("held_out", sort=False)[AUC_COLS].mean().reset_index()
        f3_fault = float(loco.loc[loco["held_out"] == "fault", "score"].mean())
        out += [
            "### Real F3, leave-one-class-out ROC AUC (split=\"tail\", eval_fraction=0.2, k=3), per UMAP seed",
            md_table(loco, ["held_out", "seed", "n_fit", "n_normal", "n_anomaly", *UMAP_COLS]),
            f"### Real F3, leave-one-class-out, mean over seeds {args.loco_seeds}",
            md_table(with_mean(by_class, "held_out", "mean over classes"), ["held_out", *UMAP_COLS]),
            f"### Real F3, feature-space candidates, mean over seeds {args.loco_seeds} (rows), per held-out class",
            candidate_table(with_mean(by_class, "held_out", "mean over classes"), "held_out", CAND_COLS),
            "### Real F3, feature-space candidates, min over seeds per held-out class",
            candidate_table(loco.groupby("held_out", sort=False)[AUC_COLS].min().reset_index(), "held_out",
                            CAND_COLS),
        ]
    elif not args.skip_real:
        print(f"real F3: skipped ({F3_ROOT} not found)")

    print()
    print(f"backbone used: {ident['backbone']} (requested {ident['requested']}); columns: score = the "
          f"scorer's `score` column (default, fitted with features = {DEFAULT_CANDIDATE}), then combinations of centroid_z and knn_z recomputed here; "
          f"total {time.perf_counter() - t0:.0f} s")
    print()
    print("\n\n".join(out))
    print()
    print(f"anomaly backbone={ident['backbone']} synthetic_auc={synth_auc:.3f} f3_loco_fault_auc={f3_fault:.3f}")


if __name__ == "__main__":
    main()
