"""What every plot shares: the Agg figure, the PNG writer, the fonts, the colours and the patch helpers."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; harmless if already set

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from seis_assets.core.storage import atomic_write_bytes  # noqa: E402

DPI = 110
PATCH_CMAP = "gray"
PATCH_VMIN, PATCH_VMAX = -1.0, 1.0
FONT_SIZE = 10

PathLike = str | os.PathLike
Patches = np.ndarray | Sequence[np.ndarray] | Callable[[int], np.ndarray]


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: PathLike, dpi: int = DPI) -> str:
    """Write ``fig`` as a PNG at ``path`` atomically; return the path as a string.

    ``path`` may be a str, a pathlib.Path or a UPath (bucket URLs work). The PNG
    is rendered in memory and written through
    :func:`seis_assets.core.storage.atomic_write_bytes` (temporary sibling, then
    ``os.replace``), so readers never see a half-written image.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return atomic_write_bytes(path, buf.getvalue())


def palette(n: int) -> list:
    if n <= 10:
        cmap = matplotlib.colormaps["tab10"]
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = matplotlib.colormaps["tab20"]
        return [cmap(i) for i in range(n)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def get_patch(patches: Patches, i: int) -> np.ndarray:
    a = patches(int(i)) if callable(patches) else patches[int(i)]
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] in (1, 3):
        a = a.mean(axis=-1)
    if a.ndim != 2:
        raise ValueError(f"patch {i} is not 2-D: shape {a.shape}")
    return a


def draw_patch(ax, a: np.ndarray, cmap: str) -> None:
    ax.imshow(a, cmap=cmap, vmin=PATCH_VMIN, vmax=PATCH_VMAX, aspect="equal", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def cell_size(shape: tuple[int, int], width: float = 1.6) -> tuple[float, float]:
    """Inches (width, height) of one tile: same aspect as the patch, wide patches get wider tiles."""
    h, w = shape
    width = width * max(1.0, float(np.sqrt(w / h)))
    return width, width * h / w
