"""QC attributes: each fires on a real F3 patch given that artefact, and stays quiet on clean real F3 patches."""

import numpy as np
import pandas as pd
import pytest

from seis_assets.core import qc
from seis_assets.core.listing import list_categories, list_mat_files
from seis_assets.core.matfiles import read_mat_array


@pytest.fixture(scope="module")
def f3_qc(f3_dir):
    """QC attributes of every real F3 patch (raw 0..1 arrays as stored), in class then file order."""
    paths, labels = [], []
    for cat in list_categories(f3_dir):
        files = list_mat_files(f3_dir / cat)
        paths += files
        labels += [cat] * len(files)
    raws = [read_mat_array(p) for p in paths]
    return qc.qc_table(paths, raws), np.array(labels), raws


@pytest.fixture(scope="module")
def calibrated(f3_qc):
    """Calibrated on the first 80 % of each class; the last 20 % (other places in the survey) are held out."""
    table, labels, _ = f3_qc
    fit = np.zeros(len(table), bool)
    for cat in set(labels):
        idx = np.flatnonzero(labels == cat)
        fit[idx[: int(0.8 * len(idx))]] = True
    return qc.fit_qc(table[fit].reset_index(drop=True)), fit


def _artefact(raw: np.ndarray, kind: str, rng) -> np.ndarray:
    a = np.array(raw, dtype=np.float64)
    h, w = a.shape
    lo, hi = a.min(), a.max()
    if kind == "dead_traces":
        a[:, 40:48] = a.mean()  # 8 dead traces of 99
    elif kind == "clipped":
        mid, half = np.median(a), 0.2 * (hi - lo)
        a = np.clip(a, mid - half, mid + half)
    elif kind == "spikes":
        idx = rng.choice(a.size, int(0.01 * a.size), replace=False)
        a.flat[idx] = rng.choice([lo - (hi - lo), hi + (hi - lo)], len(idx))
    elif kind == "polarity":
        m = a.mean()
        a[30:70, 50:99] = 2 * m - a[30:70, 50:99]  # reversed about the mean: traces 49 | 50 disagree
    elif kind == "noise_burst":
        a[40:60, 20:40] += rng.normal(scale=a.std(), size=(20, 20))  # a burst as strong as the signal
    return a


@pytest.mark.parametrize("kind", qc.QC_ATTRIBUTES)
def test_each_attribute_fires_on_its_artefact(f3_qc, calibrated, kind):
    table, labels, raws = f3_qc
    cal, fit = calibrated
    rng = np.random.default_rng(0)
    held_out = np.flatnonzero(~fit)[::10]  # clean patches of every class, not used for calibration
    damaged = [_artefact(raws[i], kind, rng) for i in held_out]
    scored = cal.score(qc.qc_table([table["path"].iloc[i] for i in held_out], damaged))
    clean = cal.score(table.iloc[held_out].reset_index(drop=True))
    assert scored["qc_artefact"].all(), scored[["qc_score", "qc_attribute"]]
    assert (scored["qc_attribute"] == kind).all(), scored["qc_attribute"].value_counts()
    # the attribute itself rose on every patch, from its clean value
    assert (scored[f"qc_{kind}"].to_numpy() > clean[f"qc_{kind}"].to_numpy()).all()
    words = {"dead_traces": "dead", "clipped": "clipped", "spikes": "spikes", "polarity": "polarity",
             "noise_burst": "noise burst"}[kind]
    assert scored["qc_reason"].str.contains(words).all(), scored["qc_reason"].tolist()


def test_reason_names_the_amount(f3_qc, calibrated):
    table, _, raws = f3_qc
    cal, fit = calibrated
    i = int(np.flatnonzero(~fit)[0])
    damaged = _artefact(raws[i], "dead_traces", np.random.default_rng(0))
    attrs = qc.qc_attributes(damaged)
    assert attrs["dead_traces"] == pytest.approx(8 / 99)
    reason = cal.score(qc.qc_table(["x"], [damaged]))["qc_reason"].iloc[0]
    assert reason == "dead traces: 8 % of traces"
    # a polarity boundary is located where it was made
    pol = qc.qc_attributes(_artefact(raws[i], "polarity", np.random.default_rng(0)))
    assert pol["polarity_boundary"] == 49 and pol["polarity"] >= 30 / 99


def test_quiet_on_clean_real_patches(f3_qc, calibrated):
    table, labels, _ = f3_qc
    cal, fit = calibrated
    held = cal.score(table[~fit].reset_index(drop=True))
    fp = held["qc_artefact"].mean()
    assert fp < 0.02, held.loc[held["qc_artefact"], ["qc_score", "qc_reason"]]
    assert (held.loc[~held["qc_artefact"], "qc_reason"] == "").all()
    # on its own training patches the threshold (99.5th percentile) flags at most 0.5 %
    assert cal.score(table[fit].reset_index(drop=True))["qc_artefact"].mean() <= 0.005 + 1e-9


def test_attributes_ignore_gain_and_offset(f3_qc):
    _, _, raws = f3_qc
    a = raws[0]
    x, y = qc.qc_attributes(a), qc.qc_attributes(3.0 * a - 7.0)
    for k in qc.QC_ATTRIBUTES:
        assert x[k] == pytest.approx(y[k], abs=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        qc.qc_attributes(np.full((10, 10), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        qc.qc_attributes(np.zeros(10))
    with pytest.raises(ValueError, match="lacks columns"):
        qc.fit_qc(pd.DataFrame({"x": [1, 2, 3]}))


def test_constant_patch_is_all_dead():
    attrs = qc.qc_attributes(np.ones((20, 20)))
    assert attrs["dead_traces"] == 1.0


def test_qc_table_reuses_rows_of_unchanged_files_only():
    rng = np.random.default_rng(3)
    raws = {f"/d/p{i}.mat": rng.standard_normal((40, 30)) for i in range(5)}
    raws["/d/p4.mat"][:, :6] = 0.0  # dead traces: a row that differs from the others
    index = pd.DataFrame({"path": list(raws), "split": "train", "sha256": [f"h{i}" for i in range(5)]})
    reads = []

    def read(path):
        reads.append(path)
        return raws[path]

    first, n_reused = qc.qc_table_reusing(index, read)
    assert n_reused == 0 and reads == list(raws)
    expected = qc.qc_table(list(raws), list(raws.values()))
    pd.testing.assert_frame_equal(first[["path", *qc.QC_ATTRIBUTES]], expected[["path", *qc.QC_ATTRIBUTES]])
    assert first["dead_traces"].iloc[4] == pytest.approx(6 / 30)

    # one file changed (new hash), one renamed (same hash, new path), one new: only the changed and the new are read
    raws["/d/new.mat"] = rng.standard_normal((40, 30))
    index2 = pd.DataFrame({"path": ["/d/p0.mat", "/d/moved.mat", "/d/p2.mat", "/d/new.mat"], "split": "test",
                           "sha256": ["h0", "h1", "h2-changed", "h9"]})
    raws["/d/moved.mat"] = raws["/d/p1.mat"]
    reads.clear()
    second, n_reused = qc.qc_table_reusing(index2, read, previous=first)
    assert n_reused == 2 and reads == ["/d/p2.mat", "/d/new.mat"]
    assert second["path"].tolist() == index2["path"].tolist() and (second["split"] == "test").all()
    assert second["noise_burst"].iloc[1] == first["noise_burst"].iloc[1]

    # a table of another QC version is never reused
    reads.clear()
    _, n_reused = qc.qc_table_reusing(index, read, previous=first.assign(qc_version=qc.QC_VERSION - 1))
    assert n_reused == 0 and len(reads) == 5


def test_the_fast_median_and_run_lengths_give_numpys_values_exactly():
    """QC's own median (one partial sort) and longest runs (no Python loop) must not change any attribute."""
    from seis_assets.core.qc import _longest_runs, _median

    rng = np.random.default_rng(7)
    for shape in ((99, 99), (99, 98), (4, 3), (2, 2), (1, 1), (150, 300)):
        a = rng.normal(size=shape)
        a[rng.random(shape) < 0.2] = 0.0  # ties
        assert _median(a) == np.median(a)
    for p in (0.0, 0.3, 0.9, 1.0):
        flags = rng.random((99, 98)) < p
        run = np.zeros(flags.shape[1], dtype=int)
        cur = np.zeros(flags.shape[1], dtype=int)
        for row in flags:
            cur = np.where(row, cur + 1, 0)
            run = np.maximum(run, cur)
        assert (_longest_runs(flags) == run).all()


def test_spikes_stopping_early_gives_the_definitions_value(f3_qc):
    """``_spikes`` stops at the first of its three tests that no sample passes; on clean real patches (where it
    mostly stops early) and on spiked ones it must equal all three tests taken together."""
    from seis_assets.core.qc import SPIKE_AMPLITUDE_Z, SPIKE_Z, _robust_z, _spikes

    def definition(a):
        dz, dx = np.zeros_like(a), np.zeros_like(a)
        dz[1:-1] = a[2:] - 2 * a[1:-1] + a[:-2]
        dx[:, 1:-1] = a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]
        zz, zx, za = np.abs(_robust_z(dz)), np.abs(_robust_z(dx)), np.abs(_robust_z(a))
        return float(np.mean((zz > SPIKE_Z) & (zx > SPIKE_Z) & (za > SPIKE_AMPLITUDE_Z)))

    _, _, raws = f3_qc
    rng = np.random.default_rng(3)
    patches = [np.asarray(r, dtype=np.float64) for r in raws[::20]]
    patches += [_artefact(p, "spikes", rng) for p in patches[:10]]
    values = [_spikes(p) for p in patches]
    assert values == [definition(p) for p in patches]
    assert 0 < sum(v > 0 for v in values) < len(values)  # both ways out of the function were taken
