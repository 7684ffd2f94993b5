"""Resizing to the network input: stretch / pad / crop, antialiasing, and the resize mode in the features' identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seis_assets.core.features import extract_features
from seis_assets.core.preprocess import (
    DEFAULT_RESIZE,
    RESIZE_MODES,
    input_spec,
    preprocess,
)
from seis_assets_tests.core.test_features import _dataset, _tiny_backbone

PLAIN = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # no normalisation: the output is intensity in [0, 1]


def _dipping_line(h=150, w=300, slope=0.25, width=3.0):
    """A [-1, 1] patch: zero amplitude with one bright reflector z = z0 + slope * x (rows per column)."""
    z = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    line = np.exp(-0.5 * ((z - (h / 2 - slope * w / 2) - slope * x) / width) ** 2)
    return line.astype(np.float32)[None]  # (1, H, W), values 0..1, zero amplitude elsewhere


def _measured_slope(img):
    """Slope (rows per column) of the brightest row per column, fitted where the reflector is visible."""
    cols = np.where(img.max(axis=0) > 0.6 * img.max())[0]
    rows = np.array([np.sum(np.arange(img.shape[0]) * img[:, c] ** 4) / np.sum(img[:, c] ** 4) for c in cols])
    return float(np.polyfit(cols, rows, 1)[0]), cols


def _out(patch, label):
    return preprocess(patch, label, *PLAIN)[0, 0].numpy()


def test_pad_keeps_aspect_ratio_and_dip_and_fills_with_zero_amplitude():
    patch = _dipping_line(slope=0.25)
    out = _out(patch, "64:pad")
    assert out.shape == (64, 64)
    # 150x300 -> 32x64 content, centred: 16 rows of zero amplitude (intensity 0.5) above and below
    assert np.allclose(out[:16], 0.5) and np.allclose(out[-16:], 0.5)
    content = (out[16:48] - 0.5) * 2.0
    slope, cols = _measured_slope(content)
    assert slope == pytest.approx(0.25, abs=0.02)  # same dip in pixels per pixel
    assert cols.min() < 4 and cols.max() > 59  # the whole width is kept
    stretched, _ = _measured_slope((_out(patch, "64:stretch") - 0.5) * 2.0)
    assert stretched == pytest.approx(0.5, abs=0.04)  # stretch doubles the dip of a 1:2 patch


def test_crop_keeps_aspect_ratio_and_dip_and_cuts_the_centre():
    patch = _dipping_line(slope=0.1)
    out = (_out(patch, "64:crop") - 0.5) * 2.0
    assert out.shape == (64, 64)
    slope, _ = _measured_slope(out)
    assert slope == pytest.approx(0.1, abs=0.02)
    # 150x300 -> 64x128; the centre 64 columns (32..96 of the scaled patch, 75..225 of the original) are kept:
    # the reflector crosses the centre column at the patch's centre row
    centre_row = np.argmax(out[:, 32])
    assert abs(centre_row - 31.5) <= 2


def test_square_patches_come_out_the_same_in_every_mode():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 20, 20)).astype(np.float32)
    outs = [preprocess(x, f"48:{m}", *PLAIN) for m in RESIZE_MODES]
    for o in outs[1:]:
        assert torch.equal(o, outs[0])


def test_downsampling_is_antialiased():
    # traces alternating at 0.45 cycles/trace (near the lateral Nyquist): averaged away with antialiasing, aliased
    # into a coarse lateral pattern without it
    x = np.cos(2 * np.pi * 0.45 * np.arange(300, dtype=np.float32))[None, None, :].repeat(100, 1)  # (1, 100, 300)
    ours = preprocess(x, "64:stretch", *PLAIN)[0, 0]
    plain = F.interpolate(torch.as_tensor((x + 1) / 2)[:, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    assert float(ours.std()) < 0.05  # close to the mean intensity 0.5 everywhere
    assert float((ours - 0.5).abs().max()) < 0.1
    assert float(plain.std()) > 0.2  # what the unfiltered resize made of it


def test_input_spec_labels_and_errors():
    assert input_spec(224) == f"224:{DEFAULT_RESIZE}"
    assert input_spec("224", "pad") == "224:pad"
    assert input_spec("native", "crop") == "native"  # nothing is resized
    with pytest.raises(ValueError, match="resize"):
        input_spec(224, "squash")
    with pytest.raises(ValueError, match="resize"):
        preprocess(np.zeros((1, 8, 8), np.float32), "16:squash", *PLAIN)


def test_another_resize_mode_invalidates_cached_features(tmp_path):
    index = _dataset(tmp_path / "a", 4, shape=(12, 24))
    out = tmp_path / "f.parquet"
    first = extract_features(index, out, _tiny_backbone(), input_size="16:stretch", precision="fp32")
    assert first.identity["input_size"] == "16:stretch"
    again = extract_features(index, out, _tiny_backbone(), input_size="16:stretch", precision="fp32", previous_path=out)
    assert (again.n_reused, again.n_extracted) == (4, 0)
    padded = extract_features(index, out, _tiny_backbone(), input_size="16:pad", precision="fp32", previous_path=out)
    assert (padded.n_reused, padded.n_extracted) == (0, 4)
    assert "cache invalidated" in padded.cache_note and "16:pad" in padded.cache_note
