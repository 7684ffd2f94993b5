"""Window features of a survey line by line: corrupt traces, the line cache, a killed run resumed, Dask."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.backbones import load_backbone
from seis_assets.core.feature_table import table_identity
from seis_assets.core.predict import Embedder
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.segy import SegyError, open_survey, section_direction
from seis_assets.core.segy_write import write_cube
from seis_assets.core.storage import ParquetTable, read_parquet
from seis_assets.core.matfiles import PatchLoadError
from seis_assets.core.segy_windows import WINDOW_COLUMNS, dead_windows, iter_windows, scale_window, window_starts
from seis_assets.core.volume_views import is_volume
from seis_assets.core.window_features import (
    LineJob, WindowCache, WindowSpec, corrupt_traces, local_runner, read_corrupt_traces, read_dead_windows,
    survey_line_jobs, write_survey_windows,
)
from seis_assets.core.window_predict import survey_features
from seis_assets_tests.segy_files import without_traces

SPEC = WindowSpec(n_traces=20, n_samples=20, stride=10, scaling="per_window")


@pytest.fixture(scope="module")
def identity():
    return table_identity(load_backbone("texture"), "native", "fp32")


def _runner(identity):
    return local_runner(SPEC, lambda: Embedder.build(identity, None, "cpu", None))


def _write(survey_path, dest, identity, cache=None):
    with open_survey(survey_path) as survey:
        return write_survey_windows(survey, ["inline"], SPEC, identity, dest, _runner(identity), cache)


def test_corrupt_traces_are_found_with_their_reason():
    data = np.ones((5, 8), np.float32)
    data[1, 2] = np.nan
    data[3, :2] = np.inf
    assert corrupt_traces(data) == [(1, "1 NaN of 8 samples"), (3, "2 Inf of 8 samples")]
    assert corrupt_traces(np.zeros((3, 4), np.float32)) == []


def test_the_table_is_the_one_made_in_memory_and_the_cache_key_follows_the_content(tmp_path, identity):
    cube = write_cube(tmp_path / "c.sgy", [1, 2, 3], range(1, 51), n_samples=40)
    report = _write(cube, tmp_path / "w.parquet", identity)
    table = read_parquet(tmp_path / "w.parquet")
    with open_survey(cube) as survey:
        positions, X, _, qc = survey_features(survey, identity, scaling="per_window", n_traces=20, n_samples=20,
                                              stride=10)
    assert report.n_windows == len(positions) == len(table) and report.lines == 3
    pd.testing.assert_frame_equal(table[positions.columns], positions, check_dtype=False)
    assert np.allclose(np.stack(table["features"]), X, atol=1e-6)
    assert np.allclose(table["qc_spikes"], qc["spikes"])
    with open_survey(cube) as survey:
        job, _ = next(survey_line_jobs(survey, ["inline"]))
    key = job.key(SPEC, identity)
    assert key == job.key(SPEC, dict(identity))  # same content, same key
    changed = LineJob(**{**job.__dict__, "data": job.data + 1})
    assert changed.key(SPEC, identity) != key
    assert job.key(WindowSpec(20, 20, 5, "per_window"), identity) != key
    assert job.key(SPEC, {**identity, "input_size": "224:stretch"}) != key


def test_a_corrupt_trace_leaves_out_its_windows_only(tmp_path, identity):
    cube = write_cube(tmp_path / "c.sgy", [1, 2], range(1, 51), n_samples=40)
    with segyio.open(str(cube), "r+") as f:  # inline 2, crossline 25
        t = f.trace[74].copy()
        t[5] = np.nan
        f.trace[74] = t
    report = _write(cube, tmp_path / "w.parquet", identity)
    [bad] = read_corrupt_traces(tmp_path / "w.parquet")
    assert (bad.direction, bad.inline, bad.xline) == ("inline", 2, 25) and "1 NaN" in bad.reason
    assert report.corrupt == [bad]
    table = read_parquet(tmp_path / "w.parquet")
    two = table[table["inline"] == 2]
    assert not ((two["xline"] <= 25) & (25 < two["xline"] + 20)).any()
    assert len(two) == 2 * 3 and len(table[table["inline"] == 1]) == 4 * 3  # trace starts 0, 10, 20, 30; 24 is bad
    assert np.isfinite(np.stack(table["features"])).all()


def test_dead_windows_are_the_windows_per_window_scaling_refuses():
    rng = np.random.default_rng(0)
    line = rng.standard_normal((60, 50)).astype(np.float32)  # traces x samples
    line[:25] = 0.0  # zero padding
    line[:25, 30:] = 5.0  # then another value, one sample a float32 step above it: "nearly constant"
    line[0, 49] = np.nextafter(np.float32(5.0), np.float32(6.0))
    line[30:, :20] = 0.0  # a muted top
    traces, samples = window_starts(60, 20, 10), window_starts(50, 20, 10)
    dead = dead_windows(line, traces, samples, 20, 20)
    for i, t0 in enumerate(traces):
        for j, s0 in enumerate(samples):
            try:
                scale_window(line[t0 : t0 + 20, s0 : s0 + 20].T, "per_window")
                refused = False
            except PatchLoadError:
                refused = True
            assert dead[i, j] == refused, (t0, s0)
    # trace start 0: sample starts 0 and 10 (zeros) and 30 (the fives); trace starts 30 and 40: sample start 0
    assert np.argwhere(dead).tolist() == [[0, 0], [0, 1], [0, 3], [3, 0], [4, 0]]
    with_nan = line.copy()
    with_nan[50, 40] = np.nan
    assert dead_windows(with_nan, [40], [30], 20, 20).all()  # documented: leave out corrupt windows first


def test_dead_windows_are_left_out_and_counted_and_the_rest_maps(tmp_path, identity):
    cube = write_cube(tmp_path / "c.sgy", [1, 2], range(1, 51), n_samples=40)
    with segyio.open(str(cube), "r+") as f:  # inline 2, crosslines 1..25: zero padding, as exports hold
        for i in range(50, 75):
            f.trace[i] = np.zeros(40, np.float32)
    report = _write(cube, tmp_path / "w.parquet", identity)
    # trace starts 0, 10, 20, 30 x sample starts 0, 10, 20: only start 0 lies wholly in the padding
    assert report.dead_windows == 3 and report.lines_with_dead_windows == 1
    assert read_dead_windows(tmp_path / "w.parquet") == 3 and read_corrupt_traces(tmp_path / "w.parquet") == []
    assert report.metadata()["dead_windows"] == 3
    table = read_parquet(tmp_path / "w.parquet")
    assert sorted(table.loc[table["inline"] == 2, "xline"].unique()) == [11, 21, 31]
    assert len(table[table["inline"] == 1]) == 4 * 3
    # a re-run from the cache counts them again
    again = _write(cube, tmp_path / "w2.parquet", identity, WindowCache(tmp_path / "cache"))
    cached = _write(cube, tmp_path / "w3.parquet", identity, WindowCache(tmp_path / "cache"))
    assert again.dead_windows == cached.dead_windows == 3 and cached.lines_reused == 2


def test_the_in_memory_windows_are_the_pipelines_on_a_padded_notched_survey(tmp_path, identity):
    """``iter_windows`` (what ``survey_features`` and ``cut_windows`` use) cuts a line as the pipeline does: the
    same windows, the same dead windows and short runs left out, where a whole-line cut would refuse a dead window
    and join traces across a gap."""
    full = write_cube(tmp_path / "full.sgy", [1, 2, 3], range(1, 61), n_samples=40)
    with segyio.open(str(full), "r+") as f:  # inline 1, crosslines 1..25: zero padding
        for i in range(25):
            f.trace[i] = np.zeros(40, np.float32)
    # inline 2: a notch at crosslines 21-28; inline 3: crosslines 1-15 only (narrower than a window)
    cube = without_traces(full, tmp_path / "c.sgy", lambda il, xl: (il == 2 and 21 <= xl <= 28) or (il == 3 and xl > 15))
    report = _write(cube, tmp_path / "w.parquet", identity)
    table = read_parquet(tmp_path / "w.parquet")
    with open_survey(cube) as survey:
        positions, X, info, _ = survey_features(survey, identity, scaling="per_window", n_traces=20, n_samples=20,
                                                stride=10)
        counts = {}
        windows = list(iter_windows(survey, n_traces=20, n_samples=20, stride=10, counts=counts))
    assert report.dead_windows == info["dead_windows"] == counts["dead_windows"] == 3
    # inline 2's runs: crosslines 1-20 and 29-60; inline 3's only run is short
    assert report.short_runs == info["short_runs"] == counts["short_runs"] == 1
    pd.testing.assert_frame_equal(table[positions.columns], positions, check_dtype=False)
    assert np.allclose(np.stack(table["features"]), X, atol=1e-6)
    two = positions[positions["inline"] == 2]
    assert sorted(two["xline"].unique()) == [1, 29, 39, 41]  # never across the notch
    assert len(windows) == len(positions) and all(np.ptp(w) > 0 for _, w in windows)
    with open_survey(cube) as survey, pytest.raises(SegyError, match="no window: 4 runs of traces are narrower"):
        list(iter_windows(survey, n_traces=61, n_samples=20, stride=10))


def test_a_file_holding_one_crossline_is_windowed_painted_and_written_along_it(tmp_path, identity):
    """A crossline exported on its own (every inline a single trace) maps with the default directions, as a 2-D line
    along the crossline: not 60 lines of one trace each, too narrow for any window."""
    section = write_cube(tmp_path / "xl.sgy", range(100, 160), [575], n_samples=40)
    report = _write(section, tmp_path / "w.parquet", identity)  # directions ["inline"], the default
    assert report.directions == ("xline",) and report.short_runs == 0
    table = read_parquet(tmp_path / "w.parquet")
    assert set(table["direction"]) == {"xline"} and set(table["xline"]) == {575}
    assert sorted(table["inline"].unique()) == [100, 110, 120, 130, 140]  # along the crossline, 20 traces, stride 10
    clusters = (table["inline"].to_numpy() >= 120).astype(int)
    with open_survey(section) as survey:
        assert section_direction(survey.info) == "xline" and not is_volume(survey.info)
        result = write_facies_outputs(survey, table[WINDOW_COLUMNS], clusters, None, {}, 2, tmp_path / "out",
                                      keep_maps=True)
        units = write_facies_outputs(survey, table[WINDOW_COLUMNS], clusters, None, {}, 2, tmp_path / "units",
                                     keep_maps=True, units=3)
    [(key, (cmap, other))] = result["maps"].items()
    assert key == ("xline", 575) and other.tolist() == list(range(100, 160)) and cmap.shape == (60, 40)
    assert (cmap[:20] == 0).all() and (cmap[-20:] == 1).all()  # the windows' clusters where only they vote
    with segyio.open(str(tmp_path / "out" / "facies_labels.sgy"), ignore_geometry=True) as out:
        np.testing.assert_array_equal(out.trace.raw[:], cmap)  # trace i of the file is inline 100 + i
    [(_, (unit_map, _))] = units["maps"].items()
    assert set(np.unique(unit_map)) == {0, 1, 2}  # units cut along the whole crossline, not per one-trace inline


KILLED_RUN = """
import sys, time
from seis_assets.core.backbones import load_backbone
from seis_assets.core.feature_table import table_identity
from seis_assets.core.predict import Embedder
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.segy import SegyError, open_survey, section_direction
from seis_assets.core.window_features import WindowCache, WindowSpec, local_runner, write_survey_windows
spec = WindowSpec(20, 20, 10, "per_window")
identity = table_identity(load_backbone("texture"), "native", "fp32")
runner = local_runner(spec, lambda: Embedder.build(identity, None, "cpu", None))
def slow(items):
    for result in runner(items):
        yield result
        time.sleep(0.3)  # lines take a while, as on a real cube
with open_survey(sys.argv[1]) as survey:
    write_survey_windows(survey, ["inline"], spec, identity, sys.argv[2], slow, WindowCache(sys.argv[3]))
"""


def test_a_run_killed_halfway_resumes_from_the_cached_lines(tmp_path, identity):
    cube = write_cube(tmp_path / "c.sgy", list(range(1, 31)), range(1, 41), n_samples=30)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(cube), str(tmp_path / "w.parquet"), str(cache)],
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.rglob("*.parquet"))) < 5:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(cache.rglob("*.parquet")))
    assert 5 <= done < 30 and not (tmp_path / "w.parquet").exists()  # killed mid-way: no table, some lines
    report = _write(cube, tmp_path / "w.parquet", identity, WindowCache(cache))
    assert report.lines_reused == done and report.lines == 30
    _write(cube, tmp_path / "fresh.parquet", identity)  # the same cube from scratch, no cache
    a, b = read_parquet(tmp_path / "w.parquet"), read_parquet(tmp_path / "fresh.parquet")
    assert a.drop(columns="features").equals(b.drop(columns="features"))
    assert np.array_equal(np.stack(a["features"]), np.stack(b["features"]))
    assert len(ParquetTable(tmp_path / "w.parquet")) == report.n_windows


@pytest.mark.slow
def test_lines_made_on_a_dask_cluster_give_the_same_table(tmp_path, identity):
    pytest.importorskip("distributed")
    from distributed import Client

    from seis_assets.core.distributed import dask_line_runner
    from seis_assets_tests.scale.servers import dask_local_cluster

    cube = write_cube(tmp_path / "c.sgy", [1, 2, 3, 4], range(1, 51), n_samples=40)
    _write(cube, tmp_path / "local.parquet", identity)
    with dask_local_cluster(tmp_path / "cluster.log", n_workers=2) as address, \
            Client(address, set_as_default=False) as client, open_survey(cube) as survey:
        write_survey_windows(survey, ["inline"], SPEC, identity, tmp_path / "dask.parquet",
                             dask_line_runner(client, SPEC, identity), WindowCache(tmp_path / "cache"))
    a, b = read_parquet(tmp_path / "local.parquet"), read_parquet(tmp_path / "dask.parquet")
    assert a.drop(columns="features").equals(b.drop(columns="features"))
    assert np.allclose(np.stack(a["features"]), np.stack(b["features"]), atol=1e-6)


def test_a_lines_windows_go_through_the_network_in_the_embedders_batches(tmp_path):
    """``feature_settings.batch_size`` reaches the SEG-Y windows; unset, the engine's default for the backbone and
    input size (``engines.batch_size_for``: 16 at 224, 4 for a ``+instnorm`` backbone there)."""
    from seis_assets.core.engines import batch_size_for
    from seis_assets.core.window_features import line_windows_table
    from seis_assets_tests.core.test_engines import _small_backbone

    cube = write_cube(tmp_path / "c.sgy", [1], range(1, 51), n_samples=40)
    with open_survey(cube) as survey:
        job, _ = next(survey_line_jobs(survey, ["inline"]))
    texture = load_backbone("texture")
    n_windows = len(line_windows_table(job, SPEC, Embedder(texture.identity, texture, "native", "fp32", "numpy")))
    for size, batch_size, expected in (("native", 3, 3), ("224:stretch", None, 16), ("32:stretch", None, 16)):
        backbone = _small_backbone()
        embedder = Embedder(dict(backbone.identity), backbone, size, "fp32", "torch", batch_size=batch_size)
        assert embedder.batch() == expected == batch_size_for("torch", batch_size, "cpu", size, backbone.name)
        table = line_windows_table(job, SPEC, embedder)
        assert len(table) == n_windows and backbone.n_forward == -(-n_windows // expected)
    backbone = _small_backbone()
    backbone.name = "small+instnorm"
    assert Embedder({}, backbone, "224:stretch", "fp32", "openvino").batch() == 4


def test_a_local_cluster_address_names_its_workers():
    from seis_assets.core.distributed import local_cluster_workers
    from seis_assets.resources import DaskCluster

    assert local_cluster_workers("local", cores=6) == 6 and local_cluster_workers("local:3") == 3
    assert local_cluster_workers("tcp://10.0.0.5:8786") is None and local_cluster_workers("localhost:8786") is None
    with pytest.raises(ValueError, match="at least one worker"):
        local_cluster_workers("local:0")
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="'local:0'"):
        DaskCluster(scheduler_address="local:0").line_runner(SPEC, {}, None, "cpu")


LOCAL_CLUSTER_CHILD = """
import json, sys
import numpy as np, psutil
from seis_assets.core.backbones import load_backbone
from seis_assets.core.distributed import dask_client
from seis_assets.core.feature_table import table_identity
from seis_assets.core.facies import write_facies_outputs
from seis_assets.core.segy import SegyError, open_survey, section_direction
from seis_assets.core.storage import read_parquet
from seis_assets.core.window_features import write_survey_windows
from seis_assets.resources import DaskCluster
from seis_assets_tests.core.test_window_features import SPEC, _write
cube, out = sys.argv[1], sys.argv[2]
identity = table_identity(load_backbone("texture"), "native", "fp32")
_write(cube, out + "/local.parquet", identity)
with dask_client("local:2") as client:
    workers = len(client.scheduler_info()["workers"])
    during = len(psutil.Process().children(recursive=True))
runner = DaskCluster(scheduler_address="local:2").line_runner(SPEC, identity, None, "cpu")
with open_survey(cube) as survey:
    write_survey_windows(survey, ["inline"], SPEC, identity, out + "/dask.parquet", runner)
a, b = read_parquet(out + "/local.parquet"), read_parquet(out + "/dask.parquet")
left = [p.cmdline() for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())]
print(json.dumps({"workers": workers, "during": during, "left": left,
                  "same": bool(a.drop(columns="features").equals(b.drop(columns="features"))
                               and np.allclose(np.stack(a["features"]), np.stack(b["features"]), atol=1e-6))}))
"""


@pytest.mark.slow
def test_a_local_cluster_address_starts_workers_for_the_run_and_stops_them(tmp_path):
    """``SEIS_DASK_SCHEDULER=local:2``: the run starts a LocalCluster of two one-thread workers, maps the lines on it
    (the local run's table) and stops every worker process when done. Run in a child process of its own process
    group, which the test removes whatever happens."""
    pytest.importorskip("distributed")
    import json

    cube = write_cube(tmp_path / "c.sgy", [1, 2, 3, 4], range(1, 51), n_samples=40)
    proc = subprocess.Popen([sys.executable, "-c", LOCAL_CLUSTER_CHILD, str(cube), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["workers"] == 2 and result["during"] >= 2  # two worker processes while the block ran
    assert result["left"] == [] and result["same"]
