"""Inference engines for the CNN forward pass, the rule that picks one, and the CPU thread budget.

Engines
-------
``torch``
    The backbone's own torch module, channels_last, under ``inference_mode`` and autocast (bf16 on CPUs with
    native bf16, see :func:`resolve_precision`).
``onnxruntime``
    The backbone exported once to ONNX (:func:`onnx_model_path`) and run by ONNX Runtime's CPU kernels, fp32.
    On CPUs without native bf16 (AVX2 only) this is the fastest: its depthwise and 1x1 convolutions are not
    memory-bound the way torch's are (benchmarks/README.md, "Engines").
``openvino``
    The same ONNX file compiled by OpenVINO for the CPU, LATENCY hint, its inference precision set to the recorded
    one: f32, or bf16 (OpenVINO would otherwise pick bf16 by itself on bf16 CPUs, which would make a recorded fp32
    false; a bf16 runner on a CPU that OpenVINO does not give bf16 raises instead of running f32).

The ``auto`` rule (:func:`choose_engine`; the runs behind it: benchmarks/README.md, "Engines" and "GPU")
-----------------------------------------------------------------------------------------------------
1. CUDA device -> ``torch`` (fp16/bf16 autocast on the GPU).
2. A CPU with native bf16 (``amx_bf16`` or ``avx512_bf16`` in the ``/proc/cpuinfo`` flags) -> ``torch`` with bf16
   autocast and channels_last, except (a) when ``precision="fp32"`` was asked for and (b) for the backbones in
   :data:`BF16_BELOW_GATE` (fused ``+texture`` variants included), whose bf16 features fall below cosine 0.999 to
   fp32; both go to rule 3. Those backbones never get bf16 from ``precision="auto"`` with torch either: fp16 on
   CUDA (within the gate where bf16 is not), fp32 on a CPU (:func:`engine_precision`). The ``+instnorm`` variants
   are treated the same way: their bf16 features are not measured (ResNet50's weights cannot be had on the
   development machine).
3. Any other CPU -> ``onnxruntime`` fp32, except a ``+instnorm`` backbone -> ``openvino``: OpenVINO runs
   the instance normalisation layers faster than ONNX Runtime (benchmarks/README.md, "Survey backbone: engine and
   batch size"). fp32, except on a CPU with native bf16 for the backbones of :data:`OPENVINO_BF16_MAPS`: there
   ``auto`` runs OpenVINO in bf16. Their bf16 features are not within cosine 0.999 of fp32, so the gate is the map
   they make instead: the inline 362 region goals, the same goals on shifted and mirrored window grids, and the
   labelled sections' scores, all measured as good as fp32 (benchmarks/README.md, "Survey backbone in bf16").
If ``openvino`` cannot be imported, a ``+instnorm`` backbone goes to ``onnxruntime``; if ``onnxruntime`` cannot be
imported, rule 3 falls back to ``torch``; either reason is logged and recorded in the feature table's identity
(``engine_note``).

Exported model cache
--------------------
The ONNX file is named by the backbone identity (backbone, weights, weights fingerprint, dim) plus the torch
version and the opset, e.g. ``efficientnet_lite0-efficientnet-lite0-imagenet-0a1b2c3d4e5f-1280-torch2.14.1-op17.onnx``,
and written atomically (``core.storage``) into the cache folder (``<data_dir>/cache/engines`` in the pipeline,
``$SEIS_ENGINE_CACHE`` or ``~/.cache/seis_assets/engines`` otherwise). Other weights give another name, so a stale
export is never used. The file is read back as bytes, so the cache may be on ``s3://``.

Batch size
----------
:func:`batch_size_for` is the number of patches per forward pass when none is set. On a CPU: patches at their own
size, 16 for ``torch`` (small batches keep ResNet50's activations in the CPU caches) and 64 for the exported
engines; patches resized to the network's input (224), 16 on every engine, 4 for a ``+instnorm`` backbone. 256 on
CUDA. Each was the fastest measured (benchmarks/README.md, "Engines" and "Survey backbone: engine and batch size"
for the CPU, "GPU" for CUDA).

Thread budget
-------------
:func:`thread_budget` is the number of CPU threads one heavy run may use: ``SEIS_THREADS`` when set, else the
cores this process may use divided by ``SEIS_CONCURRENT_RUNS`` (default 1; set it to the size of the Dagster
concurrency pool of the heavy assets), at least 1. torch (``set_num_threads``), ONNX Runtime
(``intra_op_num_threads``) and OpenVINO (``INFERENCE_NUM_THREADS``) all get this number.
"""

from __future__ import annotations

import atexit
import copy
import importlib.util
import io
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from seis_assets import environment
from seis_assets.core.backbones import INSTNORM_SUFFIX
from seis_assets.core.storage import atomic_write_bytes, read_bytes, to_upath

__all__ = [
    "ENGINES",
    "DEFAULT_ENGINE",
    "PRECISIONS",
    "DEFAULT_PRECISION",
    "ONNX_OPSET",
    "EngineChoice",
    "cpu_flags",
    "has_native_bf16",
    "choose_engine",
    "resolve_precision",
    "engine_precision",
    "thread_budget",
    "batch_size_for",
    "BATCH_SIZES",
    "RESIZED_BATCH_SIZE",
    "INSTNORM_BATCH_SIZE",
    "default_cache_dir",
    "onnx_model_name",
    "onnx_model_path",
    "runner",
]

_LOG = logging.getLogger(__name__)

ENGINES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
DEFAULT_ENGINE = "auto"
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
DEFAULT_PRECISION = "auto"
ONNX_OPSET = 17
#: CPU flags (as /proc/cpuinfo spells them) that mean native bf16 matrix arithmetic.
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
_INPUT = "images"
#: Backbones whose torch bf16 features are not within cosine 0.999 of fp32 (benchmarks/README.md): ``auto``
#: never runs them in bf16.
BF16_BELOW_GATE: frozenset[str] = frozenset({"efficientnet_lite0"})
#: Networks whose ``+instnorm`` survey maps were measured as good in OpenVINO bf16 as in fp32 (benchmarks/README.md,
#: "Survey backbone in bf16"): ``auto`` runs them in bf16 on OpenVINO on CPUs with native bf16. ResNet50 is not
#: listed: its weights cannot be had where the maps were measured.
OPENVINO_BF16_MAPS: frozenset[str] = frozenset({"efficientnet_lite0"})


class EngineChoice(tuple):
    """``(engine, note)``: the concrete engine and, when ``auto`` had to deviate from its rule, why."""

    def __new__(cls, engine: str, note: str | None = None):
        return super().__new__(cls, (engine, note))

    @property
    def engine(self) -> str:
        return self[0]

    @property
    def note(self) -> str | None:
        return self[1]


# --------------------------------------------------------------------------- hardware
def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The ``flags`` of the first CPU in ``cpuinfo`` (empty where the file does not exist, e.g. macOS)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    m = re.search(r"^flags\s*:\s*(.*)$", text, flags=re.MULTILINE)
    return frozenset(m.group(1).split()) if m else frozenset()


def has_native_bf16(flags) -> bool:
    """True when the flags name AMX-BF16 or AVX512-BF16."""
    return any(f in flags for f in BF16_FLAGS)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_engine(
    requested: str, device: str, precision: str = "auto", flags=None, available=None, backbone: str | None = None
) -> EngineChoice:
    """Concrete engine for ``requested`` (see the module docstring for the ``auto`` rule).

    Parameters
    ----------
    requested : {"auto", "torch", "onnxruntime", "openvino"}
    device : {"cpu", "cuda"}
    precision : str
        The requested precision; ``fp16`` keeps torch, and so does ``bf16`` except for a ``+instnorm`` backbone
        (OpenVINO, which runs fp32 or bf16; ONNX Runtime runs fp32 only); ``fp32`` on a bf16 CPU picks ONNX
        Runtime.
    flags : iterable of str or None
        CPU flags (default: :func:`cpu_flags`); tests pass fake ones.
    available : callable(module name) -> bool, or None
        Whether an engine's package imports (default: ``importlib.util.find_spec``).
    backbone : str or None
        The backbone's name; those in :data:`BF16_BELOW_GATE` and ``+instnorm`` variants are never given torch
        bf16 by ``auto``.

    Raises
    ------
    ValueError
        An unknown engine, an exported engine on CUDA, or an exported engine with bf16/fp16.
    RuntimeError
        An explicitly requested engine whose package is not installed (names the extra to install).
    """
    if requested not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {requested!r}")
    available = available or _importable
    if requested != "auto":
        if requested != "torch":
            if device != "cpu":
                raise ValueError(f"engine {requested!r} runs on the CPU only; use engine='torch' (or 'auto') on {device}")
            _check_exported_precision(requested, precision)
            if not available(requested):
                how = "pip install 'seis_assets[openvino]'" if requested == "openvino" else "pip install onnxruntime"
                raise RuntimeError(f"engine {requested!r} is not installed: {how}")
        return EngineChoice(requested)
    if device != "cpu" or precision == "fp16" or (precision == "bf16" and not _instnorm(backbone)):
        return EngineChoice("torch")
    flags = cpu_flags() if flags is None else frozenset(flags)
    if has_native_bf16(flags) and precision != "fp32" and not _below_bf16_gate(backbone):
        return EngineChoice("torch")
    if _instnorm(backbone):
        if available("openvino"):
            return EngineChoice("openvino")
        if available("onnxruntime"):
            note = ("engine 'auto': openvino is not installed, running this +instnorm backbone on onnxruntime "
                    "(slower: its instance normalisation; pip install openvino)")
            _LOG.warning("%s", note)
            return EngineChoice("onnxruntime", note)
    if available("onnxruntime"):
        return EngineChoice("onnxruntime")
    note = "engine 'auto': onnxruntime is not installed, using torch fp32 (pip install onnxruntime)"
    _LOG.warning("%s", note)
    return EngineChoice("torch", note)


def _base_name(backbone: str | None) -> str | None:
    """The CNN's own name (``efficientnet_lite0+texture`` -> ``efficientnet_lite0``): fusion does not change the
    network's numerics."""
    return None if backbone is None else str(backbone).split("+", 1)[0]


def _below_bf16_gate(backbone: str | None) -> bool:
    """``auto`` must not give this backbone bf16: measured below the gate, or (``+instnorm``) not measured."""
    return _base_name(backbone) in BF16_BELOW_GATE or _instnorm(backbone)


def _openvino_bf16_maps(backbone: str | None) -> bool:
    """Whether ``auto`` runs this backbone in bf16 on OpenVINO (a ``+instnorm`` variant of a listed network)."""
    return _instnorm(backbone) and _base_name(backbone) in OPENVINO_BF16_MAPS


def _check_exported_precision(engine: str, precision: str) -> None:
    """ONNX Runtime runs fp32 only, OpenVINO fp32 or bf16: anything else raises, naming what each runs."""
    runs = ("auto", "fp32", "bf16") if engine == "openvino" else ("auto", "fp32")
    if precision not in runs:
        raise ValueError(f"engine {engine!r} runs {' or '.join(r for r in runs if r != 'auto')} only, got "
                         f"precision={precision!r}; use precision='auto', or engine='torch'")


def _instnorm(backbone: str | None) -> bool:
    """Whether the backbone's shallow layers normalise each image by itself (``+instnorm``)."""
    return INSTNORM_SUFFIX in str(backbone or "")


def _bf16_cpu_supported() -> bool:
    import torch  # lazy (here and below): the Dagster definitions import this module and must load without torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: str) -> str:
    """Concrete precision for ``device``.

    ``"auto"`` -> ``"bf16"`` on CPUs with native bf16 (oneDNN), ``"bf16"`` or ``"fp16"``
    on CUDA (bf16 where the GPU supports it), else ``"fp32"``. ``"fp16"`` on CPU raises.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if _bf16_cpu_supported() else "fp32"
    if precision == "fp16" and device != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
    return precision


def engine_precision(engine: str, precision: str, device: str, backbone: str | None = None, flags=None) -> str:
    """Concrete precision of ``engine``: ONNX Runtime always runs ``fp32``; OpenVINO ``fp32`` or ``bf16`` (asked for,
    or ``auto`` for the backbones of :data:`OPENVINO_BF16_MAPS` on a CPU whose ``flags`` name native bf16); torch
    resolves ``precision``.

    ``auto`` never gives torch bf16 to a backbone in :data:`BF16_BELOW_GATE`: on CUDA it runs fp16 (within the
    cosine gate where bf16 is not, at the same speed: benchmarks/README.md, "GPU"), on a CPU fp32.
    """
    if engine in ("onnxruntime", "openvino"):
        _check_exported_precision(engine, precision)
        if precision == "auto":
            flags = cpu_flags() if flags is None else frozenset(flags)
            bf16 = engine == "openvino" and _openvino_bf16_maps(backbone) and has_native_bf16(flags)
            return "bf16" if bf16 else "fp32"
        return precision
    if precision == "auto" and _below_bf16_gate(backbone):
        return "fp16" if device == "cuda" else "fp32"
    return resolve_precision(precision, device)


#: Patches per forward pass of each concrete engine on a CPU when no batch size is set and the patches keep their
#: own size (``input_size="native"``; benchmarks/README.md, "Engines").
BATCH_SIZES: dict[str, int] = {"torch": 16, "onnxruntime": 64, "openvino": 64}
#: The same for patches resized to a CNN's input (224): the exported engines' activations then outgrow the CPU
#: caches at 64 (benchmarks/README.md, "Survey backbone: engine and batch size").
RESIZED_BATCH_SIZE = 16
#: ... and for a ``+instnorm`` backbone at a resized input, whose instance normalisation reads each shallow
#: activation twice more: the fewer images per pass, the more of them stay in the caches (same section). In bf16
#: (OpenVINO) the activations are half the size and :data:`RESIZED_BATCH_SIZE` is fastest again (benchmarks/README.md,
#: "Survey backbone in bf16").
INSTNORM_BATCH_SIZE = 4
#: On a CUDA GPU (torch): the CPU's small batches leave the GPU idle (benchmarks/README.md, "GPU").
CUDA_BATCH_SIZE = 256


def batch_size_for(engine: str, requested: int | None = None, device: str = "cpu", input_size: str | int | None = None,
                   backbone: str | None = None, precision: str = "fp32") -> int:
    """``requested`` when set (must be >= 1), else the measured default of the concrete ``engine`` on ``device``.

    :data:`CUDA_BATCH_SIZE` on CUDA. On a CPU, for patches resized to the network's input (``input_size`` an int
    or a ``"<side>:<mode>"`` label): :data:`INSTNORM_BATCH_SIZE` for a ``+instnorm`` ``backbone`` on any engine
    in fp32, else :data:`RESIZED_BATCH_SIZE`; for native-size patches (``input_size`` ``"native"`` or not given):
    :data:`BATCH_SIZES` (16 for an engine not listed).
    """
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f"batch_size must be >= 1, got {requested}")
        return int(requested)
    if device == "cuda":
        return CUDA_BATCH_SIZE
    if input_size is not None and str(input_size) != "native":
        return INSTNORM_BATCH_SIZE if _instnorm(backbone) and precision == "fp32" else RESIZED_BATCH_SIZE
    return BATCH_SIZES.get(engine, 16)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_budget(env: Mapping[str, str] | None = None, cores: int | None = None) -> int:
    """CPU threads for one heavy run: ``SEIS_THREADS``, else ``cores // SEIS_CONCURRENT_RUNS`` (at least 1).

    Raises ValueError naming the variable when one is not a positive integer.
    """
    if cores is None:
        cores = available_cores()

    def positive(name: str) -> int | None:
        raw = environment.env(name, env)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {raw!r}")
        return value

    explicit = positive("SEIS_THREADS")
    if explicit is not None:
        return explicit
    runs = positive("SEIS_CONCURRENT_RUNS") or 1
    return max(1, cores // runs)


# --------------------------------------------------------------------------- ONNX export cache
def default_cache_dir() -> str:
    """``$SEIS_ENGINE_CACHE`` or ``~/.cache/seis_assets/engines``."""
    return environment.env("SEIS_ENGINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "seis_assets", "engines")


def onnx_model_name(identity: Mapping) -> str:
    """File name of the exported model: the backbone identity, the torch version and the opset."""
    import torch

    parts = [identity["backbone"], identity["weights"], identity.get("weights_sha256") or "nofingerprint",
             str(identity["dim"]), f"torch{torch.__version__.split('+')[0]}", f"op{ONNX_OPSET}"]
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(p)) for p in parts) + ".onnx"


class _Pooled:
    """A torch module view of the backbone's model (EfficientNet-Lite is wrapped in a plain callable)."""

    @staticmethod
    def module(model):
        import torch

        if isinstance(model, torch.nn.Module):
            return model

        class Wrapped(torch.nn.Module):
            def __init__(self, fn):
                super().__init__()
                self.net = getattr(fn, "net", None)
                self.fn = fn

            def forward(self, x):
                return self.fn(x)

        return Wrapped(model)


def onnx_model_path(backbone, cache_dir=None, logger: logging.Logger | None = None) -> str:
    """Export ``backbone`` to ONNX once (batch, height and width dynamic) and return the cached file's path.

    A file already under its identity's name is reused without building anything.
    """
    log = logger or _LOG
    target = to_upath(cache_dir or default_cache_dir()) / onnx_model_name(backbone.identity)
    if target.exists():
        return str(target)
    import torch

    module = _Pooled.module(backbone.model)
    # a private fp32 NCHW copy on the CPU with ordinary tensors (a model first used under inference_mode holds
    # inference tensors, which tracing refuses); the backbone's own module is left as it is
    state = {k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format) for k, v in module.state_dict().items()}
    module = copy.deepcopy(module).to("cpu")
    module.load_state_dict(state, assign=True)
    module.eval()
    example = torch.zeros(2, 3, 64, 64)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation notes
        torch.onnx.export(
            module, example, buf, input_names=[_INPUT], output_names=["features"],
            dynamic_axes={_INPUT: {0: "n", 2: "h", 3: "w"}, "features": {0: "n"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    atomic_write_bytes(target, buf.getvalue())
    log.info("exported %s to %s (%.1f MB)", backbone.name, target, len(buf.getvalue()) / 1e6)
    return str(target)


# --------------------------------------------------------------------------- runners
class _OrtRunner:
    def __init__(self, model_bytes: bytes, threads: int):
        import onnxruntime as ort  # lazy: an optional engine

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {_INPUT: x})[0]


def openvino_pins_threads(threads: int, cores: int | None = None) -> bool:
    """Whether an OpenVINO runner of ``threads`` threads pins them to cores: only when it has every core this process
    may use. OpenVINO pins by default, and each process picks the same first cores, so processes that split a
    machine (Dask workers of one thread, ``SEIS_CONCURRENT_RUNS``) would all run on the same core
    (benchmarks/README.md, 3-D cubes: ``bench_engine_processes.py``)."""
    return threads >= (cores or available_cores())


class _OpenVinoRunner:
    def __init__(self, model_bytes: bytes, threads: int, precision: str = "fp32"):
        import openvino as ov  # lazy: an optional engine (extra 'openvino')

        core = ov.Core()
        hint = {"fp32": "f32", "bf16": "bf16"}[precision]
        if hint == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise ValueError("precision='bf16' on engine 'openvino' needs a CPU that OpenVINO runs bf16 on (native "
                             "bf16: amx_bf16 or avx512_bf16); this one would run f32. Use precision='fp32' or 'auto'")
        model = core.read_model(_local_copy(model_bytes))
        self.compiled = core.compile_model(
            model, "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint,
             "ENABLE_CPU_PINNING": openvino_pins_threads(threads)},
        )
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if ran != hint:
            raise RuntimeError(f"OpenVINO compiled the model for {ran}, not the {hint} asked for and recorded")
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: x})
        return np.asarray(next(iter(out.values())))


def _local_copy(data: bytes) -> str:
    """OpenVINO reads ONNX from a local file: a private temporary copy (removed at exit)."""
    fd, name = tempfile.mkstemp(suffix=".onnx")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    atexit.register(lambda: os.path.exists(name) and os.remove(name))
    return name


def runner(backbone, engine: str, cache_dir=None, threads: int | None = None, logger=None, precision: str = "fp32"):
    """A callable ``(n, 3, H, W) float32 ndarray -> (n, dim) float32 ndarray`` running ``backbone`` on ``engine``
    at the concrete ``precision`` (``bf16`` on OpenVINO only).

    Built once per (backbone, engine, cache, threads, precision) and kept on the backbone (``backbone.runners``).
    """
    if engine not in ("onnxruntime", "openvino"):
        raise ValueError(f"runner() is for the exported engines, got {engine!r}")
    if precision == "auto":
        raise ValueError("runner() needs a concrete precision, got 'auto'")
    _check_exported_precision(engine, precision)
    threads = threads or thread_budget()
    key = (engine, str(cache_dir), threads, precision)
    cached = backbone.runners.get(key)
    if cached is None:
        data = read_bytes(onnx_model_path(backbone, cache_dir, logger))
        cached = _OrtRunner(data, threads) if engine == "onnxruntime" else _OpenVinoRunner(data, threads, precision)
        backbone.runners[key] = cached
    return cached
