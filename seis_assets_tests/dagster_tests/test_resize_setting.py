"""The ``resize`` feature setting and its environment variable."""

import pytest

from seis_assets.resources import FeatureSettings


def test_feature_settings_resize_from_env(monkeypatch):
    monkeypatch.setenv("SEIS_RESIZE", "crop")
    monkeypatch.delenv("SEIS_INPUT_SIZE", raising=False)
    assert FeatureSettings.from_env().input_size_value() == "224:crop"
    assert FeatureSettings.from_env(input_size="native").input_size_value() == "native"
    with pytest.raises(ValueError, match="resize"):
        FeatureSettings(resize="squash").input_size_value()


def test_backbone_from_env_is_instance_normalised_when_surveys_are_mapped(monkeypatch, tmp_path):
    from seis_assets.resources import SURVEY_MAPPING_BACKBONE

    monkeypatch.delenv("SEIS_BACKBONE", raising=False)
    monkeypatch.delenv("SEIS_SEGY", raising=False)
    assert FeatureSettings.from_env().backbone == "auto"
    monkeypatch.setenv("SEIS_SEGY", str(tmp_path / "line.sgy"))
    assert FeatureSettings.from_env().backbone == SURVEY_MAPPING_BACKBONE == "auto+instnorm"
    monkeypatch.setenv("SEIS_BACKBONE", "efficientnet_lite0")  # an explicit choice wins
    assert FeatureSettings.from_env().backbone == "efficientnet_lite0"
