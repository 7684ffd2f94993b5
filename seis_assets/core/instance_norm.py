"""Per-image instance normalisation in a CNN's shallow layers (the network surgery behind ``+instnorm``).

The BatchNorm layers of the stem and of every block whose output is at stride :data:`INSTNORM_MAX_STRIDE` or finer
keep their learnt scale and shift but normalise each image by its own per-channel mean and variance instead of
ImageNet's running ones (:func:`seis_assets.core.backbones.instance_normalised` wraps a backbone with it).

torch is imported inside the functions, as in :mod:`seis_assets.core.backbones`: importing this module costs nothing.
"""

from __future__ import annotations

__all__ = ["INSTNORM_MAX_STRIDE", "output_sides", "shallow_batchnorms", "apply_instance_norm"]

#: Blocks whose output is at this stride or finer get instance normalisation under ``+instnorm``.
INSTNORM_MAX_STRIDE = 4


def _instance_norm_module(bn):
    """A module that normalises each image by its own per-channel mean and variance, then applies ``bn``'s affine.

    ``F.instance_norm`` (exported to ONNX as InstanceNormalization, so the ONNX Runtime / OpenVINO engines run it).
    """
    import torch
    import torch.nn.functional as F

    class InstanceNormFromBN(torch.nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.weight = bn.weight
            self.bias = bn.bias
            self.eps = bn.eps

        def forward(self, x):
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)

    return InstanceNormFromBN(bn)


def _units(net) -> list:
    """The network's stem and blocks in forward order (torchvision ResNet or EfficientNet-Lite trunk)."""
    if hasattr(net, "_blocks"):  # efficientnet_lite_pytorch.EfficientNet
        return [net._bn0, *net._blocks]
    if hasattr(net, "layer1"):  # torchvision ResNet
        return [net.bn1, *(block for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for block in layer)]
    raise TypeError(f"instance normalisation: unknown network {type(net).__name__}")


def output_sides(net, modules: list, input_size: int = 224) -> list[int]:
    """The output width of each of ``modules`` (parts of ``net``) when one ``input_size`` image goes through ``net``."""
    import torch

    sizes: dict[int, int] = {}

    def recorder(j):
        def hook(module, inputs, output):  # returns None: the output is left as it is
            sizes.setdefault(j, output.shape[-1])
        return hook

    hooks = [m.register_forward_hook(recorder(j)) for j, m in enumerate(modules)]
    try:
        with torch.inference_mode():
            x = torch.zeros(1, 3, input_size, input_size, device=next(net.parameters()).device)
            (net.extract_features if hasattr(net, "extract_features") else net)(x)
    finally:
        for h in hooks:
            h.remove()
    return [sizes[j] for j in range(len(modules))]


def shallow_batchnorms(net, input_size: int = 224, max_stride: int = INSTNORM_MAX_STRIDE) -> list[str]:
    """Names (in ``net.named_modules()``) of the BatchNorm layers of the stem and of every block whose output is
    at stride ``max_stride`` or finer, found by running one ``input_size`` image through ``net``."""
    import torch

    units = _units(net)
    sizes = output_sides(net, units, input_size)
    shallow = {id(m) for j, u in enumerate(units) if input_size / sizes[j] <= max_stride for m in u.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    names = [name for name, module in net.named_modules() if id(module) in shallow]
    return names


def apply_instance_norm(net, names: list[str]):
    """``net`` with each BatchNorm named in ``names`` replaced by per-image instance normalisation (in place)."""
    for name in names:
        parent_name, _, last = name.rpartition(".")
        parent = net.get_submodule(parent_name)  # "" is net itself
        setattr(parent, last, _instance_norm_module(getattr(parent, last)))
    return net
