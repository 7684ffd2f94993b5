"""umap-learn's ``transform`` of single rows, for many rows in one call.

:meth:`seis_assets.core.reduce.Reducer.transform` embeds each row on its own, so that a row's embedding depends
only on the row and the fitted model (a batch handed to ``umap.UMAP.transform`` is not that: the edge weights are
normalised by the batch's largest, and a batch of more than 10,000 rows gets 30 epochs instead of 100). Calling
``UMAP.transform`` once per row is exact but spends almost all its time in per-call overhead (input validation and a
pure-Python loop over the training rows for the distances), which is what limits the classification of the
hundreds of thousands of windows of a 3-D survey.

:func:`transform_rows` runs the same steps as ``umap.UMAP.transform`` (umap-learn 0.5.x, euclidean metric, no
densMAP) with umap's own functions, for a block of rows at once, and keeps what makes a single row's call what it
is: the neighbour search and membership strengths are row-wise already; the weight threshold and the epochs per
sample are normalised by each row's own largest weight; every row gets the single-row call's 100 epochs; the
negative-sampling random state of each row is seeded from the row's initial embedding, as umap seeds it per head
vertex. Rows do not interact in umap's layout optimisation for new points (``move_other`` is off: an edge moves
only its own row), so the result equals the row-by-row one (``test_reduce.py`` checks this against
``UMAP.transform`` on small- and large-data fits).

Because rows do not interact, the layout optimisation (most of the time) also runs on several threads, each on a
contiguous share of the block's rows with those rows' edges in their original order: umap's own epoch function,
compiled once more with ``nogil`` so that the threads run at the same time, and umap's epoch loop around it. Each
row meets exactly the arithmetic it meets in one call, so the result does not depend on the number of threads
(``test_reduce.py`` checks 1 against 3 threads bit for bit). The threads are ``engines.thread_budget()``; blocks of
fewer than :data:`THREADED_MIN_ROWS` rows (a few dropped files) keep umap's own functions, whose compilation they
would pay anyway, instead of compiling two more.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import scipy.sparse
from sklearn.utils import check_random_state
from umap.distances import named_distances, parallel_special_metric
from umap.layouts import _optimize_layout_euclidean_single_epoch, optimize_layout_euclidean
from umap.umap_ import INT32_MAX, INT32_MIN, compute_membership_strengths, init_graph_transform, smooth_knn_dist
from umap.utils import submatrix

__all__ = ["supports_row_transform", "transform_rows"]

#: what a single-row ``UMAP.transform`` call uses (umap's choice for transforms of up to 10,000 rows)
SINGLE_ROW_EPOCHS = 100
#: rows per block: bounds the (rows x training rows) distance matrix of the small-data path
BLOCK_ROWS = 4096
#: blocks of fewer rows take umap's own functions on one thread: the threaded path's own compilation (its two numba
#: functions, once per process) is worth it only for large blocks (benchmarks/README.md, 3-D cubes)
THREADED_MIN_ROWS = 2048


def supports_row_transform(model) -> bool:
    """Whether :func:`transform_rows` reproduces ``model.transform`` row by row: a euclidean, non-densMAP model with
    the default number of epochs, fitted on more than one row."""
    return (
        model.metric == "euclidean"
        and model.output_metric == "euclidean"
        and not model.densmap
        and model.n_epochs is None
        and getattr(model, "_knn_search_index", 0) is not None
        and model._raw_data.shape[0] > 1
        and not scipy.sparse.issparse(model._raw_data)
    )


def transform_rows(model, X: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``np.vstack([model.transform(X[i:i+1]) for i in range(len(X))])``, computed in blocks of rows.

    Parameters
    ----------
    model : fitted ``umap.UMAP`` for which :func:`supports_row_transform` is true
    X : ndarray (n, n_features) float32, finite
    threads : threads of the layout optimisation (None: ``engines.thread_budget()``); the result is the same for
        any number

    Returns
    -------
    ndarray (n, n_components) float32
    """
    if not supports_row_transform(model):
        raise ValueError("transform_rows reproduces euclidean, non-densMAP UMAP models with default epochs only")
    if threads is None:
        from seis_assets.core.engines import thread_budget  # lazy: engines is not needed for the maths

        threads = thread_budget()
    X = np.ascontiguousarray(X, dtype=np.float32)
    blocks = [_transform_block(model, X[i : i + BLOCK_ROWS], threads) for i in range(0, len(X), BLOCK_ROWS)]
    return np.vstack(blocks) if blocks else np.empty((0, model.embedding_.shape[1]), dtype=np.float32)


def _neighbours(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``n_neighbors`` nearest training rows and distances, as ``UMAP.transform`` finds them."""
    k = model._n_neighbors
    if model._small_data:  # exact distances to every training row (umap's euclidean, row by row)
        dmat = parallel_special_metric(X, model._raw_data, metric=named_distances["euclidean"])
        indices = np.argpartition(dmat, k)[:, :k]
        shortened = submatrix(dmat, indices, k)
        order = np.argsort(shortened)
        return submatrix(indices, order, k), submatrix(shortened, order, k)
    epsilon = 0.24 if model._knn_search_index._angular_trees else 0.12
    return model._knn_search_index.query(X, model.n_neighbors, epsilon=epsilon)


def _transform_block(model, X: np.ndarray, threads: int = 1) -> np.ndarray:
    indices, dists = _neighbours(model, X)
    dists = dists.astype(np.float32, order="C")
    indices[dists >= model._disconnection_distance] = -1
    sigmas, rhos = smooth_knn_dist(
        dists, float(model._n_neighbors), local_connectivity=float(max(0.0, model.local_connectivity - 1.0))
    )
    rows, cols, vals, _ = compute_membership_strengths(indices, dists, sigmas, rhos, bipartite=True)
    n_train = model._raw_data.shape[0]
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(X.shape[0], n_train))
    csr = graph.tocsr()
    csr.eliminate_zeros()
    threaded = threads > 1 and X.shape[0] >= THREADED_MIN_ROWS and model.random_state is not None
    embedding = (_init_graph_transform if threaded else init_graph_transform)(csr, model.embedding_)

    # each row's own largest weight, where UMAP.transform on that row alone takes the batch's (its only row's)
    row_max = np.zeros(X.shape[0], dtype=np.float32)
    np.maximum.at(row_max, graph.row, graph.data)
    n_epochs = SINGLE_ROW_EPOCHS
    graph.data[graph.data < (row_max[graph.row] / float(n_epochs))] = 0.0
    graph.eliminate_zeros()
    epochs_per_sample = _epochs_per_sample(graph.data, row_max[graph.row], n_epochs)

    rng_state = check_random_state(model.transform_seed).randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    tail = model.embedding_.astype(np.float32, copy=True)
    if not threaded:  # umap's own layout (its parallel, non-deterministic one for a model without a seed)
        embedding = optimize_layout_euclidean(
            embedding, tail, graph.row, graph.col, n_epochs, n_train, epochs_per_sample, model._a, model._b,
            rng_state, model.repulsion_strength, model._initial_alpha / 4.0, model.negative_sample_rate,
            model.random_state is None, verbose=False,
        )
        return np.asarray(embedding, dtype=np.float32)
    layout = dict(tail_embedding=tail, n_epochs=n_epochs, n_vertices=n_train, a=model._a, b=model._b,
                  rng_state=rng_state, gamma=model.repulsion_strength, initial_alpha=model._initial_alpha / 4.0,
                  negative_sample_rate=model.negative_sample_rate)
    bounds = np.linspace(0, X.shape[0], min(threads, X.shape[0]) + 1).astype(int)

    def part(lo: int, hi: int) -> np.ndarray:
        edges = (graph.row >= lo) & (graph.row < hi)  # this share's edges, in their original order
        return _optimize_rows(np.ascontiguousarray(embedding[lo:hi]), graph.row[edges] - lo, graph.col[edges],
                              epochs_per_sample[edges], **layout)

    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        parts = list(pool.map(part, bounds[:-1], bounds[1:]))
    return np.asarray(np.vstack(parts), dtype=np.float32)


def _init_graph_transform(csr, embedding: np.ndarray) -> np.ndarray:
    """``umap.umap_.init_graph_transform(csr, embedding)`` without its Python loop of scipy row lookups: each row is
    the weighted mean of its neighbours' embeddings (the neighbour's own place where a weight is 1, NaN without neighbours), the
    same float32 operations in the same order; the weight sums are numpy's sums of each row's weights, as scipy's
    ``row.sum()`` takes them."""
    data = csr.data.astype(np.float32, copy=False)
    sums = np.array([data[a:b].sum() for a, b in zip(csr.indptr[:-1], csr.indptr[1:])], dtype=np.float32)
    result = np.zeros((csr.shape[0], embedding.shape[1]), dtype=np.float32)
    _weighted_rows(csr.indptr, csr.indices, data, sums, embedding, result)
    return result


@numba.njit(nogil=True)
def _weighted_rows(indptr, indices, data, sums, embedding, result):
    for r in range(indptr.shape[0] - 1):
        if indptr[r] == indptr[r + 1]:
            result[r, :] = np.nan
            continue
        for p in range(indptr[r], indptr[r + 1]):
            if data[p] == 1:
                result[r, :] = embedding[indices[p], :]
                break
            w = data[p] / sums[r]
            for d in range(result.shape[1]):
                result[r, d] += w * embedding[indices[p], d]


#: umap's epoch function (``move_other`` off, no densMAP) compiled as umap compiles it, plus ``nogil`` so that
#: threads run it at the same time
_epoch = numba.njit(_optimize_layout_euclidean_single_epoch, fastmath=True, parallel=False, nogil=True)


def _optimize_rows(head_embedding, head, tail, epochs_per_sample, *, tail_embedding, n_epochs, n_vertices, a, b,
                   rng_state, gamma, initial_alpha, negative_sample_rate) -> np.ndarray:
    """``umap.layouts.optimize_layout_euclidean`` (sequential, no densMAP, ``move_other`` off) with :data:`_epoch`:
    the same epoch loop, learning-rate schedule and per-row random states."""
    dim = head_embedding.shape[1]
    alpha = initial_alpha
    epochs_per_negative_sample = epochs_per_sample / negative_sample_rate
    epoch_of_next_negative_sample = epochs_per_negative_sample.copy()
    epoch_of_next_sample = epochs_per_sample.copy()
    rng_state_per_sample = np.full((head_embedding.shape[0], len(rng_state)), rng_state, dtype=np.int64) + (
        head_embedding[:, 0].astype(np.float64).view(np.int64).reshape(-1, 1)
    )
    unused = np.zeros(1, dtype=np.float32)  # densMAP's arrays
    for n in range(n_epochs):
        _epoch(head_embedding, tail_embedding, head, tail, n_vertices, epochs_per_sample, a, b, rng_state_per_sample,
               gamma, dim, False, alpha, epochs_per_negative_sample, epoch_of_next_negative_sample,
               epoch_of_next_sample, n, False, unused, unused, 0, 0, 0, 0, unused, unused, 0)
        alpha = initial_alpha * (1.0 - (float(n) / float(n_epochs)))
    return head_embedding


def _epochs_per_sample(weights: np.ndarray, weight_max: np.ndarray, n_epochs: int) -> np.ndarray:
    """``umap.umap_.make_epochs_per_sample`` with each edge's weight divided by its own row's largest weight."""
    result = -1.0 * np.ones(weights.shape[0], dtype=np.float64)
    n_samples = n_epochs * (weights / weight_max)
    result[n_samples > 0] = float(n_epochs) / np.float64(n_samples[n_samples > 0])
    return result
