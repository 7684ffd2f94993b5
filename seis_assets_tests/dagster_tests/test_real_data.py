"""The pipeline on a small subset of the real F3 patches (read in place through links, never copied)."""

import json

import dagster as dg
import pytest

from .helpers import materialize_all, resources_for

pytestmark = pytest.mark.slow

PER_CLASS = 20


@pytest.fixture
def f3_subset(f3_dir, tmp_path):
    """train/<class>/ folders of links to the first PER_CLASS real files of each class."""
    train = tmp_path / "f3_train"
    for folder in sorted(p for p in f3_dir.iterdir() if p.is_dir()):
        (train / folder.name).mkdir(parents=True)
        for f in sorted(folder.glob("*.mat"))[:PER_CLASS]:
            (train / folder.name / f.name).symlink_to(f)
    return tmp_path, train


def test_real_f3_subset_clusters_with_the_default_backbone(f3_subset):
    root, train = f3_subset
    categories = sorted(p.name for p in train.iterdir())
    assert categories == ["chaotic", "fault", "other", "salt dome"]
    resources = resources_for(root, backbone="auto", train=train)
    (root / "outputs").mkdir()
    (root / "outputs" / "confusion_matrix.png").write_bytes(b"left by an earlier run on a set with a test split")
    with dg.instance_for_test() as instance:
        result = materialize_all(root, instance, categories, resources)
        assert result.success
    doc = json.loads((root / "outputs" / "metrics.json").read_text())
    assert doc["n_train"] == 4 * PER_CLASS and doc["n_quarantined"] == 0
    assert doc["categories"] == categories
    # offline, `auto` falls back to the packaged EfficientNet-Lite0 and says so in the outputs
    assert doc["backbone"] in {"resnet50", "efficientnet_lite0"}
    if doc["backbone"] == "efficientnet_lite0":
        assert "ResNet50" in doc["fallback_reason"]
    # no test folder: no test predictions, and no made-up accuracy
    assert doc["n_test"] == 0 and doc["accuracy_test"] is None and doc["anomaly_roc_auc"] is None
    assert not (root / "outputs" / "confusion_matrix.png").exists()  # a stale matrix would describe other data
    # the seed's artifact: the network that made the features, with its identity
    import torch

    saved = torch.load(root / "outputs" / "feature_extractor.pth", weights_only=False)
    assert saved["identity"]["backbone"] == doc["backbone"] and len(saved["state_dict"]) > 100
    # real F3 classes separate well with ImageNet features (ARI 1.0 measured on this subset; chance is 0)
    assert doc["ari"] > 0.8
