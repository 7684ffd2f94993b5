"""Parquet IO manager: ``<base>/<asset>/<partition>.parquet`` (or ``<base>/<asset>.parquet``), written atomically.

Tables are pandas DataFrames. An asset that streams a large table itself (``resnet_features`` writes row groups
as it goes, so memory stays flat) returns a :class:`WrittenTable` naming the file it wrote; the IO manager checks
that it is the path it would have chosen and only reports it. Loading a missing partition raises
``FileNotFoundError`` so ``allow_missing_partitions`` works; an unpartitioned downstream asset receives
``dict[partition_key, DataFrame]``. An input declared ``dg.AssetIn(metadata={LAZY: True})`` gets a
:class:`~seis_assets.core.storage.ParquetTable` instead, for tables larger than memory (``survey_windows``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

import dagster as dg
import pandas as pd
from upath import UPath

from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from seis_assets.core.storage import ParquetTable, atomic_path, read_parquet, write_parquet_atomic

PARQUET = ".parquet"
#: ``dg.AssetIn(metadata={LAZY: True})``: the input arrives as a :class:`~seis_assets.core.storage.ParquetTable`
#: (columns on demand, rows in batches) instead of a DataFrame
LAZY = "lazy"


def table_path(base: UPath | str, asset: str, partition: Optional[str] = None) -> UPath:
    """The one layout of the warehouse: ``base/asset/partition.parquet`` or ``base/asset.parquet``."""
    base = UPath(base)
    if partition is None:
        return base / f"{asset}{PARQUET}"
    if "/" in partition or partition in {".", ".."}:
        raise ValueError(f"partition key {partition!r} cannot be a file name")
    return base / asset / f"{partition}{PARQUET}"


@dataclasses.dataclass(frozen=True)
class WrittenTable:
    """Returned by an asset that already wrote its Parquet file at ``path`` (streamed row groups)."""

    path: str
    row_count: int


def _same_path(a: UPath | str, b: UPath | str) -> bool:
    a, b = str(a), str(b)
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = PARQUET

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, WrittenTable):
            if not _same_path(obj.path, path):
                raise ValueError(
                    f"{context.asset_key.to_user_string()} wrote {obj.path}, but the warehouse layout puts it at {path}"
                )
            if not path.exists():
                raise FileNotFoundError(f"{context.asset_key.to_user_string()} reported {path}, which does not exist")
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"ParquetIOManager stores pandas DataFrames; {context.asset_key.to_user_string()} returned "
                f"{type(obj).__name__}"
            )
        write_parquet_atomic(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: materialize {context.asset_key.to_user_string()} first")
        if (context.definition_metadata or {}).get(LAZY):
            return ParquetTable(path)
        return read_parquet(path)

    def get_metadata(self, context: dg.OutputContext, obj: Any) -> dict[str, Any]:
        rows = obj.row_count if isinstance(obj, WrittenTable) else len(obj)
        return {"row_count": dg.MetadataValue.int(int(rows))}


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores DataFrame assets as Parquet under ``base_path`` (a folder or a bucket URL)."""

    base_path: str

    def create_io_manager(self, context) -> _ParquetUPathIOManager:
        return _ParquetUPathIOManager(base_path=UPath(self.base_path))


class _AtomicPickleIOManager(PickledObjectFilesystemIOManager):
    """Dagster's pickle IO manager, but each pickle is written to a temporary sibling and moved onto its name
    (``storage.atomic_path``), so a crash mid-write never leaves a truncated pickle for the next step."""

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        with atomic_path(path) as tmp:
            super().dump_to_path(context, obj, UPath(tmp))


class AtomicPickleIOManager(dg.ConfigurableIOManagerFactory):
    """The default IO manager of the project (fitted models, metric dicts passed between steps): pickles under
    ``base_dir`` (a folder or a bucket URL), written atomically."""

    base_dir: str

    def create_io_manager(self, context) -> _AtomicPickleIOManager:
        return _AtomicPickleIOManager(base_dir=self.base_dir)
