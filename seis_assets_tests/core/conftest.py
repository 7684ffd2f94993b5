"""Fixtures shared by the science tests."""

import pytest


@pytest.fixture(scope="module")
def random_resnet_file(tmp_path_factory):
    """A state dict saved from an untouched torchvision resnet50() (random init, no download)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet50_random.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path
