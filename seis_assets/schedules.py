"""When re-clustering runs: ``recluster_schedule`` on a cron (``SEIS_RECLUSTER_CRON``, default 03:00 daily).

Off until switched on in the UI (or by setting ``SEIS_RECLUSTER_SCHEDULE=on``): a re-clustering refits UMAP and
KMeans on every category's features, which should be a deliberate choice on a shared machine.
"""

import dagster as dg

from seis_assets.environment import env
from seis_assets.jobs import recluster_job

DEFAULT_RECLUSTER_CRON = "0 3 * * *"

recluster_schedule = dg.ScheduleDefinition(
    name="recluster_schedule",
    job=recluster_job,
    cron_schedule=env("SEIS_RECLUSTER_CRON") or DEFAULT_RECLUSTER_CRON,
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if (env("SEIS_RECLUSTER_SCHEDULE") or "off").lower() == "on"
        else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Refit the embedding and the clusters on all categories' features, then metrics and plots.",
)
