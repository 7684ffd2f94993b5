"""Backbone registry: shapes, determinism, laziness and ResNet50 weight resolution without network."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import torch
import torchvision

from seis_assets.core import attributes
from seis_assets.core.backbones import (
    BACKBONES,
    load_backbone,
    resnet50_cache_path,
)
from seis_assets.core.features import embed
from seis_assets.core.instance_norm import shallow_batchnorms



@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Empty torch hub cache and a download that fails at once; returns the list of download attempts."""
    attempts = []

    def fail(self, *args, **kwargs):
        attempts.append(self.url)
        raise OSError("no network (test)")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.__class__, "get_state_dict", fail)
    return attempts


def _patches(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, size, size)).astype(np.float32)


def test_registry_names():
    assert set(BACKBONES) == {"auto", "resnet50", "efficientnet_lite0", "texture"}
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg16")


def test_cache_path_uses_torchvision_file_names(offline, tmp_path):
    assert resnet50_cache_path("IMAGENET1K_V1") == tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    assert resnet50_cache_path("IMAGENET1K_V2").name == "resnet50-11ad3fa6.pth"
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        resnet50_cache_path("IMAGENET1K_V9")


def test_explicit_resnet50_without_weights_says_how_to_supply_them(offline, tmp_path):
    with pytest.raises(RuntimeError) as info:
        load_backbone("resnet50", weights_path=tmp_path / "missing.pth", device="cpu")
    message = str(info.value)
    assert "resnet50-0676ba61.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "weights_path" in message and "missing.pth" in message
    assert "no network (test)" in message
    assert offline == [torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url]


def test_auto_falls_back_to_efficientnet_with_a_logged_warning(offline, caplog):
    with caplog.at_level(logging.WARNING, logger="seis_assets.core.backbones"):
        bb = load_backbone("auto", device="cpu")
    assert bb.name == "efficientnet_lite0" and bb.dim == 1280
    ident = bb.identity
    assert ident["requested"] == "auto" and ident["backbone"] == "efficientnet_lite0"
    assert ident["weights"] == "efficientnet-lite0-imagenet"
    assert "resnet50-0676ba61.pth" in ident["fallback_reason"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "efficientnet_lite0" in warnings[0].getMessage() and "weights_path" in warnings[0].getMessage()


def test_injected_logger_gets_the_warning(offline):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("test_backbones.injected")
    log.addHandler(Collect())
    load_backbone("auto", device="cpu", logger=log)
    assert any("efficientnet_lite0" in r.getMessage() for r in records)


def test_weights_path_is_used_before_cache_and_download(offline, random_resnet_file):
    bb = load_backbone("resnet50", weights_path=random_resnet_file, device="cpu")
    digest = hashlib.sha256(random_resnet_file.read_bytes()).hexdigest()[:12]
    assert bb.identity == dict(
        backbone="resnet50",
        weights="IMAGENET1K_V1",
        dim=2048,
        requested="resnet50",
        fallback_reason=None,
        weights_sha256=digest,
    )
    assert offline == []  # no download tried
    assert not bb.loaded  # the network is built lazily


def test_auto_uses_the_torch_hub_cache(offline, random_resnet_file, tmp_path):
    cached = resnet50_cache_path("IMAGENET1K_V1")
    cached.parent.mkdir(parents=True)
    cached.symlink_to(random_resnet_file)
    bb = load_backbone("auto", device="cpu")
    assert bb.identity["backbone"] == "resnet50" and bb.identity["requested"] == "auto"
    assert bb.identity["fallback_reason"] is None
    assert offline == []


def test_resnet50_rejects_a_foreign_state_dict(offline, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    bb = load_backbone("resnet50", weights_path=bad, device="cpu")
    with pytest.raises(RuntimeError, match="not a torchvision ResNet50 state dict"):
        bb.model


def test_resnet50_shape_and_determinism(offline, random_resnet_file):
    bb = load_backbone("resnet50", weights_path=random_resnet_file, device="cpu")
    x = _patches()
    a = embed(bb, x, input_size="native", precision="fp32")
    b = embed(bb, x, input_size="native", precision="fp32")
    assert a.shape == (3, 2048) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert bb.n_forward == 2
    # the random-init weights really were loaded from the file
    state = torch.load(random_resnet_file, weights_only=True)
    torch.testing.assert_close(bb.model.conv1.weight.detach(), state["conv1.weight"].to(memory_format=torch.channels_last))


def test_efficientnet_lite0_shape_determinism_and_sensitivity():
    bb = load_backbone("efficientnet_lite0", device="cpu")
    assert bb.identity["weights_sha256"]  # packaged file fingerprint
    x = _patches()
    a = embed(bb, x, input_size="native", precision="fp32")
    b = embed(bb, x, input_size="native", precision="fp32")
    assert a.shape == (3, 1280) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a)) and not np.allclose(a[0], a[1])


def test_texture_shape_and_determinism():
    bb = load_backbone("texture")
    assert bb.identity["weights"] == "none" and bb.dim == attributes.ATTRIBUTE_DIM
    x = _patches(n=4, size=40)
    a = embed(bb, x)
    np.testing.assert_array_equal(a, embed(bb, x))
    assert a.shape == (4, attributes.ATTRIBUTE_DIM) and a.dtype == np.float32


def _layered(n=4, size=64, seed=0):
    """Dipping sinusoidal layers with a little noise, scaled to [-1, 1] (seismic-like structure)."""
    rng = np.random.default_rng(seed)
    t, x = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for i in range(n):
        p = np.sin(2 * np.pi * (t + (0.1 + 0.1 * i) * x) / (6 + 2 * i)) + 0.2 * rng.standard_normal((size, size))
        out.append(p / np.abs(p).max())
    return np.stack(out).astype(np.float32)


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_instnorm_normalises_exactly_the_shallow_batchnorms(random_resnet_file):
    lite = load_backbone("efficientnet_lite0+instnorm", device="cpu")
    assert lite.name == "efficientnet_lite0+instnorm" and lite.dim == 1280
    assert lite.identity["requested"] == "efficientnet_lite0+instnorm" and "stride <= 4" in lite.identity["instance_norm"]
    assert not lite.loaded
    # EfficientNet-Lite0: the stem and blocks 0-2 (stride 2 and 4); block 3 downsamples to 8 and keeps its BatchNorm
    replaced = [n for n, m in lite.model.net.named_modules() if type(m).__name__ == "InstanceNormFromBN"]
    assert replaced == ["_bn0", "_blocks.0._bn1", "_blocks.0._bn2", "_blocks.1._bn0", "_blocks.1._bn1",
                        "_blocks.1._bn2", "_blocks.2._bn0", "_blocks.2._bn1", "_blocks.2._bn2"]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in lite.model.net.modules()) == 49 - 9
    # ResNet50: the stem and layer1 (stride 4), not layer2 (stride 8)
    names = shallow_batchnorms(torchvision.models.resnet50(weights=None).eval())
    assert names[0] == "bn1" and all(n.startswith("layer1.") for n in names[1:]) and len(names) == 1 + 3 * 3 + 1
    res = load_backbone("resnet50+instnorm", weights_path=random_resnet_file, device="cpu")
    assert res.identity["weights_sha256"] == load_backbone("resnet50", weights_path=random_resnet_file).identity[
        "weights_sha256"]
    assert embed(res, _layered(2, 32), input_size="native", precision="fp32").shape == (2, 2048)


def test_instnorm_features_ignore_the_contrast_of_the_image():
    """What +instnorm is for: a patch and the same patch at half the contrast give nearly the same features, where
    the plain network's ImageNet statistics let the contrast move them."""
    x = _layered()
    plain, inorm = load_backbone("efficientnet_lite0", device="cpu"), load_backbone("efficientnet_lite0+instnorm")
    cos_plain = _cosine(embed(plain, x, 224, "fp32", "torch"), embed(plain, 0.5 * x, 224, "fp32", "torch"))
    cos_in = _cosine(embed(inorm, x, 224, "fp32", "torch"), embed(inorm, 0.5 * x, 224, "fp32", "torch"))
    assert cos_in.min() > 0.99 and np.all(cos_in > cos_plain)
    # and the structure still counts: two different layerings stay apart
    f = embed(inorm, x, 224, "fp32", "torch")
    assert _cosine(f[:1], f[3:4])[0] < cos_in.min()


def test_instnorm_names_and_their_errors():
    fused = load_backbone("efficientnet_lite0+instnorm+texture", device="cpu")
    assert fused.name == "efficientnet_lite0+instnorm+texture" and fused.fusion == "texture"
    assert fused.identity["instance_norm"]  # kept through the fusion
    with pytest.raises(ValueError, match="only a plain CNN"):
        load_backbone("texture+instnorm")
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("efficientnet_lite0+texture+instnorm")  # the order is <cnn>[+instnorm][+texture]
