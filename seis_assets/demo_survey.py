"""Map SEG-Y surveys nobody has labelled: ``segy_settings.models=survey``, no patches, then score against
interpreters' labels where a section has them.

``make demo-survey`` runs this on the real F3 inline 241 of ``../shared/data/labelled_sections``. For every file
``SEIS_SEGY`` names, ``segy_job`` cuts its windows, fits UMAP + KMeans on them alone and votes the clusters back
onto every sample (``outputs/sections/<survey>/``). Where ``<stem>_labels.npy`` lies beside the SEG-Y
(:func:`seis_assets.core.map_vs_labels.labels_beside`), the map read back from ``facies_labels.sgy`` is scored
against it beside the depth-band baseline, and ``map_vs_labels.png`` shows the two.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg
import pandas as pd

from seis_assets.core.map_vs_labels import (
    compare_map,
    labels_beside,
    load_labels,
    map_vs_labels_figure,
    png_bytes,
    read_map_segy,
    read_section,
)
from seis_assets.core.segy import list_segy_files, survey_name
from seis_assets.core.storage import atomic_write_bytes
from seis_assets.definitions import defs
from seis_assets.demo import QUIET_LOGS, require_dagster_home
from seis_assets.demo_segy import run_surveys


def score_against_labels(segy_path: str, folder, map_class: str = "cluster") -> dict | None:
    """Scores of the map in ``folder`` against the labels beside ``segy_path`` (None when it has none); writes
    ``map_vs_labels.png`` into ``folder``."""
    labels_path = labels_beside(segy_path)
    if labels_path is None:
        return None
    cluster_map = read_map_segy(folder / "facies_labels.sgy")
    labels = load_labels(labels_path, cluster_map.shape)
    k = len(pd.read_csv(str(folder / "facies_legend.csv")))
    result = compare_map(cluster_map, labels, k)
    section, times = read_section(segy_path)
    fig = map_vs_labels_figure(section, cluster_map, labels, result["matching"], survey_name(segy_path), result,
                               t0_ms=float(times[0]), dt_ms=float(times[1] - times[0]), map_class=map_class)
    result["figure"] = atomic_write_bytes(folder / "map_vs_labels.png", png_bytes(fig))
    result["labels"] = str(labels_path)
    return result


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    require_dagster_home("make demo-survey")
    settings, paths = defs.resources["segy_settings"], defs.resources["paths"]
    if not settings.segy:
        raise SystemExit("SEIS_SEGY names no survey: set it to SEG-Y files or folders (make demo-survey sets it)")
    if settings.models != "survey":
        raise SystemExit(f"segy_settings.models is {settings.models!r}: this demo maps without patches, "
                         "set SEIS_SEGY_MODELS=survey (make demo-survey does)")
    with dg.DagsterInstance.get() as instance:
        run_surveys(defs, instance, QUIET_LOGS)
    for path in list_segy_files(settings.segy):
        folder = paths.outputs / "sections" / survey_name(path)
        result = score_against_labels(path, folder, "map unit" if settings.units else "cluster")
        if result is None:
            print(f"\n{survey_name(path)}: no interpreters' labels beside it (<stem>_labels.npy): map not scored")
            continue
        print(f"\n{survey_name(path)} against {result['labels']}:\n"
              f"  survey map      ARI {result['ari']:.3f}  NMI {result['nmi']:.3f}  mIoU {result['miou']:.3f}"
              + (f"  (no class on {result['no_class']:.1%} of samples: traces without data)"
                 if result["no_class"] else "") + "\n"
              f"  {result['k']:>2} depth bands  ARI {result['depth_band_ari']:.3f}  NMI {result['depth_band_nmi']:.3f}  "
              f"mIoU {result['depth_band_miou']:.3f}\n"
              f"  side by side: {result['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
