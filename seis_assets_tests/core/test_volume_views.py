"""Time slices and the per-inline class summary of a labels SEG-Y (core/volume_views.py)."""

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from upath import UPath

from seis_assets.core.facies import legend_table, unit_legend
from seis_assets.core.segy_write import write_inlines
from seis_assets.core.volume_views import (
    NO_CLASS,
    SUMMARY_COLUMNS,
    volume_summary,
    write_time_slices,
    write_volume_summary,
)

INLINES = list(range(10, 18))  # 8 inlines
XLINES = list(range(20, 32))  # 12 crosslines
N_SAMPLES = 50  # 0..196 ms at 4 ms


def _labels_cube() -> np.ndarray:
    """(inline, crossline, sample) class indices of known regions.

    Inlines 10-13: above 100 ms class 0 on crosslines 20-25 and 1 on 26-31; from 100 ms class 2.
    Inlines 14-17: above 100 ms class 1; 100-148 ms class 2; 152-196 ms class 0 on crosslines 20-28 and no class (-1)
    on 29-31.
    """
    cube = np.zeros((8, 12, N_SAMPLES), dtype=np.float32)
    cube[:4, 6:, :25] = 1
    cube[:4, :, 25:] = 2
    cube[4:, :, :25] = 1
    cube[4:, :, 25:38] = 2
    cube[4:, 9:, 38:] = -1
    return cube


@pytest.fixture(scope="module")
def labels_sgy(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "facies_labels.sgy"
    return write_inlines(path, INLINES, XLINES, iter(_labels_cube()), text=["test labels cube"])


@pytest.fixture(scope="module")
def legend():
    return legend_table({0: "chaotic", 1: "salt dome", 2: "fault"}, 3)


def _share(table: pd.DataFrame, inline: int, time_from: float, cls: str) -> float:
    row = table[(table["inline"] == inline) & (table["time_from_ms"] == time_from) & (table["class"] == cls)]
    assert len(row) == 1
    return float(row["share"].iloc[0])


def test_volume_summary_exact_shares(labels_sgy, legend):
    table = volume_summary(labels_sgy, legend)
    assert list(table.columns) == SUMMARY_COLUMNS
    assert set(table["class"]) == {"chaotic", "salt dome", "fault", NO_CLASS}
    assert len(table) == 8 * 2 * 4  # every (inline, bin) has every class
    assert set(zip(table["time_from_ms"], table["time_to_ms"])) == {(0.0, 100.0), (100.0, 200.0)}
    np.testing.assert_allclose(table.groupby(["inline", "time_from_ms"])["share"].sum(), 1.0)
    for il in (10, 13):
        assert _share(table, il, 0, "chaotic") == 0.5 and _share(table, il, 0, "salt dome") == 0.5
        assert _share(table, il, 100, "fault") == 1.0
    for il in (14, 17):
        assert _share(table, il, 0, "salt dome") == 1.0
        # 25 samples in 100-196 ms: 13 of class 2; 12 below 152 ms, 9 of 12 crosslines class 0, 3 no class
        assert _share(table, il, 100, "fault") == pytest.approx(13 / 25)
        assert _share(table, il, 100, "chaotic") == pytest.approx(12 / 25 * 9 / 12)
        assert _share(table, il, 100, NO_CLASS) == pytest.approx(12 / 25 * 3 / 12)


def test_volume_summary_bins_and_merged_categories(labels_sgy):
    # clusters 0 and 1 are both chaotic: one class; 50 ms bins start at multiples of 50
    legend = legend_table({0: "chaotic", 1: "chaotic", 2: "fault"}, 3)
    table = volume_summary(labels_sgy, legend, bin_ms=50)
    assert sorted(set(table["time_from_ms"])) == [0.0, 50.0, 100.0, 150.0]
    assert _share(table, 12, 50, "chaotic") == 1.0 and _share(table, 15, 150, NO_CLASS) == pytest.approx(3 / 12)
    with pytest.raises(ValueError, match="bin_ms must be > 0"):
        volume_summary(labels_sgy, legend, bin_ms=0)


def test_write_volume_summary_to_a_url(labels_sgy, legend):
    path = write_volume_summary(labels_sgy, legend, "memory://views/out")
    assert path.endswith("views/out/facies_volume_summary.csv")
    with UPath(path).open("r") as fh:
        back = pd.read_csv(fh)
    pd.testing.assert_frame_equal(back, volume_summary(labels_sgy, legend), check_dtype=False)


def _pixels(png: str, colour: str) -> np.ndarray:
    """(row, col) of the pixels of exactly ``colour`` (opaque class cells; the legend's patches are translucent)."""
    rgb = np.round(mpimg.imread(png)[..., :3] * 255).astype(int)
    want = np.round(np.array(to_rgb(colour)) * 255).astype(int)
    return np.argwhere((rgb == want).all(axis=-1))


def test_time_slices_colours_where_expected(tmp_path, labels_sgy, legend):
    files = write_time_slices(labels_sgy, legend, [40, 170], tmp_path / "views")
    assert set(files) == {"time_slice_40ms.png", "time_slice_170ms.png"}
    colour = dict(zip(legend["category"], legend["colour"]))

    # 40 ms: chaotic in the low inlines (bottom: inline numbers grow upwards) on the low crosslines (left)
    png = files["time_slice_40ms.png"]
    chaotic, salt = _pixels(png, colour["chaotic"]), _pixels(png, colour["salt dome"])
    assert len(chaotic) > 100 and 2.5 < len(salt) / len(chaotic) < 3.5  # 24 and 72 cells
    assert chaotic[:, 0].mean() > salt[:, 0].mean() and chaotic[:, 1].mean() < salt[:, 1].mean()
    assert not len(_pixels(png, colour["fault"]))

    # 170 ms (nearest sample 172 ms): fault below, chaotic top left, no class (blank, white) top right
    png = files["time_slice_170ms.png"]
    fault, chaotic = _pixels(png, colour["fault"]), _pixels(png, colour["chaotic"])
    assert len(fault) > 100 and len(chaotic) > 100 and not len(_pixels(png, colour["salt dome"]))
    assert fault[:, 0].min() > chaotic[:, 0].max()
    top, bottom = chaotic[:, 0].min() + 2, chaotic[:, 0].max() - 2
    left, right = chaotic[:, 1].max() + 3, fault[:, 1].max() - 2
    blank = mpimg.imread(png)[top:bottom, left:right, :3]
    assert blank.size and (blank == 1.0).all()


def test_time_slice_unit_legend_colours(tmp_path, labels_sgy):
    legend = unit_legend(3)  # maps without categories: one distinct colour per row, as facies_map.png
    png = write_time_slices(labels_sgy, legend, [0], tmp_path)["time_slice_0ms.png"]
    counts = [len(_pixels(png, c)) for c in legend["colour"]]
    assert counts[0] > 100 and counts[1] > 100 and counts[2] == 0


def test_time_outside_the_range_raises(tmp_path, labels_sgy, legend):
    with pytest.raises(ValueError, match=r"time 1000 ms is outside facies_labels.sgy's time range 0-196 ms"):
        write_time_slices(labels_sgy, legend, [40, 1000], tmp_path / "none")
    with pytest.raises(ValueError, match=r"time -4 ms is outside"):
        write_time_slices(labels_sgy, legend, [-4], tmp_path / "none")
    assert not (tmp_path / "none").exists()  # nothing written, not even the first, valid time


def test_legend_without_index_is_refused(tmp_path, labels_sgy):
    with pytest.raises(ValueError, match="the legend needs the columns index and category"):
        volume_summary(labels_sgy, pd.DataFrame({"category": ["a"]}))
