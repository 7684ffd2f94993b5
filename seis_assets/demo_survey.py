"""Map SEG-Y surveys nobody has labelled: ``segy_settings.models=survey``, no patches, then show the scores against
interpreters' labels where a section has them.

``make demo-survey`` runs this on the real F3 inline 241 of ``../shared/data/labelled_sections``. For every file
``SEIS_SEGY`` names, ``segy_job`` cuts its windows, fits UMAP + KMeans on them alone and votes the clusters back
onto every sample (``outputs/sections/<survey>/``). Where ``<stem>_labels.npy`` lies beside the SEG-Y, the
``facies_map`` asset has scored the map against it beside the depth-band baseline
(:func:`seis_assets.core.map_vs_labels.score_section`: ``map_vs_labels.json`` and ``map_vs_labels.png``); this
prints those scores.
"""

from __future__ import annotations

import json
import logging
import sys

import dagster as dg

from seis_assets.core.map_vs_labels import FIGURE_FILE, SCORES_FILE, labels_beside
from seis_assets.core.segy import list_segy_files, survey_name
from seis_assets.definitions import defs
from seis_assets.demo import QUIET_LOGS, require_dagster_home
from seis_assets.demo_segy import run_surveys


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
        if labels_beside(path) is None:
            print(f"\n{survey_name(path)}: no interpreters' labels beside it (<stem>_labels.npy): map not scored")
            continue
        if not (folder / SCORES_FILE).exists():
            raise SystemExit(f"{path}: labels lie beside it but facies_map wrote no {folder / SCORES_FILE}: see the "
                             "run's log for why the map was not scored")
        result = json.loads((folder / SCORES_FILE).read_text())
        result["figure"] = str(folder / FIGURE_FILE)
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
