"""The network input: how a stack of [-1, 1] patches becomes normalised 3-channel images for a CNN.

Patches are read as image intensity in [0, 1] (``(p + 1) / 2``, the seed's per-patch min-max without its uint8
rounding), brought to the square ``input_size`` (224 by default, the seed's choice; ``"native"`` keeps the patch
size, about 1/5 of the compute at 99x99) by a resize mode, replicated to 3 channels and normalised with the
backbone's mean/std, in channels_last layout. The input size and resize mode are recorded together as one label
(``"224:pad"``, ``"native"``) in every feature table and model, so features made with another input are never
reused or mixed.
"""

from __future__ import annotations

__all__ = ["DEFAULT_INPUT_SIZE", "RESIZE_MODES", "DEFAULT_RESIZE", "input_size_label", "input_spec", "preprocess"]

DEFAULT_INPUT_SIZE = 224
#: How a patch is brought to the square network input (antialiased bilinear): ``stretch`` squashes each axis on its
#: own, ``pad`` keeps the aspect ratio and fills with zero amplitude, ``crop`` keeps the aspect ratio and cuts the centre.
RESIZE_MODES: tuple[str, ...] = ("stretch", "pad", "crop")
DEFAULT_RESIZE = "stretch"


def input_size_label(input_size: int | str) -> str:
    """Canonical label of an input size and resize mode: ``"native"`` or ``"<side>:<resize>"``.

    Accepted: ``"native"``, an int or digit string (the side; resize mode :data:`DEFAULT_RESIZE`), or
    ``"<side>:<resize>"`` with resize in :data:`RESIZE_MODES`. The label is what tables and models record, so
    features made with another size or resize mode are never reused or mixed.
    """
    if isinstance(input_size, str) and input_size == "native":
        return "native"
    text = str(input_size)
    side, _, mode = text.partition(":")
    mode = mode or DEFAULT_RESIZE
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {mode!r} (in input_size {input_size!r})")
    try:
        size = int(side)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be a positive int, 'native' or '<int>:<resize>', got {input_size!r}") from None
    if size < 8:
        raise ValueError(f"input_size must be >= 8 pixels, got {size}")
    return f"{size}:{mode}"


def input_spec(input_size: int | str, resize: str = "") -> str:
    """The label of ``input_size`` (int, digit string or ``"native"``) resized with ``resize``.

    ``resize`` (one of :data:`RESIZE_MODES`, empty = :data:`DEFAULT_RESIZE`) is ignored for ``"native"``
    (nothing is resized). This is what :func:`~seis_assets.core.features.extract_features` and
    :func:`~seis_assets.core.features.embed` take as ``input_size``.
    """
    if resize and resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if isinstance(input_size, str) and input_size == "native":
        return "native"
    if isinstance(input_size, str) and ":" in input_size:
        raise ValueError(f"input_size {input_size!r} already names a resize mode; pass the side only")
    return input_size_label(f"{input_size}:{resize}" if resize else input_size)


def _resize_images(x, size: int, mode: str):
    """(n, 1, H, W) intensities in [0, 1] -> (n, 1, size, size), bilinear with antialiasing.

    stretch: each axis scaled on its own (changes the aspect ratio, hence dips, of non-square patches);
    pad: the longer side scaled to ``size`` (aspect kept), the rest filled with 0.5 (zero amplitude), centred;
    crop: the shorter side scaled to ``size`` (aspect kept), the centre ``size`` x ``size`` kept.
    """
    import torch.nn.functional as F  # lazy: torch is heavy and only the feature step needs it

    h, w = int(x.shape[-2]), int(x.shape[-1])
    if mode == "stretch":
        target = (size, size)
    else:
        scale = size / (max(h, w) if mode == "pad" else min(h, w))
        target = (max(1, round(h * scale)), max(1, round(w * scale)))
        if mode == "pad":
            target = (min(size, target[0]), min(size, target[1]))
        else:
            target = (max(size, target[0]), max(size, target[1]))
    if target != (h, w):
        # antialias low-passes before downsampling (aliasing otherwise turns steep dips into moire);
        # on upsampling it equals plain bilinear
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)
    th, tw = target
    if mode == "pad" and target != (size, size):
        top, left = (size - th) // 2, (size - tw) // 2
        x = F.pad(x, (left, size - tw - left, top, size - th - top), value=0.5)
    elif mode == "crop" and target != (size, size):
        top, left = (th - size) // 2, (tw - size) // 2
        x = x[..., top : top + size, left : left + size]
    return x



def preprocess(patches, input_size: int | str, mean, std, device: str = "cpu"):
    """Stack of [-1, 1] patches -> normalised 3-channel images.

    Parameters
    ----------
    patches : ndarray or torch.Tensor of shape (n, H, W), float32 in [-1, 1]
    input_size : int, "<int>:<resize>" or "native"
        Side of the square output, resized bilinearly with antialiasing (``align_corners=False``) by the
        resize mode (``stretch``, ``pad``, ``crop``; see :func:`input_spec`; a bare int uses
        :data:`DEFAULT_RESIZE`), or ``"native"`` to keep (H, W). Square patches come out the same in every mode.
    mean, std : sequence of 3 floats
        Normalisation of an RGB image in [0, 1].
    device : str

    Returns
    -------
    images : torch.Tensor of shape (n, 3, S, S) (or (n, 3, H, W)), float32, channels_last
    """
    import torch  # lazy, as above

    x = torch.as_tensor(patches, dtype=torch.float32, device=device)
    x = ((x + 1.0) * 0.5).unsqueeze(1)  # (n, 1, H, W) intensity in [0, 1]
    label = input_size_label(input_size)
    if label != "native":
        side, mode = label.split(":")
        x = _resize_images(x, int(side), mode)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)

