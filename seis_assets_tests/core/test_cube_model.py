"""The benchmark cube (core/cube_model.py) and its streaming writer (segy_write.write_inlines)."""

import gc
import hashlib
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest
import segyio
from scipy import ndimage

from seis_assets.core.cube_model import (
    Carrier,
    carried_inlines,
    generated_section,
    make_cube,
    read_section,
)
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_write import write_inlines

SECTIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sections"
INLINE362 = SECTIONS / "f3_inline362.sgy"


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _envelope(a: np.ndarray) -> np.ndarray:
    """Where the section is bright and where dim, at the scale of a few traces and samples."""
    return ndimage.gaussian_filter(np.abs(a), 4.0)


@pytest.fixture(scope="module")
def section():
    return generated_section(240, 220, seed=1)


@pytest.fixture(scope="module")
def small_cube(tmp_path_factory, section):
    """The --small cube (6 inlines x 160 crosslines x 200 samples) from a generated section."""
    path = tmp_path_factory.mktemp("cube") / "small.sgy"
    make_cube(path, section, 6, 160, 200, seed=3)
    return path


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_generated_section_has_layers_and_a_dim_body():
    g = generated_section(300, 240, seed=0)
    assert g.data.shape == (300, 240) and g.data.dtype == np.float32 and g.inline is None
    assert np.abs(g.data).max() <= 1.0
    # the salt interior (around 60 % of the line, near the bottom) is dimmer than the layers above it
    inside = np.abs(g.data[175:185, 215:235]).mean()
    layers = np.abs(g.data[175:185, 40:100]).mean()
    assert inside < 0.7 * layers


def test_small_cube_geometry_and_headers(small_cube):
    with segyio.open(str(small_cube)) as f:
        assert f.sorting == segyio.TraceSortingFormat.INLINE_SORTING
        assert list(f.ilines) == list(range(100, 106)) and list(f.xlines) == list(range(300, 460))
        np.testing.assert_array_equal(f.samples, np.arange(200) * 4.0)
        assert int(f.format) == 5 and f.bin[segyio.BinField.Interval] == 4000 and f.bin[segyio.BinField.Samples] == 200
        h = f.header[160 + 5]  # inline 101, crossline 305
        F = segyio.TraceField
        assert (h[F.INLINE_3D], h[F.CROSSLINE_3D], h[F.CDP]) == (101, 305, 166)
        assert (h[F.TRACE_SAMPLE_COUNT], h[F.TRACE_SAMPLE_INTERVAL]) == (200, 4000)
        x, y = f.attributes(F.CDP_X)[:], f.attributes(F.CDP_Y)[:]
        assert set(np.diff(x.reshape(6, 160), axis=1).ravel()) == {25}
        assert set(np.diff(y.reshape(6, 160), axis=0).ravel()) == {25}
        text = segyio.tools.wrap(f.text[0])
        assert "GENERATED BENCHMARK CUBE - NOT A REAL 3-D SURVEY" in text and "generated section (seed 1)" in text
        assert np.isfinite(f.iline[103]).all() and f.iline[103].std() > 0
    with open_survey(small_cube) as survey:  # the project's own reader agrees
        info = survey.info
        assert info.structured and info.sample_interval_ms == 4.0 and info.n_traces == 6 * 160
        assert info.trace_spacing_m == {"inline": 25.0, "xline": 25.0}


def test_neighbouring_inlines_alike_far_inlines_differ(section):
    cube = list(carried_inlines(section, 120, 160, 200, seed=1))
    assert len(cube) == 120 and cube[0].shape == (160, 200) and cube[0].dtype == np.float32
    neighbours = [_corr(cube[i], cube[i + 1]) for i in range(119)]
    assert min(neighbours) > 0.9  # a smooth change from inline to inline
    assert abs(_corr(cube[0], cube[119])) < 0.5  # the fields drift: a survey, not one line repeated


def test_anchor_inline_is_the_source(section):
    c = Carrier(section, 9, 240, 220, seed=2, anchor=4)
    assert _corr(c.inline(4), section.data) > 0.98
    assert _corr(c.inline(0), section.data) < _corr(c.inline(3), section.data)


def test_same_seed_same_bytes_other_seed_other_cube(tmp_path, section, small_cube):
    again = make_cube(tmp_path / "again.sgy", section, 6, 160, 200, seed=3)
    other = make_cube(tmp_path / "other.sgy", section, 6, 160, 200, seed=4)
    assert _sha(again) == _sha(small_cube)
    assert _sha(other) != _sha(small_cube)


def test_more_samples_and_fewer_traces_than_the_source(section):
    # 300 samples from a 220-sample source (mirrored below its end), 100 crosslines from 240 traces (low-passed)
    block = Carrier(section, 3, 100, 300, seed=0).inline(1)
    assert block.shape == (100, 300) and np.isfinite(block).all()
    assert block[:, 230:].std() > 0.3 * block[:, :200].std()


def test_writer_keeps_one_inline(tmp_path):
    """write_inlines drops each inline before asking for the next: no whole-cube array is ever held."""
    alive: list[weakref.ref] = []
    seen_alive: list[int] = []

    def blocks():
        for i in range(8):
            seen_alive.append(sum(r() is not None for r in alive))  # blocks still referenced when this one is made
            b = np.full((5, 12), float(i), dtype=np.float32)
            alive.append(weakref.ref(b))
            yield b
            del b
            gc.collect()

    path = write_inlines(tmp_path / "c.sgy", range(1, 9), range(10, 15), blocks())
    assert seen_alive == [0] * 8
    with segyio.open(path) as f:
        np.testing.assert_array_equal(f.iline[5], np.full((5, 12), 4.0))


def test_memory_does_not_grow_with_inlines(tmp_path, section):
    """Peak traced memory of writing 40 inlines is that of writing 10 (one inline's working set)."""

    def peak(n: int) -> int:
        gc.collect()
        tracemalloc.start()
        make_cube(tmp_path / f"c{n}.sgy", section, n, 160, 200, seed=0)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(10), peak(40)
    assert large < 1.25 * small
    assert large < 40 * 160 * 200 * 4  # less than the 40-inline cube's samples


def test_writer_refuses_wrong_blocks(tmp_path):
    good = [np.zeros((4, 10), np.float32)] * 3
    with pytest.raises(ValueError, match="3 inlines asked for, 2 blocks given"):
        write_inlines(tmp_path / "a.sgy", [1, 2, 3], range(4), good[:2])
    with pytest.raises(ValueError, match="more blocks than the 2 inlines"):
        write_inlines(tmp_path / "b.sgy", [1, 2], range(4), good)
    with pytest.raises(ValueError, match=r"inline 2: block of shape \(3, 10\)"):
        write_inlines(tmp_path / "c.sgy", [1, 2], range(4), [good[0], np.zeros((3, 10))])
    with pytest.raises(ValueError, match="local files only"):
        write_inlines("memory://x/c.sgy", [1], range(4), good[:1])
    assert not list(tmp_path.iterdir())  # nothing half-written is left


# --------------------------------------------------------------------------- the real line
@pytest.fixture(scope="module")
def inline362():
    if not INLINE362.exists():
        pytest.skip(f"real SEG-Y line not found at {INLINE362}")
    return read_section(INLINE362)


def test_real_line_carried_to_an_f3_sized_cube(inline362):
    """F3 inline 362 in the default geometry (inlines 100-750): inline 362 is the source plus noise, and the middle
    inline (425, 63 inlines away) has moved (reflectors shifted) but keeps the source's bright and dim parts."""
    assert inline362.data.shape == (951, 463) and inline362.inline == 362 and inline362.first_xline == 300
    carrier = Carrier(inline362, 651, 951, 462, seed=0, anchor=362 - 100)
    source = inline362.data[:, :462]
    assert _corr(carrier.inline(262), source) > 0.98
    middle = carrier.inline(325)
    assert _corr(middle, source) < 0.9
    assert _corr(_envelope(middle), _envelope(source)) > 0.8
