"""When re-clustering runs: ``recluster_schedule`` on a cron (``SEIS_RECLUSTER_CRON``, default 03:00 daily).

Off until switched on in the UI (or by setting ``SEIS_RECLUSTER_SCHEDULE=on``): a re-clustering refits UMAP and
KMeans on every category's features, which should be a deliberate choice on a shared machine.
"""

import os

import dagster as dg

from seis_assets.jobs import recluster_job

DEFAULT_RECLUSTER_CRON = "0 3 * * *"

recluster_schedule = dg.ScheduleDefinition(
    name="recluster_schedule",
    job=recluster_job,
    cron_schedule=os.environ.get("SEIS_RECLUSTER_CRON", DEFAULT_RECLUSTER_CRON),
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if os.environ.get("SEIS_RECLUSTER_SCHEDULE", "off").lower() == "on"
        else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Refit the embedding and the clusters on all categories' features, then metrics and plots.",
)
