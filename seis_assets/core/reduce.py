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
  runs on all cores without a seed (PCA stays seeded).
* **Large inputs go PCA-first and parallel by themselves.** Above ``large_n``
  samples (:data:`LARGE_N` = 5,000 by default; ``large_n=0`` turns it off) the
  seeded single-threaded UMAP costs minutes, so ``fit_reducer`` runs PCA to
  :data:`LARGE_PCA_COMPONENTS` components first (unless ``pca_components`` was
  given) and UMAP unseeded on the thread budget (``engines.thread_budget``).
  This is logged and listed in ``settings_["adjustments"]``, and
  ``settings_["reproducible"]`` is False. Its speed and its cost in ARI on the
  real F3 patches: benchmarks/README.md, "UMAP's large-input path and its cost
  in ARI (real F3)".
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

from seis_assets.core.engines import thread_budget
from seis_assets.core.umap_rows import supports_row_transform, transform_rows

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
            # Row by row: a batch handed to umap's transform is normalised by its largest edge weight (and gets
            # fewer epochs above 10,000 rows), so a patch dropped alone could land in another cluster than in the
            # test-set batch. Alone, each row's embedding depends only on the row and the fitted model.
            # transform_rows gives exactly the row-by-row result in blocks (core/umap_rows.py).
            if supports_row_transform(self.umap_):
                Z = transform_rows(self.umap_, Xp)
            else:
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
    """Fit ``[scaler] -> [PCA] -> UMAP`` on ``X`` and embed it (the steps and their defaults: module docstring).

    Parameters
    ----------
    X : array-like (n_samples, n_features), finite numbers, ``n_samples >= 3``
    n_components : embedding dimension (50 for clustering and anomaly scores, 2 for plots)
    n_neighbors, min_dist, metric : UMAP's (``metric="cosine"`` for raw CNN features)
    pca_components : PCA to this many components before UMAP (None: no PCA)
    standardize : True: z-score each column (mixed units); a list of ``(start, stop, mode)``: :class:`BlockScaler`
    parallel : UMAP unseeded on ``n_jobs`` threads: faster, not bit-reproducible
    n_jobs : threads of the parallel UMAP; -1: ``engines.thread_budget()``
    random_state : seed of PCA and (unless parallel) UMAP: same seed, same input, same output
    logger : where adjustment warnings go (e.g. ``context.log``); the module logger if None
    large_n : above this many samples, the large-input path (PCA to :data:`LARGE_PCA_COMPONENTS` first unless
        ``pca_components`` is set, and parallel); 0 or None: never

    Returns
    -------
    reducer : Reducer, joblib-picklable; ``reducer.transform(X_new)`` embeds new samples; ``reducer.settings_`` is
        a JSON-serialisable dict of the parameters actually used, ``adjustments`` (list of str, empty if none),
        ``reproducible`` (bool), ``n_samples``, ``n_features_in``, ``pca_explained_variance`` (float or None),
        ``seconds``
    Z : ndarray (n_samples, n_components), float32, the embedding of ``X``

    Raises
    ------
    ValueError if ``X`` is not a finite 2-D numeric matrix or has fewer than 3 samples, or a size is not positive.
    """
    import umap  # noqa: F401  heavy (numba): imported on first use, before the clock that ``seconds`` records

    t0 = time.perf_counter()
    X = _check_inputs(X, n_components, n_neighbors, pca_components)
    plan = _Plan(n_components, n_neighbors, pca_components, parallel, logger or _log)
    plan.adapt_to_small_input(*X.shape)
    plan.take_large_input_path(*X.shape, large_n)
    scaler, pca, Xp = _scale_and_project(X, standardize, plan.pca_components, random_state)
    seeded = random_state is not None and not plan.parallel
    used_jobs = thread_budget() if n_jobs == -1 else int(n_jobs)
    model, Z = _fit_umap(Xp, plan, min_dist, metric, random_state, n_jobs=1 if seeded else used_jobs, seeded=seeded)
    settings = {
        "method": "umap", "n_samples": int(X.shape[0]), "n_features_in": int(X.shape[1]),
        **plan.record(min_dist, metric, scaler, pca, random_state, seeded, used_jobs, large_n),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return Reducer(scaler, pca, model, settings), Z


def _check_inputs(X, n_components: int, n_neighbors: int, pca_components: int | None) -> np.ndarray:
    """``X`` as a float32 matrix, or ValueError when it or a size cannot be used."""
    X = _check_matrix(X)
    n_samples = X.shape[0]
    if n_samples < MIN_SAMPLES:
        raise ValueError(f"UMAP needs at least {MIN_SAMPLES} samples, got {n_samples}")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors}")
    if pca_components is not None and pca_components < 1:
        raise ValueError(f"pca_components must be None or >= 1, got {pca_components}")
    return X


class _Plan:
    """What :func:`fit_reducer` will run: the caller's settings, adapted to the input, each change logged and listed
    in ``adjustments``."""

    def __init__(self, n_components: int, n_neighbors: int, pca_components: int | None, parallel: bool,
                 log: logging.Logger):
        self.n_components = n_components
        self.requested_neighbors = n_neighbors
        self.n_neighbors = n_neighbors
        self.init = "spectral"
        self.pca_components = pca_components
        self.parallel = parallel
        self.adjustments: list[str] = []
        self._log = log

    def adjust(self, msg: str) -> None:
        self.adjustments.append(msg)
        self._log.warning("fit_reducer: %s", msg)

    def adapt_to_small_input(self, n_samples: int, n_features: int) -> None:
        """Fewer neighbours, random initialisation and fewer PCA components where the input is too small for them."""
        if self.n_neighbors >= n_samples:
            self.n_neighbors = n_samples - 1
            self.adjust(f"n_neighbors {self.requested_neighbors} >= n_samples {n_samples}: using {self.n_neighbors}")
        if self.n_components >= n_samples - 2:
            self.init = "random"
            self.adjust(
                f"n_components {self.n_components} needs n_samples > n_components + 2 for spectral "
                f"initialisation, have {n_samples}: using init='random'"
            )
        if self.pca_components is not None and self.pca_components > min(n_samples, n_features):
            requested, self.pca_components = self.pca_components, min(n_samples, n_features)
            self.adjust(f"pca_components {requested} > min(n_samples, n_features): using {self.pca_components}")

    def take_large_input_path(self, n_samples: int, n_features: int, large_n: int | None) -> None:
        """Above ``large_n`` samples: PCA first (unless set) and parallel unseeded UMAP (the module docstring)."""
        if not (large_n and n_samples > large_n):
            return
        changes = []
        if self.pca_components is None and n_features > LARGE_PCA_COMPONENTS:
            self.pca_components = min(LARGE_PCA_COMPONENTS, n_samples)
            changes.append(f"PCA to {self.pca_components} components first")
        if not self.parallel:
            self.parallel = True
            changes.append("parallel unseeded UMAP (not bit-reproducible)")
        if changes:
            self.adjust(f"n_samples {n_samples} > large_n {large_n}: " + " and ".join(changes)
                        + "; set large_n=0 (AnalysisSettings.umap_large_n) to keep the seeded single-threaded path")

    def record(self, min_dist, metric, scaler, pca, random_state, seeded: bool, n_jobs: int, large_n) -> dict:
        """The JSON-serialisable settings actually used (``Reducer.settings_`` without sizes and time)."""
        return {
            "n_components": int(self.n_components),
            "n_neighbors": int(self.n_neighbors),
            "min_dist": float(min_dist),
            "metric": str(metric),
            "init": self.init,
            "standardize": [list(b) for b in scaler.blocks] if isinstance(scaler, BlockScaler) else scaler is not None,
            "pca_components": None if self.pca_components is None else int(self.pca_components),
            "pca_explained_variance": None if pca is None else float(np.sum(pca.explained_variance_ratio_)),
            "random_state": None if random_state is None else int(random_state),
            "parallel": bool(not seeded),
            "n_jobs": 1 if seeded else n_jobs,
            "reproducible": bool(seeded),
            "adjustments": self.adjustments,
            "large_n": int(large_n or 0),
        }


def _fit_umap(Xp: np.ndarray, plan: _Plan, min_dist, metric, random_state, *, n_jobs: int, seeded: bool):
    """The fitted ``umap.UMAP`` and its embedding of ``Xp`` (float32); seeded and single-threaded when ``seeded``."""
    import umap  # heavy (numba): kept out of module import time; fit_reducer has imported it already

    model = umap.UMAP(
        n_components=plan.n_components, n_neighbors=plan.n_neighbors, min_dist=min_dist, metric=metric,
        init=plan.init,
        random_state=random_state if seeded else None,
        transform_seed=random_state if random_state is not None else 42,
        n_jobs=n_jobs,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*", category=UserWarning)
        Z = model.fit_transform(Xp)
    return model, np.asarray(Z, dtype=np.float32)


def _scale_and_project(X: np.ndarray, standardize, pca_components: int | None, random_state):
    """The fitted scaler (or None), the fitted PCA (or None), and ``X`` through both as float32."""
    scaler = None
    if isinstance(standardize, (list, tuple)):
        scaler = BlockScaler(standardize).fit(X)
        X = scaler.transform(X)
    elif standardize:
        scaler = StandardScaler().fit(X)
        X = scaler.transform(X)
    pca = None
    if pca_components is not None:
        pca = PCA(n_components=pca_components, random_state=random_state).fit(X)
        X = pca.transform(X)
    return scaler, pca, np.asarray(X, dtype=np.float32)


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
