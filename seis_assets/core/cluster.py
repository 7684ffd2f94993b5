"""K-means on the embedding, the k sweep, and cluster -> label mappings.

Cluster ids are plain ``int`` (0 .. k-1); labels are ``str`` class names.

Two mappings from clusters to class names, both computed on the training
contingency table (rows clusters, columns labels):

* :func:`majority_mapping` - each cluster takes its most frequent label. Several
  clusters may share a label and some labels may get none. Ties go to the label
  that sorts first, so the result never depends on input order.
* :func:`hungarian_mapping` - an optimal one-to-one assignment that maximises
  the number of correctly mapped training samples
  (``scipy.optimize.linear_sum_assignment`` on the contingency table). When
  ``k > n_labels`` only ``n_labels`` clusters can be matched; the remaining
  clusters fall back to their majority label (so every cluster gets a name and
  predictions stay defined). When ``k < n_labels`` some labels get no cluster
  and are never predicted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score

__all__ = [
    "DEFAULT_K",
    "DEFAULT_KS",
    "DEFAULT_N_INIT",
    "DEFAULT_RANDOM_STATE",
    "DEFAULT_SILHOUETTE_SAMPLE",
    "apply_mapping",
    "best_k",
    "choose_k",
    "clustering_stability",
    "contingency_table",
    "fit_kmeans",
    "hungarian_mapping",
    "k_sweep",
    "majority_mapping",
    "sampled_silhouette",
]

DEFAULT_K = 4
DEFAULT_KS = tuple(range(2, 13))
DEFAULT_N_INIT = 10
DEFAULT_RANDOM_STATE = 42
#: Silhouette is O(n^2); above this many samples it is computed on a seeded sample.
DEFAULT_SILHOUETTE_SAMPLE = 5000

SWEEP_COLUMNS = ["k", "silhouette", "davies_bouldin", "inertia"]
#: KMeans runs compared by :func:`clustering_stability` (0 in :func:`k_sweep`: no stability column).
DEFAULT_STABILITY_RUNS = 5
#: Share of the samples each stability run is fitted on.
STABILITY_SUBSAMPLE = 0.8
#: ``k = auto``: a k is reproducible when its stability (mean ARI between runs) is at least this.
STABLE_ARI = 0.95
#: ``k = auto``: ... and separated when its silhouette is at least this share of the sweep's best.
MIN_SILHOUETTE_SHARE = 0.5


def _check_Z(Z) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D embedding (n_samples, n_dims), got shape {Z.shape}")
    if not np.isfinite(Z).all():
        raise ValueError("embedding contains NaN or Inf")
    return Z


def fit_kmeans(
    Z,
    k: int = DEFAULT_K,
    *,
    n_init: int = DEFAULT_N_INIT,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> KMeans:
    """Fit k-means on an embedding.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
    k : int, default 4
        Number of clusters, ``1 <= k <= n_samples``.
    n_init : int, default 10
        Number of k-means++ restarts (explicit, not sklearn's "auto").
    random_state : int or None, default 42

    Returns
    -------
    kmeans : sklearn.cluster.KMeans
        Fitted; ``kmeans.labels_`` (n_samples,) int32 cluster ids,
        ``kmeans.cluster_centers_`` (k, n_dims), ``kmeans.predict(Z_new)``.
    """
    Z = _check_Z(Z)
    if not 1 <= k <= Z.shape[0]:
        raise ValueError(f"k must be between 1 and n_samples={Z.shape[0]}, got {k}")
    return KMeans(n_clusters=int(k), n_init=int(n_init), random_state=random_state).fit(Z)


def k_sweep(
    Z,
    ks: Iterable[int] = DEFAULT_KS,
    *,
    n_init: int = DEFAULT_N_INIT,
    random_state: int | None = DEFAULT_RANDOM_STATE,
    silhouette_sample: int | None = DEFAULT_SILHOUETTE_SAMPLE,
    stability_runs: int = 0,
) -> pd.DataFrame:
    """Fit k-means for each k and report internal quality scores.

    Values of k with ``k < 2`` or ``k >= n_samples`` are skipped (silhouette and
    Davies-Bouldin are undefined there).

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_dims)
    ks : iterable of int, default 2..12
    n_init, random_state : see :func:`fit_kmeans`
    silhouette_sample : int or None, default 5000
        Silhouette on a seeded random sample of this size when n_samples is larger
        (None: always exact).
    stability_runs : int, default 0
        When >= 2, a ``stability`` column: :func:`clustering_stability` with that many runs.

    Returns
    -------
    sweep : DataFrame with columns k (int), silhouette (higher is better),
        davies_bouldin (lower is better), inertia (within-cluster sum of squares);
        one row per evaluated k, sorted by k. Empty (same columns) if no k fits.
    """
    Z = _check_Z(Z)
    columns = SWEEP_COLUMNS + (["stability"] if stability_runs else [])
    rows = [
        _sweep_row(Z, k, n_init, random_state, silhouette_sample, stability_runs)
        for k in sorted({int(k) for k in ks})
        if 2 <= k < Z.shape[0]
    ]
    return pd.DataFrame(rows, columns=columns).astype({"k": "int64"})


def _sweep_row(Z: np.ndarray, k: int, n_init: int, random_state, silhouette_sample, stability_runs: int) -> dict:
    """One row of :func:`k_sweep`: k-means with ``k`` clusters and its scores."""
    km = fit_kmeans(Z, k, n_init=n_init, random_state=random_state)
    labels = km.labels_
    if len(np.unique(labels)) < 2:  # degenerate (duplicate points)
        sil, db = float("nan"), float("nan")
    else:
        sil = sampled_silhouette(Z, labels, silhouette_sample, random_state)
        db = float(davies_bouldin_score(Z, labels))
    row = {"k": k, "silhouette": sil, "davies_bouldin": db, "inertia": float(km.inertia_)}
    if stability_runs:
        row["stability"] = clustering_stability(Z, k, runs=stability_runs, random_state=random_state)
    return row


def sampled_silhouette(Z, labels, silhouette_sample: int | None, random_state: int | None) -> float:
    """Silhouette of ``labels`` in ``Z``, on a seeded random sample of ``silhouette_sample`` rows when there are more
    (it is O(n^2)); ``silhouette_sample`` None or 0: always exact."""
    n = len(Z)
    sample = silhouette_sample if silhouette_sample and n > silhouette_sample else None
    return float(silhouette_score(Z, labels, sample_size=sample, random_state=random_state))


def clustering_stability(
    Z,
    k: int,
    *,
    runs: int = DEFAULT_STABILITY_RUNS,
    subsample: float = STABILITY_SUBSAMPLE,
    random_state: int | None = DEFAULT_RANDOM_STATE,
) -> float:
    """How reproducible a k-means clustering with ``k`` clusters is: the mean adjusted Rand index between the
    labellings of ``runs`` runs.

    Each run draws its own seeded subsample (``subsample`` of the points), fits k-means with a single k-means++
    initialisation and its own seed (so both the data and the start vary), and labels *all* points with
    ``predict``; the runs are compared pairwise on all points. 1.0: every run finds the same partition; near 0:
    the partition is an accident of the seed.

    Returns
    -------
    float in [-0.5, 1]; NaN when ``runs < 2`` or ``k`` is not between 2 and n_samples - 1.
    """
    Z = _check_Z(Z)
    n = Z.shape[0]
    if runs < 2 or not 2 <= k < n:
        return float("nan")
    rng = np.random.default_rng(random_state)
    size = max(k + 1, int(round(subsample * n)))
    base = 0 if random_state is None else int(random_state)
    labellings = []
    for r in range(runs):
        idx = rng.choice(n, size=min(size, n), replace=False)
        km = KMeans(n_clusters=int(k), n_init=1, random_state=base + 1 + r).fit(Z[idx])
        labellings.append(km.predict(Z))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(labellings, 2)]))


def choose_k(setting: str | int, sweep: pd.DataFrame | None, n_categories: int | None) -> tuple[int, str]:
    """The number of clusters to fit, and the rule that gave it (for metadata and metrics.json).

    Parameters
    ----------
    setting : ``"default"`` (or ``"0"``/``0``/``""``): the number of categories when the data are labelled
        (``n_categories`` given), else ``auto``; ``"auto"``: from the k sweep; ``"categories"``: the number of
        categories (an error on unlabelled data); a positive integer (or its text): that k.
    sweep : the :func:`k_sweep` table (with a ``stability`` column for the full auto rule); needed for ``auto``
    n_categories : number of training categories, or None on unlabelled data

    The ``auto`` rule (:data:`STABLE_ARI`, :data:`MIN_SILHOUETTE_SHARE`): the **largest k that is reproducible**
    (stability >= 0.95: runs with other seeds and subsamples find the same partition) **and still separated**
    (silhouette at least half the sweep's best). The finest partition the data support, not the coarsest:
    silhouette alone (and silhouette x stability) prefers k = 2 whenever two super-groups dominate, e.g. on the
    demo set of 4 classes (benchmarks/README.md, "k = auto on the F3 patches and the demo set"), while a split of a
    real group is stable and a split of one compact group is not. When no k passes, or the sweep has no stability
    column, the k with the largest ``silhouette * stability`` (silhouette alone without stability); ties to the
    smaller k.
    """
    text = str(setting).strip().lower()
    if text in ("", "0", "default"):
        text = "categories" if n_categories else "auto"
    if text == "categories":
        if not n_categories:
            raise ValueError("k='categories' needs labelled data (labels: folders); use k='auto' or a number")
        return int(n_categories), "number of categories"
    if text == "auto":
        if sweep is None or sweep.empty:
            raise ValueError("k='auto' needs a k sweep with at least one k; raise k_sweep_max or add patches")
        silhouette = sweep["silhouette"].to_numpy(dtype=float)
        score, rule = silhouette, "auto: max silhouette"
        if "stability" in sweep and sweep["stability"].notna().any():
            stability = sweep["stability"].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):
                ok = (stability >= STABLE_ARI) & (silhouette >= MIN_SILHOUETTE_SHARE * np.nanmax(silhouette))
            if ok.any():
                return int(sweep["k"].to_numpy()[ok].max()), "auto: largest stable k"
            score, rule = silhouette * stability, "auto: max silhouette x stability (no k stable)"
        if np.isnan(score).all():
            raise ValueError("k='auto': every k of the sweep has an undefined silhouette (duplicate points?)")
        return int(sweep["k"].iloc[int(np.nanargmax(score))]), rule
    try:
        k = int(text)
    except ValueError:
        raise ValueError(f"k must be 'default', 'auto', 'categories' or a positive integer, got {setting!r}") from None
    if k < 1:
        raise ValueError(f"k must be positive, got {setting!r}")
    return k, "set"


def best_k(sweep: pd.DataFrame, by: str = "silhouette") -> int:
    """The k with the best score in a :func:`k_sweep` table.

    ``by="silhouette"`` takes the maximum, ``by="davies_bouldin"`` the minimum;
    ties go to the smaller k.
    """
    if sweep.empty:
        raise ValueError("empty k sweep")
    if by == "silhouette":
        idx = sweep[by].to_numpy()
        i = int(np.nanargmax(idx))
    elif by == "davies_bouldin":
        i = int(np.nanargmin(sweep[by].to_numpy()))
    else:
        raise ValueError(f"by must be 'silhouette' or 'davies_bouldin', got {by!r}")
    return int(sweep["k"].iloc[i])


def _check_pair(clusters, labels) -> tuple[np.ndarray, np.ndarray]:
    clusters = np.asarray(clusters)
    labels = np.asarray(labels)
    if clusters.ndim != 1 or labels.ndim != 1 or len(clusters) != len(labels):
        raise ValueError(
            f"clusters and labels must be 1-D of equal length, got {clusters.shape} and {labels.shape}"
        )
    if len(clusters) == 0:
        raise ValueError("clusters and labels are empty")
    if not np.issubdtype(clusters.dtype, np.integer):
        if not np.all(np.equal(np.mod(clusters.astype(float), 1), 0)):
            raise ValueError("cluster ids must be integers")
        clusters = clusters.astype(np.int64)
    return clusters.astype(np.int64), labels.astype(str)


def contingency_table(clusters, labels) -> pd.DataFrame:
    """Counts of each (cluster, label) pair.

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    labels : array-like of str, shape (n_samples,)

    Returns
    -------
    table : DataFrame, index = sorted cluster ids (int, name "cluster"),
        columns = sorted labels (name "label"), int64 counts.
    """
    clusters, labels = _check_pair(clusters, labels)
    table = pd.crosstab(pd.Series(clusters, name="cluster"), pd.Series(labels, name="label"))
    return table.sort_index(axis=0).sort_index(axis=1).astype("int64")


def majority_mapping(clusters, labels) -> dict[int, str]:
    """Map each cluster to its most frequent label.

    Ties are broken by label name (the label that sorts first wins). ``clusters`` and ``labels``: as for
    :func:`contingency_table`.

    Returns
    -------
    mapping : dict {cluster id (int): label (str)} for every cluster present.
    """
    table = contingency_table(clusters, labels)
    counts = table.to_numpy()
    cols = list(table.columns)
    # argmax returns the first maximum; columns are sorted, so ties -> first label by name
    return {int(c): str(cols[int(np.argmax(counts[i]))]) for i, c in enumerate(table.index)}


def hungarian_mapping(clusters, labels) -> dict[int, str]:
    """Optimal one-to-one cluster -> label assignment (Hungarian algorithm).

    Maximises the number of training samples whose cluster maps to their own
    label, with each label used by at most one cluster. If there are more
    clusters than labels, the unmatched clusters take their majority label
    (see :func:`majority_mapping`); if fewer, some labels are never assigned. Parameters and result as
    :func:`majority_mapping`'s.
    """
    table = contingency_table(clusters, labels)
    rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
    mapping = {int(table.index[r]): str(table.columns[c]) for r, c in zip(rows, cols)}
    fallback = majority_mapping(clusters, labels)
    for c in table.index:
        mapping.setdefault(int(c), fallback[int(c)])
    return dict(sorted(mapping.items()))


def apply_mapping(clusters, mapping: Mapping[int, str]) -> np.ndarray:
    """Translate cluster ids to class names.

    Parameters
    ----------
    clusters : array-like of int, shape (n_samples,)
    mapping : dict {cluster id: label}

    Returns
    -------
    predicted : ndarray of str, shape (n_samples,)

    Raises
    ------
    KeyError
        If a cluster id has no entry in ``mapping`` (lists the missing ids).
    """
    clusters = np.asarray(clusters).astype(np.int64).ravel()
    lookup = {int(k): str(v) for k, v in mapping.items()}
    missing = sorted(set(np.unique(clusters).tolist()) - set(lookup))
    if missing:
        raise KeyError(f"cluster ids without a mapping: {missing}; mapping covers {sorted(lookup)}")
    if len(clusters) == 0:
        return np.array([], dtype=str)
    return np.array([lookup[int(c)] for c in clusters], dtype=str)
