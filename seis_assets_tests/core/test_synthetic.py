"""The synthetic generator: shapes, reproducibility, class physics, difficulty, files on disk, CLI."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from seis_assets.core import attributes as A
from seis_assets.core import synthetic as S
from seis_assets.core import synthetic_model as M
from seis_assets.synthetic import main

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
    assert main(["--out", str(tmp_path), "--n-train", "1", "--n-test", "0", "--size", "20x20"]) == 0
    assert "wrote 4 train" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--size", "big"])


# --------------------------------------------------------------------------- echo, trace jitter, absorption
def _autocorrelation(p, lag):
    x = p - p.mean(axis=0, keepdims=True)
    return float(((x[:-lag] * x[lag:]).sum(axis=0) / ((x**2).sum(axis=0) + 1e-12)).mean())


def test_echo_wavelet_has_notches_every_one_over_lag():
    w = M.ormsby(0.01, 0.03, 0.23, 0.32)
    e = M.with_echo(w, 14.5, 0.4)
    centre = len(e) // 2
    assert e[centre] == pytest.approx(1.0, abs=0.05)  # the primary (plus the echo of a far side lobe)
    assert e[centre + 14] < -0.15 and e[centre + 15] < -0.15  # the opposite-polarity echo lies 14.5 samples below
    assert np.abs(e[: centre - len(w) // 2]).max() < 1e-3  # (almost) nothing before the primary's support
    k = np.fft.rfftfreq(4096)
    amp_w, amp_e = np.abs(np.fft.rfft(w, 4096)), np.abs(np.fft.rfft(e, 4096))
    ratio = lambda f: float(np.interp(f, k, amp_e / (amp_w + 1e-12)))  # noqa: E731
    for n in (1, 2, 3):  # notches at n / lag, peaks half way between (inside the flat band 0.03-0.23)
        assert ratio(n / 14.5) == pytest.approx(0.6, abs=0.03)
        assert ratio((n + 0.5) / 14.5) == pytest.approx(1.4, abs=0.03)
    with pytest.raises(ValueError):
        M.with_echo(w, 14.5, 1.0)


@pytest.mark.parametrize("cls", S.CLASSES)
def test_generated_traces_correlate_negatively_at_the_echo_lag(cls):
    # F3's trace autocorrelation at lags 14-15 is -0.1 to -0.27 in every class
    acf = [np.mean([_autocorrelation(S.generate_patch(cls, rng(6, i)), lag) for lag in (14, 15)]) for i in range(N)]
    assert np.median(acf) < -0.08


def _local_trace_decorrelation(p, rows):
    a, b = p[rows, :-1], p[rows, 1:]
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    return float(1.0 - np.median((a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0) + 1e-12)))


def test_chaotic_band_jitters_trace_by_trace():
    # the band's traces are shifted one by one: inside the band neighbouring traces decorrelate more than in the
    # ordinary layering of the same patch (difficulty 0: little noise)
    inside, outside = [], []
    for i in range(N):
        p = S.generate_patch("chaotic", rng(7, i), difficulty=0.0)
        env = np.convolve(np.sqrt((p**2).mean(axis=1)), np.ones(9) / 9, "same")
        c = int(np.argmax(env[10:-10])) + 10  # the bright band
        inside.append(_local_trace_decorrelation(p, slice(c - 5, c + 5)))
        q = S.generate_patch("horizon", rng(7, i), difficulty=0.0)
        outside.append(_local_trace_decorrelation(q, slice(c - 5, c + 5)))
    assert np.median(inside) > np.median(outside) + 0.05


def test_absorption_removes_high_frequencies_along_the_path():
    noise = rng(8).standard_normal((128, 40))
    path = np.broadcast_to(np.linspace(0.0, 100.0, 40)[None, :], noise.shape)  # more path to the right
    out = M.absorb(noise, path, q=20.0)
    assert np.allclose(out[:, 0], noise[:, 0], atol=1e-9)  # no path: unchanged
    k = np.fft.rfftfreq(128)
    hf = lambda x: float((np.abs(np.fft.rfft(x, axis=0))[k > 0.2] ** 2).sum() / (x**2).sum())  # noqa: E731
    shares = [hf(out[:, j : j + 5]) for j in (0, 15, 35)]
    assert shares[0] > shares[1] > shares[2]
    assert shares[2] < 0.2 * shares[0]


def test_salt_dome_interior_loses_high_frequencies(monkeypatch):
    # the same patches (same generator state) with and without absorption: the deep part, inside the salt,
    # loses high frequencies; its brightness is kept (processing gain)
    def centroid(x):
        x = (x - x.mean(axis=0)) * np.hanning(x.shape[0])[:, None]
        a = np.abs(np.fft.rfft(x, axis=0)).mean(axis=1)[1:]
        k = np.fft.rfftfreq(x.shape[0])[1:]
        return float((a * k).sum() / a.sum())

    def deep(i):
        p = S.generate_patch("salt dome", rng(9, i), size=(150, 99), difficulty=0.0)
        return centroid(p[-50:]), float(np.sqrt((p[-50:] ** 2).mean()))

    absorbed = [deep(i) for i in range(N)]
    monkeypatch.setattr(M, "absorb", lambda seis, path, q: seis)
    plain = [deep(i) for i in range(N)]
    assert np.median([a[0] - b[0] for a, b in zip(absorbed, plain)]) < -0.01
    assert np.median([a[1] / b[1] for a, b in zip(absorbed, plain)]) == pytest.approx(1.0, abs=0.25)
