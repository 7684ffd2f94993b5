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
