import io
import logging

import joblib
import numpy as np
import pytest

from seis_assets.core import reduce
from seis_assets.core.reduce import BlockScaler, fit_on_train


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5.0, size=(3, 20))
    return np.vstack([c + rng.normal(size=(30, 20)) for c in centers]).astype(np.float32)


def test_seeded_fit_is_reproducible_and_transform_embeds_new_rows(features):
    r1, Z1 = reduce.fit_reducer(features, 2, n_neighbors=10, random_state=7)
    r2, Z2 = reduce.fit_reducer(features, 2, n_neighbors=10, random_state=7)
    assert Z1.shape == (90, 2) and Z1.dtype == np.float32
    assert np.array_equal(Z1, Z2)
    assert r1.settings_["reproducible"] is True and r1.settings_["n_jobs"] == 1
    assert r1.settings_["adjustments"] == []
    new = r1.transform(features[:4] + 0.01)
    assert new.shape == (4, 2) and new.dtype == np.float32


def test_reducer_survives_joblib_round_trip(features):
    r, _ = reduce.fit_reducer(features, 3, n_neighbors=10, pca_components=5, standardize=True, random_state=1)
    buf = io.BytesIO()
    joblib.dump(r, buf)
    buf.seek(0)
    loaded = joblib.load(buf)
    assert np.allclose(loaded.transform(features[:5]), r.transform(features[:5]))
    s = loaded.settings_
    assert s["pca_components"] == 5 and 0 < s["pca_explained_variance"] <= 1 and s["standardize"] is True


def test_small_input_is_adapted_and_recorded(features, caplog):
    with caplog.at_level(logging.WARNING, logger="seis_assets.core.reduce"):
        r, Z = reduce.fit_reducer(features[:8], 6, n_neighbors=15, pca_components=50, random_state=0)
    assert Z.shape == (8, 6)
    s = r.settings_
    assert s["n_neighbors"] == 7 and s["init"] == "random" and s["pca_components"] == 8
    assert len(s["adjustments"]) == 3
    assert any("n_neighbors 15" in m for m in caplog.messages)


def test_parallel_option_is_recorded_as_not_reproducible(features):
    r, Z = reduce.fit_reducer(features, 2, n_neighbors=10, parallel=True, n_jobs=2)
    assert Z.shape == (90, 2)
    assert r.settings_["reproducible"] is False and r.settings_["parallel"] is True and r.settings_["n_jobs"] == 2


def test_bad_inputs_raise_clear_errors(features):
    with pytest.raises(ValueError, match="at least 3"):
        reduce.fit_reducer(features[:2], 2)
    with pytest.raises(ValueError, match="NaN"):
        reduce.fit_reducer(np.full((5, 3), np.nan), 2)
    with pytest.raises(ValueError, match="2-D"):
        reduce.fit_reducer(features[0], 2)
    r, _ = reduce.fit_reducer(features, 2, n_neighbors=10)
    with pytest.raises(ValueError, match="fitted on 20 features"):
        r.transform(np.zeros((2, 7)))


def test_fit_on_train_embeds_the_other_rows_with_transform():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 8)), rng.normal(6, 1, (30, 8))]).astype(np.float32)
    train = np.ones(60, bool)
    train[[5, 40]] = False
    reducer, Z = fit_on_train(X, train, 2, n_neighbors=5, random_state=0)
    assert Z.shape == (60, 2)
    np.testing.assert_allclose(Z[[5, 40]], reducer.transform(X[[5, 40]]), rtol=1e-5, atol=1e-5)
    # the held-out rows land with their own blob
    blob0, blob1 = Z[:30][train[:30]].mean(0), Z[30:][train[30:]].mean(0)
    assert np.linalg.norm(Z[5] - blob0) < np.linalg.norm(Z[5] - blob1)
    assert np.linalg.norm(Z[40] - blob1) < np.linalg.norm(Z[40] - blob0)
    with pytest.raises(ValueError, match="only 2 training rows"):
        fit_on_train(X[:3], np.array([True, True, False]), 2)


def test_large_input_goes_pca_first_and_parallel_and_says_so(monkeypatch):
    rng = np.random.default_rng(1)
    X = np.vstack([c + rng.normal(size=(60, 130)) for c in rng.normal(scale=5.0, size=(2, 130))]).astype(np.float32)
    monkeypatch.setenv("SEIS_THREADS", "1")
    r, Z = reduce.fit_reducer(X, 2, n_neighbors=10, large_n=100)  # 120 samples > large_n
    s = r.settings_
    assert Z.shape == (120, 2)
    assert s["pca_components"] == reduce.LARGE_PCA_COMPONENTS and s["parallel"] and not s["reproducible"]
    assert s["n_jobs"] == 1  # the thread budget, not every core
    assert any("large_n 100" in a for a in s["adjustments"]) and s["large_n"] == 100
    # at or below the threshold, or with large_n=0, the seeded path is kept
    for large_n in (120, 0):
        r, _ = reduce.fit_reducer(X, 2, n_neighbors=10, large_n=large_n)
        assert r.settings_["reproducible"] and r.settings_["pca_components"] is None
        assert r.settings_["adjustments"] == []


def test_a_rows_embedding_does_not_depend_on_its_batch(features):
    """A patch dropped alone must embed (and so cluster) exactly as it does inside the test-set batch."""
    r, _ = reduce.fit_reducer(features, 5, n_neighbors=10, random_state=3)
    rng = np.random.default_rng(1)
    batch = features[::3] + rng.normal(scale=0.5, size=features[::3].shape).astype(np.float32)
    together = r.transform(batch)
    alone = np.vstack([r.transform(batch[i : i + 1]) for i in (0, 7, 29)])
    assert np.array_equal(together[[0, 7, 29]], alone)
    assert np.array_equal(r.transform(batch[::-1])[::-1], together)  # order does not matter either


def test_block_scaler_gives_each_block_the_same_weight_whatever_its_units():
    rng = np.random.default_rng(0)
    cnn = rng.gamma(0.5, 2.0, (300, 40))  # one shared scale, a few large rare activations
    tex = rng.normal(size=(300, 6)) * [1, 10, 100, 0.01, 5, 90]  # mixed units
    X = np.hstack([cnn, tex])
    blocks = [(0, 40, "rms"), (40, 46, "zscore")]
    Y = BlockScaler(blocks).fit(X).transform(X)
    assert Y[:, :40].var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)  # total variance 1 per block
    assert Y[:, 40:].var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    assert np.allclose(Y[:, 40:].var(axis=0), 1 / 6, rtol=1e-3)
    # the CNN block keeps its columns' relative scale (one divisor), unlike per-column z-scores
    assert np.allclose(Y[:, :40].std(axis=0) / Y[:, 0].std(), cnn.std(axis=0) / cnn[:, 0].std(), rtol=1e-4)
    # changing the attributes' units changes nothing
    X2 = X.copy()
    X2[:, 40:] *= 1000.0
    assert np.allclose(BlockScaler(blocks).fit(X2).transform(X2), Y, atol=1e-5)
    with pytest.raises(ValueError, match="blocks end at column 46"):
        BlockScaler([(0, 40, "rms"), (40, 46, "zscore")]).fit(X[:, :45])


def test_fit_reducer_with_blocks_records_them_and_transforms_alike():
    rng = np.random.default_rng(1)
    X = np.hstack([rng.normal(size=(60, 20)), 50 * rng.normal(size=(60, 4))]).astype(np.float32)
    blocks = [(0, 20, "rms"), (20, 24, "zscore")]
    reducer, Z = reduce.fit_reducer(X, 3, standardize=blocks, random_state=0)
    assert reducer.settings["standardize"] == [[0, 20, "rms"], [20, 24, "zscore"]]
    assert reducer.transform(X[:2]).shape == (2, 3)


@pytest.mark.parametrize("n_fit", [300, 4500])  # umap's exact small-data path, and its NN-descent index
@pytest.mark.parametrize("threaded_min_rows", [0, 10**9])  # the threaded layout, and umap's own for small blocks
def test_block_transform_equals_umaps_row_by_row_transform(n_fit, threaded_min_rows, monkeypatch):
    from seis_assets.core import umap_rows
    from seis_assets.core.umap_rows import supports_row_transform, transform_rows

    monkeypatch.setattr(umap_rows, "THREADED_MIN_ROWS", threaded_min_rows)

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 3
    X = (centres[rng.integers(0, 4, n_fit)] + rng.normal(size=(n_fit, 32))).astype(np.float32)
    new = (centres[rng.integers(0, 4, 60)] + rng.normal(size=(60, 32))).astype(np.float32)
    reducer = reduce.fit_reducer(X, n_components=5, random_state=0, large_n=0)[0]
    assert supports_row_transform(reducer.umap_)
    one_by_one = np.vstack([reducer.umap_.transform(new[i : i + 1]) for i in range(len(new))])
    assert np.array_equal(transform_rows(reducer.umap_, new), one_by_one)
    assert np.array_equal(reducer.transform(new[:7]), one_by_one[:7])  # a row is placed alone, whatever its batch
    # the layout's threads each take a share of the rows: the same embedding for any number of them
    assert np.array_equal(transform_rows(reducer.umap_, new, threads=3), one_by_one)
    assert np.array_equal(transform_rows(reducer.umap_, new, threads=1), one_by_one)
