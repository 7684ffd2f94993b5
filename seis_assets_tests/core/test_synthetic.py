"""The synthetic generator: shapes, reproducibility, class physics, difficulty, files on disk, CLI."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from seis_assets.core import attributes as A
from seis_assets.core import synthetic as S

N = 12  # patches per class for the statistical checks


def rng(*key):
    return np.random.default_rng(list(key))


def class_stats(cls, difficulty=0.2, n=N, key=0):
    return [A.patch_statistics(S.generate_patch(cls, rng(key, i), difficulty=difficulty)) for i in range(n)]


def median(stats, name):
    return float(np.median([s[name] for s in stats]))


@pytest.mark.parametrize("cls", S.CLASSES)
@pytest.mark.parametrize("size", [S.DEFAULT_SIZE, (150, 300)])
def test_shape_dtype_range(cls, size):
    p = S.generate_patch(cls, rng(1), size=size)
    assert p.shape == size and p.dtype == np.float32
    assert p.min() == -1.0 and p.max() == 1.0


def test_same_seed_identical_different_seed_differs():
    a = S.generate_patch("fault", rng(5, 1))
    b = S.generate_patch("fault", rng(5, 1))
    c = S.generate_patch("fault", rng(5, 2))
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown category"):
        S.generate_patch("channel", rng(0))
    with pytest.raises(ValueError, match="difficulty"):
        S.generate_patch("fault", rng(0), difficulty=1.5)
    with pytest.raises(ValueError, match="size"):
        S.generate_patch("fault", rng(0), size=(8, 99))
    with pytest.raises(ValueError, match="anomaly kind"):
        S.inject_anomaly(np.zeros((20, 20), np.float32), "smudge", rng(0))


def test_chaotic_has_a_bright_discontinuous_band():
    # Real F3 chaotic patches are NOT less coherent overall than "other" (median coherence 0.795 vs
    # 0.717): they differ by a band of bright, hummocky, broken reflectors inside ordinary layering.
    # So: the worst adjacent-trace pair is worse, and one depth band is much brighter than the rest.
    hor, cha = class_stats("horizon"), class_stats("chaotic")
    assert median(cha, "lateral_discontinuity") > median(hor, "lateral_discontinuity") + 0.05

    def bright_band(cls):  # max / median of the depth profile of RMS amplitude (15-row window)
        profiles = [np.sqrt((S.generate_patch(cls, rng(0, i), difficulty=0.2) ** 2).mean(axis=1)) for i in range(N)]
        ratios = [(lambda q: q.max() / np.median(q))(np.convolve(pr, np.ones(15) / 15, "valid")) for pr in profiles]
        return float(np.median(ratios))

    assert bright_band("chaotic") > bright_band("horizon") + 0.1


def test_fault_has_a_lateral_discontinuity():
    fault, hor = class_stats("fault"), class_stats("horizon")
    # the worst adjacent-trace pair (across the fault plane) correlates much worse than in a horizon patch
    assert median(fault, "lateral_discontinuity") > median(hor, "lateral_discontinuity") + 0.1


def test_salt_dome_has_a_weakly_reflective_body():
    def quiet_share(cls):
        env = [A.envelope(S.generate_patch(cls, rng(3, i), difficulty=0.0)) for i in range(N)]
        return float(np.median([(e < 0.4).mean() for e in env]))

    assert quiet_share("salt dome") > quiet_share("horizon") + 0.1


def test_difficulty_lowers_horizon_continuity():
    easy = median(class_stats("horizon", difficulty=0.0), "trace_correlation")
    mid = median(class_stats("horizon", difficulty=0.5), "trace_correlation")
    hard = median(class_stats("horizon", difficulty=1.0), "trace_correlation")
    assert easy > mid > hard


@pytest.mark.parametrize("kind", S.ANOMALY_KINDS)
def test_inject_anomaly(kind):
    p = S.generate_patch("horizon", rng(4))
    q = S.inject_anomaly(p, kind, rng(4, 1))
    assert q.shape == p.shape and q.dtype == np.float32
    assert -1.0 <= q.min() and q.max() <= 1.0
    assert not np.array_equal(p, q)
    if kind == "dead_traces":
        assert np.sum(np.all(q == 0.0, axis=0)) >= 2
    elif kind == "clipped":
        assert np.mean(np.abs(q) == 1.0) > 0.02
    elif kind == "polarity_block":
        flipped = np.isclose(q, -p) & ~np.isclose(p, 0.0)
        assert flipped.sum() > 0.02 * p.size
    elif kind == "spikes":
        assert 0 < np.sum(q != p) < 0.03 * p.size


def test_write_dataset_layout_anomalies_and_refusal(tmp_path):
    m = S.write_dataset(tmp_path, n_train=3, n_test=5, seed=1, anomaly_share=0.5)
    assert list(m.columns) == list(S.MANIFEST_COLUMNS)
    assert len(m) == 4 * 8
    for cls in S.CLASSES:
        names = sorted(p.name for p in (tmp_path / "train" / cls).glob("*.mat"))
        assert names == [f"{cls}_{i:04d}.mat" for i in (1, 2, 3)]
        assert len(list((tmp_path / "test" / cls).glob("*.mat"))) == 5
    img = scipy.io.loadmat(tmp_path / "train" / "salt dome" / "salt dome_0001.mat")["img"]
    assert img.shape == S.DEFAULT_SIZE and img.dtype == np.float32
    with open(tmp_path / "test" / "anomalies.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10  # round(0.5 * 20)
    assert {r["kind"] for r in rows} <= set(S.ANOMALY_KINDS)
    for r in rows:
        assert (tmp_path / "test" / r["file"]).is_file() and "\\" not in r["file"]
    assert sorted(r["file"] for r in rows) == sorted(
        f[len("test/") :] for f in m.loc[m["anomaly"] != "", "file"]
    )
    # same seed -> identical arrays
    again = tmp_path / "again"
    S.write_dataset(again, n_train=3, n_test=5, seed=1, anomaly_share=0.5)
    for f in m["file"]:
        assert np.array_equal(scipy.io.loadmat(tmp_path / f)["img"], scipy.io.loadmat(again / f)["img"])
    with pytest.raises(FileExistsError, match="force"):
        S.write_dataset(tmp_path, n_train=2, n_test=0)
    S.write_dataset(tmp_path, n_train=2, n_test=0, force=True)
    assert len(list((tmp_path / "train" / "fault").glob("*.mat"))) == 2
    assert not (tmp_path / "test").exists()


def test_cli_writes_and_refuses(tmp_path):
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "seis_assets.synthetic", "--out", str(out), "--n-train", "2", "--n-test", "1"]
    run = subprocess.run([*cmd, "--size", "32x48", "--seed", "3"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "wrote 8 train and 4 test patches" in run.stdout
    img = scipy.io.loadmat(out / "train" / "horizon" / "horizon_0002.mat")["img"]
    assert img.shape == (32, 48)
    assert (out / "test" / "anomalies.csv").is_file()
    refused = subprocess.run(cmd, capture_output=True, text=True)
    assert refused.returncode == 2 and "--force" in refused.stderr


def test_main_in_process(tmp_path, capsys):
    assert S.main(["--out", str(tmp_path), "--n-train", "1", "--n-test", "0", "--size", "20x20"]) == 0
    assert "wrote 4 train" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        S.main(["--size", "big"])
