"""Small helpers that turn results into Dagster metadata (kept tiny: large inline metadata breaks the UI)."""


import base64
import io

import dagster as dg
import pandas as pd

MAX_PREVIEW_ROWS = 10


def markdown_preview(df: pd.DataFrame, n: int = MAX_PREVIEW_ROWS, floatfmt: str = ".3f") -> str:
    """The first ``n`` rows of ``df`` as a markdown table (says how many rows are not shown)."""
    if df.empty:
        return "_empty_"
    text = df.head(n).to_markdown(index=False, floatfmt=floatfmt)
    if len(df) > n:
        text += f"\n\n_{len(df) - n} more rows_"
    return text


def image_metadata(path: str, max_px: int = 360) -> dg.MetadataValue:
    """A PNG shown inline as a small thumbnail (a few tens of KB), linked to the full-size file by its path."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_px, max_px))
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
    data = base64.b64encode(buf.getvalue()).decode()
    return dg.MetadataValue.md(f"![{path}](data:image/png;base64,{data})\n\n`{path}`")
