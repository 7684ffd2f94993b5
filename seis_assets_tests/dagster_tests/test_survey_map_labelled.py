"""The survey path end to end on a real section with interpreters' labels: ``survey_windows`` + ``facies_map`` with
``segy_settings.models=survey`` map F3 inline 241 without any patch, and the map read back from
``facies_labels.sgy`` is scored against the interpreters' labels (``seis_assets.core.section_scores``).

Skipped when ``../shared/data/labelled_sections`` is absent. A coarser window grid than the default (stride 33, not
11) keeps it near a minute on two cores; the full-grid scores are benchmarks/bench_labelled_sections.py's.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import segyio

from seis_assets.core.section_scores import baseline_scores, score_map
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import SURVEY_PARTITIONS_NAME
from seis_assets.resources import SURVEY_MAPPING_BACKBONE, FeatureSettings, SegySettings

from .helpers import resources_for

pytestmark = pytest.mark.slow

LABELLED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "labelled_sections"
SECTION = LABELLED / "inline_241.sgy"
LABELS = LABELLED / "inline_241_labels.npy"
K = 4  # the asset's default for models=survey (segy_settings.k = 0)
#: Floors below what this test measured on 2 cores (ARI 0.336, NMI 0.581, mIoU 0.206 at k = 4, stride 33), so a
#: broken survey path fails while float noise of another machine does not; chance level is ARI 0, NMI near 0.
FLOOR = {"ari": 0.25, "nmi": 0.45, "miou": 0.15}


@pytest.fixture(scope="module")
def survey_map(tmp_path_factory):
    if not (SECTION.exists() and LABELS.exists()):
        pytest.skip(f"labelled F3 sections not found at {LABELLED}")
    root = tmp_path_factory.mktemp("labelled") / "data"
    resources = resources_for(root)
    resources["feature_settings"] = FeatureSettings(backbone=SURVEY_MAPPING_BACKBONE)
    resources["segy_settings"] = SegySettings(segy=str(SECTION), models="survey", stride=33)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SURVEY_PARTITIONS_NAME, [SECTION.name])
        result = dg.materialize(ALL_ASSETS, selection=["survey_windows", "facies_map"], partition_key=SECTION.name,
                                resources=resources, instance=instance)
    assert result.success
    return root / "outputs" / "sections" / SECTION.name


def test_the_labels_segy_keeps_the_sections_geometry(survey_map):
    with segyio.open(str(SECTION), ignore_geometry=True) as src, \
            segyio.open(str(survey_map / "facies_labels.sgy"), ignore_geometry=True) as out:
        assert out.tracecount == src.tracecount == 951
        np.testing.assert_array_equal(out.samples, src.samples)
        np.testing.assert_array_equal(out.attributes(segyio.TraceField.CROSSLINE_3D)[:],
                                      src.attributes(segyio.TraceField.CROSSLINE_3D)[:])
        labels_segy = out.trace.raw[:]
    assert set(np.unique(labels_segy)) == set(map(float, range(K)))
    legend = pd.read_csv(survey_map / "facies_legend.csv")
    assert legend["category"].tolist() == [f"cluster {c}" for c in range(K)]


def test_the_survey_map_agrees_with_the_interpreters_labels_far_above_chance(survey_map):
    with segyio.open(str(survey_map / "facies_labels.sgy"), ignore_geometry=True) as out:
        clusters = out.trace.raw[:].astype(np.int64).T  # samples x traces, as the labels
    labels = np.load(LABELS)
    scores, bands = score_map(clusters, labels), baseline_scores(labels, K)
    # k = 4 equal depth bands score ARI 0.444 here: at this k and grid the survey map does not beat depth alone
    # (benchmarks/README.md, "Survey maps against interpreters' labels"); the floors guard the path, not the goal
    for name, floor in FLOOR.items():
        assert scores[name] >= floor, (name, scores, bands)
