"""Figures for the clustering report, written as PNG files.

Every plot comes in two forms:

* ``<name>_figure(...) -> matplotlib.figure.Figure`` builds the figure (tests
  inspect legends and titles on it);
* ``<name>(..., path) -> str`` builds it, writes a PNG atomically (temporary file
  in the same folder, then ``os.replace``) and returns the path.

Figures are plain :class:`matplotlib.figure.Figure` objects rendered with the Agg
canvas: no ``pyplot``, no global figure registry, nothing to close, safe in
worker threads and processes.

Patches are shown as seismic sections: row 0 (shallowest time/depth) on top,
``vmin=-1, vmax=1`` (the loader's normalised range), grey scale by default,
``aspect="equal"`` so a 150 x 300 patch stays twice as wide as tall.

Arguments named ``patches`` accept an ``(n, H, W)`` array, a list of 2-D
arrays, or a callable ``i -> 2-D array`` (e.g. ``lambda i: load_patch(paths[i])``)
so galleries only load the patches they show.

Modules: :mod:`.scatter` (the 2-d embedding), :mod:`.diagnostics` (confusion matrix, k sweep), :mod:`.galleries`
(patches), :mod:`.thumbnails` (inline PNGs for Dagster metadata); what they share is in ``_figure``. Import the
functions from here, ``seis_assets.core.plots``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; harmless if already set

from seis_assets.core.plots._figure import DPI, PATCH_CMAP, save_figure  # noqa: E402
from seis_assets.core.plots.diagnostics import (  # noqa: E402
    confusion_figure, confusion_heatmap, k_sweep_figure, k_sweep_plot,
)
from seis_assets.core.plots.galleries import (  # noqa: E402
    anomaly_gallery, anomaly_gallery_figure, cluster_gallery, cluster_gallery_figure, novelty_neighbours_figure,
    novelty_neighbours_gallery, patch_gallery, patch_gallery_figure,
)
from seis_assets.core.plots.scatter import (  # noqa: E402
    scatter_clusters, scatter_clusters_figure, scatter_figure, scatter_labels,
)
from seis_assets.core.plots.thumbnails import thumbnail_markdown  # noqa: E402

__all__ = [
    "DPI",
    "PATCH_CMAP",
    "anomaly_gallery",
    "anomaly_gallery_figure",
    "cluster_gallery",
    "cluster_gallery_figure",
    "confusion_figure",
    "confusion_heatmap",
    "k_sweep_figure",
    "k_sweep_plot",
    "novelty_neighbours_figure",
    "novelty_neighbours_gallery",
    "patch_gallery",
    "patch_gallery_figure",
    "save_figure",
    "scatter_clusters",
    "scatter_clusters_figure",
    "scatter_figure",
    "scatter_labels",
    "thumbnail_markdown",
]
