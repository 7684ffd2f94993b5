"""Dimensionality reduction of patch features with UMAP (optionally after PCA).

One idea: turn an ``(n_samples, n_features)`` feature matrix into an
``(n_samples, n_components)`` embedding with a fitted, picklable reducer that can
also place new patches (``reducer.transform``).

Pipeline (each step optional except UMAP)::

    X --[StandardScaler]--> --[PCA(pca_components)]--> --[UMAP(n_components)]--> Z

Decisions
---------
* **No standardisation by default.** CNN features (ResNet / EfficientNet global
  pooled activations) share one scale; z-scoring each column inflates the many
  near-constant, near-zero ReLU columns into noise of the same weight as the
  informative ones. Hand-crafted attribute features (the ``texture`` backbone)
  mix units (degrees, coherence 0..1, wavenumbers), so pass ``standardize=True``
  for those.
* **Seeded by default, reproducible.** ``random_state=42`` gives identical
  output for identical input. umap-learn forces single-threaded execution when
  seeded. ``parallel=True`` trades exact reproducibility for speed: UMAP then
  runs on all cores without a seed (PCA stays seeded). Measured on 17,667 x 2048
  ResNet features: 58 s seeded single-threaded vs 10 s with ``pca_components=100``
  and ``parallel=True``.
* **Large inputs go PCA-first and parallel by themselves.** Above ``large_n``
  samples (:data:`LARGE_N` = 5,000 by default; ``large_n=0`` turns it off) the
  seeded single-threaded UMAP costs minutes (226 s on 17,668 x 1280 features on
  2 cores, issue 9), so ``fit_reducer`` runs PCA to :data:`LARGE_PCA_COMPONENTS`
  components first (unless ``pca_components`` was given) and UMAP unseeded on
  the thread budget (``engines.thread_budget``). This is logged and listed in
  ``settings_["adjustments"]``, and ``settings_["reproducible"]`` is False. Its
  cost in ARI on the real F3 patches (forced with ``large_n=1``) is in
  benchmarks/README.md.
* **Small inputs are adapted, never silently.** ``n_neighbors`` is lowered to
  ``n_samples - 1``; the spectral initialisation needs
  ``n_components < n_samples - 2`` and falls back to ``init="random"``;
  ``pca_components`` is capped at ``min(n_samples, n_features)``. Every change is
  logged as a warning and listed in ``reducer.settings_["adjustments"]`` so the
  caller can record it (e.g. in Dagster metadata).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

__all__ = [
    "DEFAULT_MIN_DIST",
    "DEFAULT_METRIC",
    "DEFAULT_N_COMPONENTS",
    "DEFAULT_N_NEIGHBORS",
    "DEFAULT_RANDOM_STATE",
    "Reducer",
    "fit_reducer",
    "BlockScaler",
]

DEFAULT_N_COMPONENTS = 50
DEFAULT_N_NEIGHBORS = 15
DEFAULT_MIN_DIST = 0.1
DEFAULT_METRIC = "euclidean"
DEFAULT_RANDOM_STATE = 42

#: Smallest input UMAP can embed (it needs at least 2 neighbours per point).
MIN_SAMPLES = 3
#: Above this many samples fit_reducer switches to PCA-first + parallel UMAP (see the module docstring).
LARGE_N = 5000
#: PCA components of the large-input path.
LARGE_PCA_COMPONENTS = 100

_log = logging.getLogger(__name__)


class BlockScaler:
    """Puts blocks of columns with different units on one footing: CNN features next to texture attributes.

    Each block is scaled on its own and divided by the square root of its width, so every block carries the same
    total variance whatever its width (1280 CNN columns against 56 attributes):

    - ``rms``: divided by one number, the root mean square of the block's column standard deviations on the fitting
      data (the CNN block: its columns share one scale, and per-column z-scores would blow up rare activations);
    - ``zscore``: each column z-scored (the texture attributes: degrees, ratios, wavenumbers, amplitudes).

    Measured (benchmarks/README.md, "Clustering quality"): this ``fusion-raw w=1`` weighting gave the best few-label
    ARI on the real F3 patches. ``blocks`` is a list of ``(start, stop, mode)``.
    """

    def __init__(self, blocks):
        self.blocks = [(int(a), int(b), str(m)) for a, b, m in blocks]
        for a, b, m in self.blocks:
            if m not in ("rms", "zscore") or not 0 <= a < b:
                raise ValueError(f"a block is (start, stop, 'rms' | 'zscore') with start < stop, got {(a, b, m)}")

    def fit(self, X: np.ndarray) -> "BlockScaler":
        X = np.asarray(X, dtype=np.float64)
        if self.blocks[-1][1] != X.shape[1]:
            raise ValueError(f"blocks end at column {self.blocks[-1][1]}, the matrix has {X.shape[1]}")
        self.params_ = []
        for a, b, mode in self.blocks:
            sd = X[:, a:b].std(axis=0)
            width = np.sqrt(b - a)
            if mode == "rms":
                self.params_.append((0.0, (float(np.sqrt(np.mean(sd**2))) or 1.0) * width))
            else:
                self.params_.append((X[:, a:b].mean(axis=0), np.where(sd > 0, sd, 1.0) * width))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        out = [(X[:, a:b] - shift) / scale for (a, b, _), (shift, scale) in zip(self.blocks, self.params_)]
        return np.hstack(out).astype(np.float32)


class Reducer:
    """A fitted ``[scaler] -> [PCA] -> UMAP`` chain. Build it with :func:`fit_reducer`.

    Attributes
    ----------
    scaler_ : StandardScaler or None
    pca_ : PCA or None
    umap_ : umap.UMAP
    settings_ : dict
        JSON-serialisable record of what was actually used (see :func:`fit_reducer`).
    n_features_in_ : int
    n_components : int
    """

    def __init__(self, scaler, pca, umap_model, settings: dict[str, Any]):
        self.scaler_ = scaler
        self.pca_ = pca
        self.umap_ = umap_model
        self.settings_ = settings
        self.n_features_in_ = int(settings["n_features_in"])
        self.n_components = int(settings["n_components"])

    @property
    def settings(self) -> dict[str, Any]:
        """Alias of ``settings_`` (what was actually used; JSON-serialisable)."""
        return self.settings_

    def _pre(self, X: np.ndarray) -> np.ndarray:
        X = _check_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"reducer was fitted on {self.n_features_in_} features, got {X.shape[1]}: "
                "features from a different backbone? Refit the reducer."
            )
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        if self.pca_ is not None:
            X = self.pca_.transform(X)
        return np.asarray(X, dtype=np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Embed new samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components), float32
        """
        Xp = self._pre(X)
        if Xp.shape[0] == 0:
            return np.empty((0, self.n_components), dtype=np.float32)
        with warnings.catch_warnings():
            # umap warns about n_jobs being overridden by random_state on every call
            warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
            # One row per call: umap's transform draws the negative samples of all rows from one random stream,
            # so a batch's rows move each other (measured: up to 0.14 in the 50-d embedding), and a patch dropped
            # alone could land in another cluster than in the test-set batch. Alone, each row's embedding depends
            # only on the row and the fitted model (about 30 ms a row on 2 cores).
            Z = np.vstack([self.umap_.transform(Xp[i : i + 1]) for i in range(Xp.shape[0])])
        return np.asarray(Z, dtype=np.float32)

    def __repr__(self) -> str:
        s = self.settings_
        return (
            f"Reducer({s['n_features_in']} -> "
            f"{'scale -> ' if s['standardize'] else ''}"
            f"{'PCA ' + str(s['pca_components']) + ' -> ' if s['pca_components'] else ''}"
            f"UMAP {s['n_components']}, n_neighbors={s['n_neighbors']}, seed={s['random_state']})"
        )


def _check_matrix(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D feature matrix (n_samples, n_features), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"expected a numeric feature matrix, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("feature matrix contains NaN or Inf")
    return X


def fit_reducer(
    X,
    n_components: int = DEFAULT_N_COMPONENTS,
    *,
    n_neighbors: int = DEFAULT_N_NEIGHBORS,
    min_dist: float = DEFAULT_MIN_DIST,
    metric: str = DEFAULT_METRIC,
    pca_components: int | None = None,
    standardize: bool | list = False,
    parallel: bool = False,
    n_jobs: int = -1,
    random_state: int | None = DEFAULT_RANDOM_STATE,
    logger: logging.Logger | None = None,
    large_n: int | None = LARGE_N,
) -> tuple[Reducer, np.ndarray]:
    """Fit ``[StandardScaler] -> [PCA] -> UMAP`` on ``X`` and embed it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Feature matrix, finite numbers. ``n_samples >= 3``.
    n_components : int, default 50
        Embedding dimension (50 for clustering / anomaly scores, 2 for plots).
    n_neighbors : int, default 15
        UMAP neighbourhood size; lowered to ``n_samples - 1`` when too large.
    min_dist : float, default 0.1
    metric : str, default "euclidean"
        UMAP input metric (e.g. "cosine" for raw CNN features).
    pca_components : int or None, default None
        PCA to this many components before UMAP (e.g. 100: ~6x faster on 2048-d
        features). Capped at ``min(n_samples, n_features)``.
    standardize : bool or list of (start, stop, mode), default False
        True: z-score each feature column first (hand-crafted attributes with mixed units, see module
        docstring); off for CNN features. A list of blocks: :class:`BlockScaler` (CNN + texture fusion).
    parallel : bool, default False
        Run UMAP unseeded on ``n_jobs`` threads: faster, not bit-reproducible.
    n_jobs : int, default -1
        Threads for the parallel UMAP (-1 = the thread budget, ``engines.thread_budget()``: all usable cores
        unless ``SEIS_THREADS`` / ``SEIS_CONCURRENT_RUNS`` say otherwise). Ignored unless ``parallel``.
    random_state : int or None, default 42
        Seed for PCA and (unless ``parallel``) UMAP. Same seed, same input,
        same output.
    logger : logging.Logger, optional
        Where adjustment warnings go (e.g. ``context.log``); module logger if None.
    large_n : int or None, default 5000
        Above this many samples: PCA to 100 components first (unless ``pca_components`` is set) and
        ``parallel=True``, recorded in ``adjustments``. 0 or None: never.

    Returns
    -------
    reducer : Reducer
        Joblib-picklable; ``reducer.transform(X_new)`` embeds new samples;
        ``reducer.settings_`` is a JSON-serialisable dict of the parameters actually
        used, ``adjustments`` (list of str, empty if none), ``reproducible`` (bool),
        ``n_samples``, ``n_features_in``, ``pca_explained_variance`` (float or None),
        ``seconds``.
    Z : ndarray of shape (n_samples, n_components), float32
        The embedding of ``X``.

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D numeric matrix, has fewer than 3 samples, or
        ``n_components`` / ``n_neighbors`` are not positive.
    """
    import umap  # heavy import (numba): keep it out of module import time

    log = logger or _log
    t0 = time.perf_counter()
    X = _check_matrix(X)
    n_samples, n_features = X.shape
    if n_samples < MIN_SAMPLES:
        raise ValueError(f"UMAP needs at least {MIN_SAMPLES} samples, got {n_samples}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors}")
    if pca_components is not None and pca_components < 1:
        raise ValueError(f"pca_components must be None or >= 1, got {pca_components}")

    adjustments: list[str] = []

    def adjust(msg: str) -> None:
        adjustments.append(msg)
        log.warning("fit_reducer: %s", msg)

    used_neighbors = n_neighbors
    if n_neighbors >= n_samples:
        used_neighbors = n_samples - 1
        adjust(f"n_neighbors {n_neighbors} >= n_samples {n_samples}: using {used_neighbors}")

    init = "spectral"
    if n_components >= n_samples - 2:
        init = "random"
        adjust(
            f"n_components {n_components} needs n_samples > n_components + 2 for spectral "
            f"initialisation, have {n_samples}: using init='random'"
        )

    used_pca = pca_components
    if pca_components is not None and pca_components > min(n_samples, n_features):
        used_pca = min(n_samples, n_features)
        adjust(f"pca_components {pca_components} > min(n_samples, n_features): using {used_pca}")

    if large_n and n_samples > large_n:
        changes = []
        if used_pca is None and n_features > LARGE_PCA_COMPONENTS:
            used_pca = min(LARGE_PCA_COMPONENTS, n_samples)
            changes.append(f"PCA to {used_pca} components first")
        if not parallel:
            parallel = True
            changes.append("parallel unseeded UMAP (not bit-reproducible)")
        if changes:
            adjust(f"n_samples {n_samples} > large_n {large_n}: " + " and ".join(changes)
                   + "; set large_n=0 (AnalysisSettings.umap_large_n) to keep the seeded single-threaded path")

    scaler = None
    Xp = X
    if isinstance(standardize, (list, tuple)):
        scaler = BlockScaler(standardize).fit(Xp)
        Xp = scaler.transform(Xp)
    elif standardize:
        scaler = StandardScaler().fit(Xp)
        Xp = scaler.transform(Xp)
    pca = None
    explained = None
    if used_pca is not None:
        pca = PCA(n_components=used_pca, random_state=random_state).fit(Xp)
        Xp = pca.transform(Xp)
        explained = float(np.sum(pca.explained_variance_ratio_))
    Xp = np.asarray(Xp, dtype=np.float32)

    seeded = random_state is not None and not parallel
    from seis_assets.core.engines import thread_budget

    used_jobs = thread_budget() if n_jobs == -1 else int(n_jobs)
    model = umap.UMAP(
        n_components=n_components,
        n_neighbors=used_neighbors,
        min_dist=min_dist,
        metric=metric,
        init=init,
        random_state=random_state if seeded else None,
        transform_seed=random_state if random_state is not None else 42,
        n_jobs=1 if seeded else used_jobs,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        Z = model.fit_transform(Xp)
    Z = np.asarray(Z, dtype=np.float32)

    settings: dict[str, Any] = {
        "method": "umap",
        "n_samples": int(n_samples),
        "n_features_in": int(n_features),
        "n_components": int(n_components),
        "n_neighbors": int(used_neighbors),
        "min_dist": float(min_dist),
        "metric": str(metric),
        "init": init,
        "standardize": [list(b) for b in scaler.blocks] if isinstance(scaler, BlockScaler) else bool(standardize),
        "pca_components": None if used_pca is None else int(used_pca),
        "pca_explained_variance": explained,
        "random_state": None if random_state is None else int(random_state),
        "parallel": bool(not seeded),
        "n_jobs": 1 if seeded else used_jobs,
        "reproducible": bool(seeded),
        "adjustments": adjustments,
        "large_n": int(large_n or 0),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return Reducer(scaler, pca, model, settings), Z


def fit_on_train(X, train, n_components: int = DEFAULT_N_COMPONENTS, **kwargs) -> tuple[Reducer, np.ndarray]:
    """Fit the reducer on the training rows only and embed every row (the others with ``transform``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    train : array-like of bool, shape (n_samples,)
        Rows to fit on (at least 3); the rest are embedded as unseen data.
    n_components : int
    **kwargs : passed to :func:`fit_reducer`

    Returns
    -------
    reducer : Reducer
    Z : ndarray of shape (n_samples, n_components), float32, rows aligned with ``X``
    """
    X = np.asarray(X)
    train = np.asarray(train, dtype=bool)
    if train.shape != (len(X),):
        raise ValueError(f"train mask of shape {train.shape} for {len(X)} rows")
    if train.sum() < 3:
        raise ValueError(f"only {int(train.sum())} training rows: UMAP needs at least 3")
    reducer, Z_train = fit_reducer(X[train], n_components, **kwargs)
    Z = np.zeros((len(X), Z_train.shape[1]), dtype=np.float32)
    Z[train] = Z_train
    if (~train).any():
        Z[~train] = reducer.transform(X[~train])
    return reducer, Z
