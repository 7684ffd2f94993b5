"""MDIO surveys: a generated SEG-Y cube and its MDIO conversion read, cut and painted the same; labels written to MDIO
read back; a store read chunk row by chunk row; bad stores named. Needs the extra ``seis_assets[mdio]``."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import segyio

pytest.importorskip("mdio", reason="MDIO tests need the optional extra: pip install -e '.[mdio]' (PyPI multidimio)")

from sklearn.cluster import KMeans  # noqa: E402

from seis_assets.core.facies import _LinePainter  # noqa: E402
from seis_assets.core.mdio_survey import (  # noqa: E402
    COMPLETE_ATTR,
    MdioError,
    MdioSurvey,
    is_mdio,
    open_any_survey,
    open_mdio_survey,
    segy_to_mdio_store,
    write_mdio_labels,
)
from seis_assets.core.section_grid import at_patch_scale  # noqa: E402
from seis_assets.core.segy import SegyError, open_survey  # noqa: E402
from seis_assets.core.segy_windows import cut_windows, iter_windows  # noqa: E402
from seis_assets.core.segy_write import write_cube, write_like  # noqa: E402
from seis_assets_tests.core.test_segy import _little_endian_copy  # noqa: E402

INLINES, XLINES, N_SAMPLES = range(10, 20), range(100, 140, 2), 50
#: (inlines, crosslines, samples) per chunk: 5 chunk rows along inlines, 3 along crosslines, 4 along time
CHUNKS = (2, 8, 16)
#: what differs between a SEG-Y survey's info and its MDIO conversion's
OWN_FIELDS = {"path", "name", "format", "interval_source", "endian"}  # "endian": the file's byte order


@pytest.fixture(scope="module", autouse=True)
def one_import_worker():
    """MDIO converts with a process pool of every core by default; one worker on the shared test machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MDIO__IMPORT__CPU_COUNT", "1")
        yield


def _set_headers(path, **fields):
    """Set trace header fields (segyio.TraceField names -> value or function of (inline, crossline)) in every trace."""
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        for i in range(f.tracecount):
            h = f.header[i]
            il, xl = h[segyio.TraceField.INLINE_3D], h[segyio.TraceField.CROSSLINE_3D]
            f.header[i] = {getattr(segyio.TraceField, k): (v(il, xl) if callable(v) else v) for k, v in fields.items()}


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    """{name: (segy, mdio)}: ``ieee`` a 4 ms IEEE-float cube; ``ibm`` a 2 ms IBM-float cube starting at 100 ms with
    coordinates in centimetres (scalar -100); ``little`` the IEEE cube written little-endian."""
    root = tmp_path_factory.mktemp("mdio_cubes")
    ieee = write_cube(root / "ieee.sgy", INLINES, XLINES, n_samples=N_SAMPLES)
    ibm = write_cube(root / "ibm.sgy", INLINES, XLINES, n_samples=N_SAMPLES, fmt=1, dt_us=2000, seed=3)
    _set_headers(ibm, DelayRecordingTime=100, SourceGroupScalar=-100,
                 CDP_X=lambda il, xl: 100 * (1000 + 25 * xl), CDP_Y=lambda il, xl: 100 * (5000 + 25 * il))
    little = _little_endian_copy(ieee, root / "little.sgy")  # SEG-Y rev 2 allows little-endian files
    return {name: (str(sgy), segy_to_mdio_store(sgy, root / f"{name}.mdio", chunks=CHUNKS))
            for name, sgy in (("ieee", ieee), ("ibm", ibm), ("little", little))}


@pytest.fixture
def store(cubes, tmp_path):
    """A private copy of the IEEE cube's store (tests may write into it or break it) and its SEG-Y."""
    sgy, mdio = cubes["ieee"]
    copy = tmp_path / "copy.mdio"
    shutil.copytree(mdio, copy)
    return sgy, str(copy)


# --------------------------------------------------------------------------- the same survey
@pytest.mark.parametrize("name", ["ieee", "ibm", "little"])
def test_every_line_and_trace_of_the_mdio_store_equals_the_segy_cube(cubes, name):
    sgy, mdio = cubes[name]
    with open_survey(sgy) as s, open_mdio_survey(mdio) as m:
        assert isinstance(m, MdioSurvey) and m.info.structured
        a, b = s.info.as_dict(), m.info.as_dict()
        assert {k: a[k] for k in a if k not in OWN_FIELDS} == {k: b[k] for k in b if k not in OWN_FIELDS}
        assert m.info.name == f"{name}.mdio" and m.info.interval_source == "time coordinate"
        assert m.info.sample_interval_ms == (2.0 if name == "ibm" else 4.0)
        assert m.info.t0_ms == (100.0 if name == "ibm" else 0.0)
        assert m.info.trace_spacing_m == {"inline": 25.0, "xline": 25.0}
        np.testing.assert_array_equal(m.trace_inline, s.trace_inline)
        np.testing.assert_array_equal(m.trace_xline, s.trace_xline)
        for direction in ("inline", "xline"):
            assert m.lines(direction) == s.lines(direction)
            for number in s.lines(direction):
                want, want_idx = s.read_line(direction, number)
                got, idx = m.read_line(direction, number)
                np.testing.assert_array_equal(idx, want_idx)
                assert got.dtype == np.float32 and np.array_equal(got, want), (direction, number)
        for i in range(0, s.info.n_traces, 7):
            np.testing.assert_array_equal(m.trace(i), s.trace(i))


@pytest.mark.parametrize("scaling", ["per_window", "survey"])
def test_windows_cut_from_the_mdio_store_are_the_segy_cubes_windows(cubes, scaling):
    """Same positions, same samples, same survey scale: the maps cannot differ."""
    sgy, mdio = cubes["ieee"]
    kw = dict(scaling=scaling, n_traces=8, n_samples=16, stride=3, directions=("inline", "xline"))
    with open_survey(sgy) as s, open_mdio_survey(mdio) as m:
        pos_s, patches_s, scale_s = cut_windows(s, **kw)
        pos_m, patches_m, scale_m = cut_windows(m, **kw)
    assert scale_m == scale_s
    pd.testing.assert_frame_equal(pos_m.drop(columns="survey"), pos_s.drop(columns="survey"))
    assert (pos_m["survey"] == "ieee.mdio").all()
    assert patches_m.shape == patches_s.shape and np.array_equal(patches_m, patches_s)


def test_a_2_ms_store_resampled_to_the_patches_rate_gives_the_segy_cubes_windows(cubes):
    sgy, mdio = cubes["ibm"]
    with open_survey(sgy) as s, open_mdio_survey(mdio) as m:
        rs, rm = at_patch_scale(s, 4.0), at_patch_scale(m, 4.0)
        assert rm.info.n_samples == rs.info.n_samples == 25
        for (ps, ws), (pm, wm) in zip(iter_windows(rs, n_traces=8, n_samples=12, stride=4),
                                      iter_windows(rm, n_traces=8, n_samples=12, stride=4), strict=True):
            assert {**ps, "survey": ""} == {**pm, "survey": ""} and np.array_equal(ws, wm)


def test_the_painted_map_of_the_mdio_store_is_the_segy_cubes_map(cubes, tmp_path):
    """Windows -> clusters -> votes painted per inline -> labels written: SEG-Y through write_like, MDIO through
    write_mdio_labels; both volumes read back equal."""
    sgy, mdio = cubes["ieee"]
    store = shutil.copytree(mdio, tmp_path / "map.mdio")
    kw = dict(n_traces=8, n_samples=16, stride=3)
    with open_survey(sgy) as s, open_mdio_survey(store) as m:
        windows, patches, _ = cut_windows(s, **kw)
        windows_m, patches_m, _ = cut_windows(m, **kw)
        model = KMeans(3, n_init=2, random_state=0).fit(patches.reshape(len(patches), -1))
        clusters, clusters_m = model.labels_, model.predict(patches_m.reshape(len(patches_m), -1))
        np.testing.assert_array_equal(clusters_m, clusters)
        write_like(sgy, tmp_path / "labels.sgy", _LinePainter(s, windows, clusters, None, 3).label_blocks())
        write_mdio_labels(store, _LinePainter(m, windows_m, clusters_m, None, 3).label_blocks())
    with open_survey(tmp_path / "labels.sgy") as ls, open_mdio_survey(store, variable="facies") as lm:
        assert lm.info.format == "mdio int16"  # on disk; read_line gives float32 like every survey
        for number in ls.lines("inline"):
            want, _ = ls.read_line("inline", number)
            got, _ = lm.read_line("inline", number)
            np.testing.assert_array_equal(got, want)
        assert len(np.unique(want)) > 1


# --------------------------------------------------------------------------- lazy, chunk by chunk
def test_walking_the_inlines_reads_each_chunk_row_once(store):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        for number in m.lines("inline"):
            m.read_line("inline", number)
        assert m.slab_reads == 5  # 10 inlines in chunk rows of 2
        for number in m.lines("xline"):
            m.read_line("xline", number)
        assert m.slab_reads == 5 + 3  # 20 crosslines in chunk rows of 8


def test_a_line_reads_only_its_chunks_and_a_corrupt_chunk_names_the_line(store):
    """Garbage in the chunks of inlines 14-15: the inlines before read as before; inline 15 is an MdioError."""
    sgy, mdio = store
    chunk_files = list((Path(mdio) / "amplitude" / "c" / "2").rglob("*"))
    assert any(p.is_file() for p in chunk_files)
    for p in chunk_files:
        if p.is_file():
            p.write_bytes(b"not a blosc frame" * 10)
    with open_survey(sgy) as s, open_mdio_survey(mdio) as m:
        for number in (10, 11, 12, 13):
            np.testing.assert_array_equal(m.read_line("inline", number)[0], s.read_line("inline", number)[0])
        with pytest.raises(MdioError, match=r"copy\.mdio: inline 15: cannot read the chunks of 'amplitude'"):
            m.read_line("inline", 15)


def test_a_slab_above_the_cache_budget_is_never_held_and_lines_are_read_alone(store):
    sgy, mdio = store
    with open_survey(sgy) as s, open_mdio_survey(mdio, cache_mb=0.001) as m:
        for direction in ("inline", "xline"):
            for number in s.lines(direction):
                np.testing.assert_array_equal(m.read_line(direction, number)[0], s.read_line(direction, number)[0])
        np.testing.assert_array_equal(m.trace(17), s.trace(17))
        assert m._slab is None and m.slab_reads == len(s.lines("inline")) + len(s.lines("xline"))


# --------------------------------------------------------------------------- labels out
def _blocks(survey, order=("inline",), rng=None):
    """(trace indices, class per sample) one line at a time: class = (trace + sample) % 5."""
    blocks = []
    for direction in order:
        for number in survey.lines(direction):
            idx = survey.line_traces(direction, number)
            blocks.append((idx, ((idx[:, None] + np.arange(survey.info.n_samples)) % 5).astype(np.float32)))
    if rng is not None:
        blocks = [blocks[i] for i in rng.permutation(len(blocks))]
    return blocks


def _labels_volume(mdio, variable="facies"):
    with open_mdio_survey(mdio, variable=variable) as f:
        return {n: f.read_line("inline", n)[0] for n in f.lines("inline")}


def test_labels_written_into_the_store_read_back_with_the_amplitudes_geometry(store):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        blocks = _blocks(m)
        expected = {n: b[1] for n, b in zip(m.lines("inline"), blocks)}
    assert write_mdio_labels(mdio, iter(blocks)) == mdio
    got = _labels_volume(mdio)
    assert got.keys() == expected.keys() and all(np.array_equal(got[n], expected[n]) for n in got)
    import xarray as xr

    ds = xr.open_zarr(mdio, consolidated=False)
    assert ds["facies"].dims == ds["amplitude"].dims and ds["facies"].dtype == np.int16
    assert ds["facies"].encoding["chunks"] == ds["amplitude"].encoding["chunks"] == CHUNKS
    assert ds["facies"].attrs[COMPLETE_ATTR] is True and {"cdp_x", "cdp_y"} <= set(ds["facies"].coords)
    assert not [p.name for p in Path(mdio).iterdir() if ".tmp-" in p.name]


def test_labels_in_any_block_order_and_into_a_store_beside_the_input(store, tmp_path):
    """Crossline blocks in random order (chunk rows revisited) into a new store that keeps the input untouched."""
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        inline_blocks = _blocks(m)
        expected = {n: b[1] for n, b in zip(m.lines("inline"), inline_blocks)}
        blocks = _blocks(m, order=("xline",), rng=np.random.default_rng(0))
    dest = tmp_path / "facies.mdio"
    assert write_mdio_labels(mdio, iter(blocks), dest=dest) == str(dest)
    assert "facies" not in [p.name for p in Path(mdio).iterdir()]
    got = _labels_volume(dest)
    assert all(np.array_equal(got[n], expected[n]) for n in expected)
    with open_mdio_survey(dest, variable="facies") as f, open_mdio_survey(mdio) as m:
        assert f.info.inlines == m.info.inlines and f.info.xlines == m.info.xlines
        assert f.info.t0_ms == m.info.t0_ms and f.info.trace_spacing_m == m.info.trace_spacing_m
    # again into the same store: the variable is replaced, the store (and any other variable) kept
    write_mdio_labels(mdio, iter(inline_blocks), dest=dest, variable="second")
    write_mdio_labels(mdio, iter([(i, v * 0 + 4) for i, v in inline_blocks]), dest=dest)
    assert all((v == 4).all() for v in _labels_volume(dest).values())
    assert all(np.array_equal(v, expected[n]) for n, v in _labels_volume(dest, "second").items())


def test_labels_are_not_written_into_a_store_of_another_geometry(cubes, store):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        blocks = _blocks(m)
    with pytest.raises(MdioError, match="ibm.mdio: holds a store whose inline, crossline or time coordinates differ"):
        write_mdio_labels(mdio, iter(blocks), dest=cubes["ibm"][1])
    assert not (Path(cubes["ibm"][1]) / "facies").exists()


def test_a_failed_labels_write_leaves_the_older_map_whole_and_no_half_variable(store):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        blocks = _blocks(m)
    write_mdio_labels(mdio, iter(blocks))
    before = _labels_volume(mdio)

    def failing():
        yield blocks[0][0], blocks[0][1] * 0
        raise RuntimeError("the painter died")

    with pytest.raises(RuntimeError, match="painter died"):
        write_mdio_labels(mdio, failing())
    after = _labels_volume(mdio)
    assert all(np.array_equal(after[n], before[n]) for n in before)
    assert not [p.name for p in Path(mdio).iterdir() if ".tmp-" in p.name]
    with pytest.raises(RuntimeError):
        write_mdio_labels(mdio, failing(), variable="other")
    assert not (Path(mdio) / "other").exists()


def test_a_variable_marked_incomplete_is_refused(store):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        write_mdio_labels(mdio, iter(_blocks(m)))
    meta = Path(mdio) / "facies" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"][COMPLETE_ATTR] = False
    meta.write_text(json.dumps(doc))
    with pytest.raises(MdioError, match="'facies' was not written to the end"):
        with open_mdio_survey(mdio, variable="facies"):
            pass


@pytest.mark.parametrize("case, message", [
    ("shape", "block of shape"), ("twice", "written twice"), ("missing", "traces were not written"),
    ("fraction", "whole numbers"), ("negative", r"lie in 0\.\.32767"),
])
def test_bad_label_blocks_are_refused(store, case, message):
    _, mdio = store
    with open_mdio_survey(mdio) as m:
        blocks = _blocks(m)
    idx, values = blocks[0]
    bad = {
        "shape": [(idx, values[:, :-1])] + blocks[1:],
        "twice": blocks + [blocks[0]],
        "missing": blocks[1:],
        "fraction": [(idx, values + 0.5)] + blocks[1:],
        "negative": [(idx, values - 1)] + blocks[1:],
    }[case]
    with pytest.raises(ValueError, match=message):
        write_mdio_labels(mdio, iter(bad))
    assert not (Path(mdio) / "facies").exists()


# --------------------------------------------------------------------------- bad stores, dispatch
def test_missing_stores_folders_that_are_not_stores_and_missing_variables_are_named(store, tmp_path):
    _, mdio = store
    with pytest.raises(MdioError, match=r"nope\.mdio: no such MDIO store"):
        with open_mdio_survey(tmp_path / "nope.mdio"):
            pass
    (tmp_path / "empty.mdio").mkdir()
    with pytest.raises(MdioError, match="not an MDIO store: no zarr.json"):
        with open_mdio_survey(tmp_path / "empty.mdio"):
            pass
    with pytest.raises(MdioError, match=r"no variable 'seismic' .* it holds \['amplitude', 'headers', 'trace_mask'\]"):
        with open_mdio_survey(mdio, variable="seismic"):
            pass
    with pytest.raises(MdioError, match=r"'trace_mask' has dims \('inline', 'crossline'\)"):
        with open_mdio_survey(mdio, variable="trace_mask"):
            pass
    assert issubclass(MdioError, SegyError)


def test_nan_samples_in_a_line_are_an_error_naming_the_store_and_line(store):
    import zarr

    sgy, mdio = store
    amplitude = zarr.open_array(mdio, path="amplitude", mode="r+")
    amplitude[3, 5, 7] = np.nan  # inline 13, crossline 110
    with open_mdio_survey(mdio) as m:
        m.read_line("inline", 12)
        with pytest.raises(MdioError, match=r"copy\.mdio: inline 13 holds NaN or Inf samples"):
            m.read_line("inline", 13)
        with pytest.raises(MdioError, match="xline 110 holds NaN"):
            m.read_line("xline", 110)
        with pytest.raises(MdioError, match="no traces with inline 99"):
            m.read_line("inline", 99)


def test_is_mdio_and_open_any_survey_dispatch_on_what_the_path_is(store, tmp_path):
    sgy, mdio = store
    assert is_mdio(mdio) and not is_mdio(sgy) and not is_mdio(tmp_path / "nope.mdio") and not is_mdio(tmp_path)
    with open_any_survey(mdio) as m, open_any_survey(sgy) as s:
        assert isinstance(m, MdioSurvey) and m.info.n_traces == s.info.n_traces
        assert type(s).__name__ == "Survey"


def test_a_cube_with_line_numbers_at_other_header_bytes_converts_by_those_bytes(tmp_path):
    """Inline at byte 9 (field record), crossline at byte 21 (CDP); bytes 189/193 zero."""
    sgy = write_cube(tmp_path / "bytes.sgy", range(3, 6), range(1, 9), n_samples=20)
    _set_headers(sgy, FieldRecord=lambda il, xl: il, INLINE_3D=0, CROSSLINE_3D=0)
    mdio = segy_to_mdio_store(sgy, tmp_path / "bytes.mdio", iline_byte=9, xline_byte=21)
    with open_survey(sgy, 9, 21) as s, open_mdio_survey(mdio, 9, 21) as m:
        assert m.info.inlines == (3, 4, 5) and m.info.xlines == tuple(range(1, 9))
        for number in s.lines("xline"):
            np.testing.assert_array_equal(m.read_line("xline", number)[0], s.read_line("xline", number)[0])
    with pytest.raises(FileExistsError):
        segy_to_mdio_store(sgy, mdio, iline_byte=9, xline_byte=21)


# --------------------------------------------------------------------------- a store in a bucket
@pytest.mark.slow
def test_a_store_in_a_bucket_reads_like_the_local_one_and_takes_labels(cubes, tmp_path, monkeypatch):
    """A real S3-compatible server (moto, as the scale tests start it), found through AWS_ENDPOINT_URL."""
    import s3fs

    from seis_assets_tests.scale.servers import FAKE_CREDENTIALS, moto_s3_server

    sgy, mdio = cubes["ieee"]
    with moto_s3_server(tmp_path / "moto.log") as endpoint:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("seis-mdio")
        fs.put(mdio, "seis-mdio/ieee.mdio", recursive=True)
        url = "s3://seis-mdio/ieee.mdio"
        assert is_mdio(url)
        with open_survey(sgy) as s, open_mdio_survey(url) as m:
            assert m.info.path == url and m.info.name == "ieee.mdio"
            for direction in ("inline", "xline"):
                for number in s.lines(direction):
                    np.testing.assert_array_equal(m.read_line(direction, number)[0], s.read_line(direction, number)[0])
            blocks = _blocks(m)
        write_mdio_labels(url, iter(blocks))
        got = _labels_volume(url)
        assert all(np.array_equal(got[n], b[1]) for n, b in zip(sorted(got), blocks))
        assert not [p for p in fs.ls("seis-mdio/ieee.mdio") if ".tmp-" in p]
        s3fs.S3FileSystem.clear_instance_cache()
