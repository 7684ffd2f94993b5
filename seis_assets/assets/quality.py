"""Per-category seismic QC attributes from the raw amplitudes (dead traces, clipping, spikes, polarity, noise bursts).

A separate asset rather than part of ``resnet_features``: it reads the arrays as stored (before the per-patch
scaling that feeds the network and hides clipping and dead traces), it is cheap and needs no backbone, and it is
findable by its name. It sits in the ingest group, so the same ``ingest_job`` run (launched by
``train_folder_sensor``) that extracts a category's features also computes its QC attributes.
"""

import dagster as dg
import pandas as pd

from seis_assets.assets import INGEST
from seis_assets.assets._metadata import markdown_preview
from seis_assets.core.matfiles import read_mat_array
from seis_assets.core.qc import QC_ATTRIBUTES, qc_table_reusing
from seis_assets.core.storage import read_parquet
from seis_assets.partitions import category_partitions
from seis_assets.resources import SeisPaths


@dg.asset(
    partitions_def=category_partitions,
    io_manager_key="parquet_io_manager",
    group_name=INGEST,
    kinds={"parquet"},
    description=(
        "QC attributes of every indexed patch of the category, from its raw amplitudes: share of dead traces, of "
        "clipped samples, of spikes, polarity reversal between neighbouring traces, noise bursts "
        "(seis_assets/core/qc.py). The anomalies asset scores them against the training patches."
    ),
)
def qc_attributes(context: dg.AssetExecutionContext, raw_mat_index: pd.DataFrame, paths: SeisPaths) -> pd.DataFrame:
    # the cache, as for resnet_features: this partition's earlier table (or the shard it was split from)
    category = context.partition_key
    previous = paths.previous_table("qc_attributes", category)
    table, n_reused = qc_table_reusing(
        raw_mat_index, lambda p: read_mat_array(p, paths.mat_key), read_parquet(previous) if previous else None
    )
    context.log.info(f"[{category}] QC attributes: {len(table) - n_reused} computed, {n_reused} reused (same sha256)")
    context.add_output_metadata(
        {
            "n_patches": len(table),
            "n_computed": len(table) - n_reused,
            "n_reused": n_reused,
            "medians": dg.MetadataValue.md(
                markdown_preview(table[list(QC_ATTRIBUTES)].median().rename("median").reset_index(), n=10)
            ),
        }
    )
    return table
