"""Inference engines: the auto rule (fake CPU flags), the exported-model cache, agreement with torch fp32,
the engine in the feature identity, and the thread budget."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from seis_assets.core import engines
from seis_assets.core.backbones import IMAGENET_MEAN, IMAGENET_STD, Backbone, load_backbone
from seis_assets.core.engines import (
    batch_size_for,
    choose_engine,
    cpu_flags,
    has_native_bf16,
    onnx_model_path,
    resolve_precision,
    thread_budget,
)
from seis_assets.core.feature_table import read_identity, table_identity
from seis_assets.core.features import embed, extract_features
from seis_assets_tests.core.test_features import _dataset

AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma"}
AVX512_BF16 = AVX2 | {"avx512f", "avx512_bf16", "avx512_vnni"}
AMX = AVX2 | {"avx512f", "amx_tile", "amx_bf16", "amx_int8"}
EXPORTED = [e for e in ("onnxruntime", "openvino") if engines._importable(e)]


def _installed(_module):
    return True


def _missing(_module):
    return False


def test_resolve_precision():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError):
        resolve_precision("int8", "cpu")


# --------------------------------------------------------------------------- the auto rule
@pytest.mark.parametrize(
    "flags, device, precision, expected",
    [
        (AVX2, "cpu", "auto", "onnxruntime"),  # no native bf16: ONNX Runtime fp32
        (AVX512_BF16, "cpu", "auto", "torch"),  # native bf16: torch bf16 + channels_last
        (AMX, "cpu", "auto", "torch"),
        (AVX512_BF16, "cpu", "fp32", "onnxruntime"),  # fp32 asked for: the fastest fp32 engine
        (AVX2, "cpu", "bf16", "torch"),  # of the plain networks, only torch runs bf16
        (AVX2, "cuda", "auto", "torch"),  # GPU: torch
        (AMX, "cuda", "auto", "torch"),
    ],
)
def test_auto_rule_follows_the_cpu_flags(flags, device, precision, expected):
    choice = choose_engine("auto", device, precision, flags=flags, available=_installed)
    assert choice.engine == expected and choice.note is None


def test_auto_keeps_backbones_whose_bf16_misses_the_gate_in_fp32():
    """EfficientNet-Lite0 in bf16 is at cosine 0.992 to fp32: auto runs it on ONNX Runtime even on a bf16 CPU."""
    for flags in (AVX512_BF16, AMX):
        choice = choose_engine("auto", "cpu", "auto", flags=flags, available=_installed, backbone="efficientnet_lite0")
        assert choice.engine == "onnxruntime"
        assert choose_engine("auto", "cpu", "auto", flags=flags, available=_installed, backbone="resnet50").engine == "torch"
    assert choose_engine("auto", "cuda", "auto", flags=AMX, available=_installed, backbone="efficientnet_lite0").engine == "torch"


def test_auto_runs_instnorm_backbones_on_openvino_and_says_when_it_cannot():
    """Instance normalisation runs faster on OpenVINO than on ONNX Runtime (benchmarks/README.md, "Survey backbone:
    engine and batch size"): auto picks it on every CPU; without it, ONNX Runtime with the reason recorded."""
    for flags in (AVX2, AVX512_BF16, AMX):
        for name in ("efficientnet_lite0+instnorm", "resnet50+instnorm", "efficientnet_lite0+instnorm+texture"):
            choice = choose_engine("auto", "cpu", "auto", flags=flags, available=_installed, backbone=name)
            assert choice.engine == "openvino" and choice.note is None
    choice = choose_engine("auto", "cpu", "auto", flags=AMX, available=lambda m: m != "openvino",
                           backbone="efficientnet_lite0+instnorm")
    assert choice.engine == "onnxruntime" and "openvino is not installed" in choice.note
    assert choose_engine("auto", "cuda", "auto", flags=AMX, available=_installed,
                         backbone="efficientnet_lite0+instnorm").engine == "torch"
    # an engine asked for by name is kept
    assert choose_engine("onnxruntime", "cpu", "auto", flags=AMX, available=_installed,
                         backbone="efficientnet_lite0+instnorm").engine == "onnxruntime"


def test_batch_size_follows_the_input_size_and_instance_normalisation():
    for engine in ("torch", "onnxruntime", "openvino"):
        assert batch_size_for(engine, input_size="224:stretch") == batch_size_for(engine, input_size=224) == 16
        assert batch_size_for(engine, input_size="224:pad", backbone="efficientnet_lite0+instnorm") == 4
        assert batch_size_for(engine, input_size="native", backbone="efficientnet_lite0+instnorm") == \
            engines.BATCH_SIZES[engine]
    assert batch_size_for("openvino", input_size=224, device="cuda", backbone="x+instnorm") == engines.CUDA_BATCH_SIZE
    assert batch_size_for("openvino", 7, input_size=224, backbone="x+instnorm") == 7


def test_auto_without_onnxruntime_falls_back_to_torch_and_says_so():
    choice = choose_engine("auto", "cpu", "auto", flags=AVX2, available=_missing)
    assert choice.engine == "torch"
    assert "onnxruntime is not installed" in choice.note


def test_explicit_engines_are_kept_or_refused_with_the_reason():
    assert choose_engine("openvino", "cpu", "auto", flags=AMX, available=_installed).engine == "openvino"
    assert choose_engine("torch", "cpu", "auto", flags=AVX2, available=_missing).engine == "torch"
    with pytest.raises(ValueError, match="CPU only"):
        choose_engine("onnxruntime", "cuda", available=_installed)
    with pytest.raises(ValueError, match="fp32 only"):
        choose_engine("onnxruntime", "cpu", "bf16", available=_installed)
    assert choose_engine("openvino", "cpu", "bf16", available=_installed).engine == "openvino"
    with pytest.raises(ValueError, match="runs fp32 or bf16 only"):
        choose_engine("openvino", "cpu", "fp16", available=_installed)
    with pytest.raises(RuntimeError, match=r"seis_assets\[openvino\]"):
        choose_engine("openvino", "cpu", available=_missing)
    with pytest.raises(ValueError, match="engine must be one of"):
        choose_engine("tensorrt", "cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert has_native_bf16(cpu_flags(info))
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert not has_native_bf16(AVX2)


# --------------------------------------------------------------------------- thread budget
def test_thread_budget_divides_the_cores_among_concurrent_runs():
    assert thread_budget({}, cores=16) == 16
    assert thread_budget({"SEIS_CONCURRENT_RUNS": "4"}, cores=16) == 4
    assert thread_budget({"SEIS_CONCURRENT_RUNS": "3"}, cores=2) == 1  # never 0
    assert thread_budget({"SEIS_THREADS": "3", "SEIS_CONCURRENT_RUNS": "4"}, cores=16) == 3
    with pytest.raises(ValueError, match="SEIS_THREADS"):
        thread_budget({"SEIS_THREADS": "zero"}, cores=2)
    with pytest.raises(ValueError, match="SEIS_CONCURRENT_RUNS"):
        thread_budget({"SEIS_CONCURRENT_RUNS": "0"}, cores=2)


def test_extraction_uses_the_thread_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("SEIS_THREADS", "1")
    index = _dataset(tmp_path / "a", 2)
    r = extract_features(index, tmp_path / "f.parquet", _small_backbone(), input_size="native", engine="torch")
    assert r.threads == 1 and torch.get_num_threads() == 1
    assert r.metadata()["threads"] == 1


@pytest.mark.parametrize("engine", ["torch", *EXPORTED])
def test_extraction_batches_by_the_engines_measured_batch_size(engine, tmp_path):
    index = _dataset(tmp_path / "a", 70)
    bb = _small_backbone()
    r = extract_features(index, tmp_path / "f.parquet", bb, input_size="native", precision="fp32", engine=engine,
                         engine_cache_dir=tmp_path / "cache")
    assert r.n_extracted == 70
    assert bb.n_forward == -(-70 // batch_size_for(engine))  # 5 passes of 16 (torch), 2 of 64 (exported)
    assert batch_size_for("torch") == 16 and batch_size_for("onnxruntime") == batch_size_for("openvino") == 64
    bb = _small_backbone()
    extract_features(index, tmp_path / "g.parquet", bb, input_size="native", precision="fp32", engine=engine,
                     engine_cache_dir=tmp_path / "cache", batch_size=7)
    assert bb.n_forward == 10  # an explicit batch size wins
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        batch_size_for(engine, 0)


# --------------------------------------------------------------------------- exported model cache
class _SmallNet(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.dw = torch.nn.Conv2d(8, 8, 3, groups=8)

    def forward(self, x):
        return torch.relu(self.dw(torch.relu(self.conv(x)))).mean(dim=(2, 3))


def _small_backbone(weights="w1", seed=0):
    ident = dict(backbone="small", weights=weights, dim=8, requested="small", fallback_reason=None,
                 weights_sha256=f"sha-{weights}")
    return Backbone("small", 8, ident, "cpu", IMAGENET_MEAN, IMAGENET_STD, lambda: _SmallNet(seed).eval())


@pytest.mark.skipif("onnxruntime" not in EXPORTED, reason="onnxruntime not installed")
def test_exported_model_is_cached_under_the_backbone_identity(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = onnx_model_path(_small_backbone("w1"), cache)
    assert path.endswith(".onnx") and "small-w1-sha_w1-8-torch" in path
    # a second backbone with the same identity reuses the file: no export, no model built
    again = _small_backbone("w1")
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported again"))
    assert onnx_model_path(again, cache) == path and not again.loaded
    monkeypatch.undo()
    # other weights -> another file, and its features are its own
    other_path = onnx_model_path(_small_backbone("w2", seed=1), cache)
    assert other_path != path
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.split("/")[-1], other_path.split("/")[-1]])
    P = _patches(4, 20)
    a = embed(_small_backbone("w1"), P, "native", "fp32", "onnxruntime", cache)
    b = embed(_small_backbone("w2", seed=1), P, "native", "fp32", "onnxruntime", cache)
    assert not np.allclose(a, b)


# --------------------------------------------------------------------------- agreement with torch fp32
def _patches(n, size, seed=0):
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.standard_normal((n, size, size)).astype(np.float32), (0, 2, 2))
    return a / np.abs(a).max(axis=(1, 2), keepdims=True)


def _cosine_min(a, b):
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", device="cpu")


@pytest.mark.parametrize("engine", EXPORTED)
@pytest.mark.parametrize("size", ["native", 224])
def test_exported_engines_match_torch_fp32(engine, size, lite0, tmp_path):
    """EfficientNet-Lite0 (real weights, the default backbone offline) on real-looking 99x99 patches."""
    P = _patches(6, 99)
    ref = embed(lite0, P, size, "fp32", "torch")
    got = embed(lite0, P, size, "fp32", engine, tmp_path / "cache", threads=1)
    assert got.shape == ref.shape == (6, 1280)
    assert _cosine_min(got, ref) >= 0.999


@pytest.mark.skipif(not has_native_bf16(cpu_flags()), reason="CPU has no native bf16")
def test_torch_bf16_matches_torch_fp32_on_resnet50(tmp_path):
    """auto's bf16 path (ResNet50 architecture, random weights: the ImageNet file is not available offline)."""
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    bb = load_backbone("resnet50", weights_path=path, device="cpu")
    P = _patches(4, 99)
    assert _cosine_min(embed(bb, P, "native", "bf16", "torch"), embed(bb, P, "native", "fp32", "torch")) >= 0.999


# --------------------------------------------------------------------------- identity
def test_identity_records_the_engine_and_the_cache_keys_on_it(tmp_path):
    index = _dataset(tmp_path / "a", 4)
    out = tmp_path / "f.parquet"
    r = extract_features(index, out, _small_backbone(), input_size="native", precision="fp32", engine="torch")
    assert read_identity(out)["engine"] == "torch" and r.metadata()["engine"] == "torch"
    if not EXPORTED:
        return
    engine = EXPORTED[0]
    r = extract_features(index, out, _small_backbone(), input_size="native", precision="auto", engine=engine,
                         engine_cache_dir=tmp_path / "cache", previous_path=out)
    assert (r.n_reused, r.n_extracted) == (0, 4)  # another engine: the rows are re-extracted, never mixed
    assert "engine 'torch' -> " + repr(engine) in r.cache_note
    assert read_identity(out)["engine"] == engine and read_identity(out)["precision"] == "fp32"
    bb = _small_backbone()
    r = extract_features(index, out, bb, input_size="native", engine=engine, engine_cache_dir=tmp_path / "cache",
                         previous_path=out)
    assert (r.n_reused, r.n_extracted, bb.n_forward, bb.loaded) == (4, 0, 0, False)


def test_auto_identity_names_the_engine_the_rule_picks(monkeypatch):
    monkeypatch.setattr(engines, "cpu_flags", lambda *a: frozenset(AVX2))
    monkeypatch.setattr(engines, "_importable", _installed)
    ident = table_identity(_small_backbone(), 224, "auto", "auto")
    assert (ident["engine"], ident["precision"]) == ("onnxruntime", "fp32")
    assert table_identity(load_backbone("texture"), 224, "auto", "auto")["engine"] == "numpy"
    # the survey backbone: OpenVINO, in bf16 where the CPU has native bf16 (unless fp32 is asked for)
    survey = load_backbone("efficientnet_lite0+instnorm", device="cpu")
    assert [table_identity(survey, 224, "auto", "auto")[k] for k in ("engine", "precision")] == ["openvino", "fp32"]
    monkeypatch.setattr(engines, "cpu_flags", lambda *a: frozenset(AVX512_BF16))
    assert [table_identity(survey, 224, "auto", "auto")[k] for k in ("engine", "precision")] == ["openvino", "bf16"]
    assert table_identity(survey, 224, "fp32", "auto")["precision"] == "fp32"


def test_texture_fusion_appends_the_attributes_to_the_cnn_features():
    from seis_assets.core.attributes import ATTRIBUTE_DIM, attribute_vectors
    from seis_assets.core.backbones import fuse_texture, load_backbone

    P = _patches(5, 40)
    fused = fuse_texture(_small_backbone())
    assert fused.name == "small+texture" and fused.dim == 8 + ATTRIBUTE_DIM
    assert fused.identity["fusion"] == "texture" and fused.identity["cnn_dim"] == 8
    Y = embed(fused, P, "native", "fp32", "torch")
    assert Y.shape == (5, 8 + ATTRIBUTE_DIM)
    assert np.allclose(Y[:, :8], embed(_small_backbone(), P, "native", "fp32", "torch"), atol=1e-6)
    assert np.allclose(Y[:, 8:], attribute_vectors(P), atol=1e-6)
    # by name: the CNN's identity (weights, fingerprint) with the fused name; the texture backbone cannot be fused
    lite = load_backbone("efficientnet_lite0+texture", device="cpu")
    assert (lite.name, lite.dim, lite.identity["requested"]) == ("efficientnet_lite0+texture", 1280 + ATTRIBUTE_DIM,
                                                               "efficientnet_lite0+texture")
    assert lite.identity["weights"] == load_backbone("efficientnet_lite0", device="cpu").identity["weights"]
    with pytest.raises(ValueError, match="only a CNN backbone"):
        load_backbone("texture+texture")
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg16+texture")


def test_backbones_below_the_bf16_gate_never_get_bf16_from_auto():
    from seis_assets.core.engines import engine_precision

    # the fused variant is the same network: it follows the gate too (it ran torch bf16 before this was fixed)
    choice = choose_engine("auto", "cpu", "auto", flags=AVX512_BF16, available=_installed,
                           backbone="efficientnet_lite0+texture")
    assert choice.engine == "onnxruntime"
    assert engine_precision("torch", "auto", "cpu", "efficientnet_lite0") == "fp32"
    assert engine_precision("torch", "auto", "cuda", "efficientnet_lite0+texture") == "fp16"  # measured on an H200
    assert engine_precision("torch", "bf16", "cpu", "efficientnet_lite0") == "bf16"  # asked for explicitly: kept
    assert batch_size_for("torch", None, "cuda") == 256 and batch_size_for("torch", 8, "cuda") == 8


def test_instnorm_variants_stay_off_torch_bf16_and_export_to_onnx(tmp_path):
    """``+instnorm`` is not measured in torch bf16: ``auto`` runs it on OpenVINO on a bf16 CPU, in bf16 only for
    the networks whose maps were measured (EfficientNet-Lite0), ResNet50's in fp32; its ONNX Runtime export (the
    InstanceNormalization op) gives the torch features."""
    from seis_assets.core.engines import engine_precision

    assert choose_engine("auto", "cpu", "auto", flags=AVX512_BF16, available=_installed,
                         backbone="resnet50").engine == "torch"  # the plain network runs bf16 there
    for flags in (AVX2, AVX512_BF16, AMX):
        for name in ("resnet50+instnorm", "efficientnet_lite0+instnorm"):
            assert choose_engine("auto", "cpu", "auto", flags=flags, available=_installed, backbone=name).engine \
                == "openvino"
    assert engine_precision("openvino", "auto", "cpu", "resnet50+instnorm", flags=AMX) == "fp32"  # not measured
    assert engine_precision("openvino", "auto", "cpu", "efficientnet_lite0+instnorm", flags=AVX512_BF16) == "bf16"
    assert engine_precision("openvino", "auto", "cpu", "efficientnet_lite0+instnorm", flags=AMX) == "bf16"
    assert engine_precision("openvino", "auto", "cpu", "efficientnet_lite0+instnorm", flags=AVX2) == "fp32"
    assert engine_precision("openvino", "fp32", "cpu", "efficientnet_lite0+instnorm", flags=AMX) == "fp32"
    assert engine_precision("openvino", "auto", "cpu", "efficientnet_lite0", flags=AMX) == "fp32"  # plain: not listed
    assert engine_precision("onnxruntime", "auto", "cpu", "efficientnet_lite0+instnorm", flags=AMX) == "fp32"
    assert engine_precision("openvino", "bf16", "cpu", "resnet50+instnorm", flags=AVX2) == "bf16"  # asked for
    # bf16 asked for with engine auto: OpenVINO for +instnorm, torch for the plain network
    assert choose_engine("auto", "cpu", "bf16", flags=AVX2, available=_installed,
                         backbone="efficientnet_lite0+instnorm").engine == "openvino"
    assert engine_precision("torch", "auto", "cpu", "resnet50+instnorm") == "fp32"
    assert engine_precision("torch", "auto", "cuda", "resnet50+instnorm") == "fp16"
    # batch: 4 images per pass in fp32, 16 in bf16 (half the activation bytes)
    assert batch_size_for("openvino", input_size="224:pad", backbone="efficientnet_lite0+instnorm") == 4
    assert batch_size_for("openvino", input_size="224:pad", backbone="efficientnet_lite0+instnorm",
                          precision="bf16") == engines.RESIZED_BATCH_SIZE
    bb = load_backbone("efficientnet_lite0+instnorm", device="cpu")
    P = np.random.default_rng(0).uniform(-1, 1, (3, 40, 40)).astype(np.float32)
    ref = embed(bb, P, 64, "fp32", "torch")
    for engine in ("onnxruntime", "openvino"):  # both read the same exported file
        out = embed(bb, P, 64, "fp32", engine, engine_cache_dir=str(tmp_path))
        cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
        assert cos.min() > 0.9999, engine
    # its own export, not the plain network's
    plain = load_backbone("efficientnet_lite0", device="cpu")
    assert [p.name for p in tmp_path.glob("*.onnx")] == [engines.onnx_model_name(bb.identity)]
    assert engines.onnx_model_name(bb.identity) != engines.onnx_model_name(plain.identity)


@pytest.mark.skipif("openvino" not in EXPORTED, reason="OpenVINO is not installed")
def test_openvino_runs_the_recorded_precision(tmp_path):
    """The compiled model's inference precision is the one recorded in the identity: f32 for fp32 (OpenVINO would
    pick bf16 by itself on a bf16 CPU), bf16 for bf16 where OpenVINO runs bf16, else a clear error, never a silent
    f32 under a bf16 record. bf16 features stay close to fp32 (the measured gate is the map, not this cosine)."""
    import openvino as ov

    bb = load_backbone("efficientnet_lite0+instnorm", device="cpu")
    P = _patches(4, 99)
    fp32 = engines.runner(bb, "openvino", cache_dir=str(tmp_path), threads=1, precision="fp32")
    assert fp32.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(ValueError, match="needs a CPU that OpenVINO runs bf16 on"):
            engines.runner(bb, "openvino", cache_dir=str(tmp_path), threads=1, precision="bf16")
        return
    bf16 = engines.runner(bb, "openvino", cache_dir=str(tmp_path), threads=1, precision="bf16")
    assert bf16 is not fp32 and bf16.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
    got = embed(bb, P, 224, "bf16", "openvino", str(tmp_path), threads=1)
    ref = embed(bb, P, 224, "fp32", "openvino", str(tmp_path), threads=1)
    assert 0.98 < _cosine_min(got, ref) < 1.0  # bf16 really ran: not bit-for-bit fp32
    with pytest.raises(ValueError, match="fp32 only"):
        engines.runner(bb, "onnxruntime", cache_dir=str(tmp_path), precision="bf16")


@pytest.mark.skipif("openvino" not in EXPORTED, reason="OpenVINO is not installed")
def test_openvino_pins_its_threads_only_when_it_has_every_core(tmp_path):
    """Pinned, runners of one thread in several processes (Dask workers) all land on the same core."""
    assert engines.openvino_pins_threads(2, cores=2) and engines.openvino_pins_threads(4, cores=2)
    assert not engines.openvino_pins_threads(1, cores=2)
    bb = load_backbone("efficientnet_lite0", device="cpu")
    cores = engines.available_cores()
    for threads in sorted({1, cores}):
        runner = engines.runner(bb, "openvino", cache_dir=str(tmp_path), threads=threads)
        assert runner.compiled.get_property("ENABLE_CPU_PINNING") == (threads >= cores), threads
