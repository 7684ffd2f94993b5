"""Choosing and checking the models a survey's windows are classified with (seis_assets/core/survey_models.py)."""

import numpy as np
import pandas as pd
import pytest

from seis_assets.core.feature_table import BackboneMismatchError
from seis_assets.core.qc import QC_ATTRIBUTES
from seis_assets.core.survey_models import check_window_identity, fit_survey_models, window_qc


def _windows(n=3, **identity):
    table = pd.DataFrame({"inline": range(n), "qc_dead": np.zeros(n), "qc_clipped": np.linspace(0, 1, n)})
    for key, value in {"backbone": "texture", "weights": "none", "input_size": "native", "precision": "fp32",
                       **identity}.items():
        table[key] = value
    return table


def test_window_qc_drops_the_prefix_and_names_each_window():
    qc = window_qc(_windows())
    assert list(qc.columns) == ["path", "dead", "clipped"]
    assert qc["path"].tolist() == ["window 0", "window 1", "window 2"]


def test_windows_made_with_another_backbone_are_refused_naming_the_difference():
    models = {"backbone": "texture", "weights": "none", "input_size": "native", "precision": "fp32"}
    check_window_identity(_windows(), models, "line.sgy")
    with pytest.raises(BackboneMismatchError, match=r"survey line.sgy: .*backbone 'resnet50' \(windows\) != 'texture'"):
        check_window_identity(_windows(backbone="resnet50"), models, "line.sgy")


def test_survey_models_give_k_unnamed_clusters():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.1, (30, 8)) for c in (0, 3, 6)])
    qc = window_qc(pd.DataFrame({f"qc_{a}": rng.uniform(0, 0.01, len(X)) for a in QC_ATTRIBUTES}))
    models = fit_survey_models(X, qc, 3, 42, None)
    assert models.kmeans.n_clusters == 3 and models.mapping["majority"].tolist() == ["", "", ""]
