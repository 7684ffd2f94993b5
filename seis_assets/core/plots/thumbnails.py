"""Small inline PNGs as Markdown, for Dagster metadata (a large inline blob breaks the UI: dagster issue #17189)."""

from __future__ import annotations

import base64
import io

from PIL import Image

from seis_assets.core.plots._figure import PathLike
from seis_assets.core.storage import read_bytes

THUMBNAIL_MAX_PX = 320
THUMBNAIL_MAX_BYTES = 50_000


def thumbnail_markdown(path: PathLike, max_px: int = THUMBNAIL_MAX_PX,
                       max_bytes: int = THUMBNAIL_MAX_BYTES) -> str:
    """A small inline PNG as Markdown, for Dagster metadata.

    The image is shrunk to at most ``max_px`` on its longer side (halved again
    until the base64 text is under ``max_bytes``), so the UI is never handed a
    large inline blob (dagster issue #17189).

    Returns
    -------
    markdown : str ``"![<file name>](data:image/png;base64,...)"``, len < max_bytes.
    """
    name = str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]

    with Image.open(io.BytesIO(read_bytes(path))) as im:
        im = im.convert("RGB")
        px = max_px
        while True:
            thumb = im.copy()
            thumb.thumbnail((px, px), Image.LANCZOS)
            buf = io.BytesIO()
            thumb.quantize(colors=64).save(buf, format="PNG", optimize=True)
            b64 = base64.b64encode(buf.getvalue()).decode("ascii")
            md = f"![{name}](data:image/png;base64,{b64})"
            if len(md) < max_bytes or px <= 16:
                return md
            px //= 2
