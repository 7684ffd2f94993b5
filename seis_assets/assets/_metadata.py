"""Small helpers that turn results into Dagster metadata (kept tiny: large inline metadata breaks the UI)."""


import dagster as dg
import pandas as pd

from seis_assets.core.plots import thumbnail_markdown

MAX_PREVIEW_ROWS = 10


def markdown_preview(df: pd.DataFrame, n: int = MAX_PREVIEW_ROWS, floatfmt: str = ".3f") -> str:
    """The first ``n`` rows of ``df`` as a markdown table (says how many rows are not shown)."""
    if df.empty:
        return "_empty_"
    text = df.head(n).to_markdown(index=False, floatfmt=floatfmt)
    if len(df) > n:
        text += f"\n\n_{len(df) - n} more rows_"
    return text


def image_metadata(path: str) -> dg.MetadataValue:
    """A PNG shown inline as a small thumbnail (bounded size), followed by the full-size file's path."""
    return dg.MetadataValue.md(f"{thumbnail_markdown(path, max_px=480, max_bytes=80_000)}\n\n`{path}`")
