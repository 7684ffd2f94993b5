"""What ``engine=auto`` does on a CUDA GPU: the engine and precision it picks, the cosine of its features to CPU
fp32, and throughput per batch size.

Usage (on a machine with a CUDA GPU; the project's own machines have none)::

    PYTHONPATH=$PWD python benchmarks/bench_gpu.py [--n 1024]

For each backbone (EfficientNet-Lite0 with its shipped ImageNet weights; ResNet50 with ImageNet weights when they
resolve, else randomly initialised: throughput does not depend on weight values) and input size (224, native 99):

- ``table_identity(backbone on cuda, size, precision="auto", engine="auto")``: what the pipeline would record;
- cosine, per patch, of ``embed`` on the GPU (auto precision, fp32 and fp16) against ``embed`` on the CPU in fp32,
  same 64 smooth random patches (the minimum over patches is printed; the project's gate is 0.999);
- img/s of ``embed`` on the GPU with the auto precision at batch 16, 64 and 256, and in fp32 and fp16 at batch 256
  (``--n`` patches after one warm-up batch; ``embed`` returns host arrays, so every batch is synchronised).

The last line is ``gpu device= ...`` with the fastest auto-precision rate per backbone at 224.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def patches(n: int, size: int = 99, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.standard_normal((n, size, size)).astype(np.float32), (0, 2, 2))
    return a / np.abs(a).max(axis=(1, 2), keepdims=True)


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(1)
    return float((num / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def backbone_pair(name: str, tmp: Path):
    """(cpu backbone, cuda backbone, note) with the same weights."""
    import torch
    import torchvision

    from seis_assets.core.backbones import load_backbone

    if name != "resnet50":
        return load_backbone(name, device="cpu"), load_backbone(name, device="cuda"), "shipped ImageNet weights"
    try:
        return load_backbone(name, device="cpu"), load_backbone(name, device="cuda"), "ImageNet IMAGENET1K_V1"
    except RuntimeError:
        torch.manual_seed(0)
        path = tmp / "resnet50_random_init.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
        return (load_backbone(name, weights_path=path, device="cpu"),
                load_backbone(name, weights_path=path, device="cuda"), "random weights")


def main(argv=None) -> int:
    import torch

    from seis_assets.core.feature_table import table_identity
    from seis_assets.core.features import embed

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1024, help="patches per throughput cell")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 2
    device_name = torch.cuda.get_device_name(0)
    print(f"device: {device_name}; torch {torch.__version__}; bf16 supported: {torch.cuda.is_bf16_supported()}")
    P = patches(max(args.n, 64))
    best = {}
    print("| backbone | input | auto engine | auto precision | cosine auto vs CPU fp32 | cosine GPU fp32 | cosine GPU fp16 "
          "| img/s b16 | img/s b64 | img/s b256 | img/s fp32 b256 | img/s fp16 b256 |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("efficientnet_lite0", "resnet50"):
            cpu, gpu, note = backbone_pair(name, Path(tmp))
            for size in (224, "native"):
                ident = table_identity(gpu, size, "auto", "auto")
                engine, precision = ident["engine"], ident["precision"]
                ref = embed(cpu, P[:64], size, "fp32", "torch")
                cos_auto = cosine_min(embed(gpu, P[:64], size, precision, engine), ref)
                cos_fp32 = cosine_min(embed(gpu, P[:64], size, "fp32", "torch"), ref)
                cos_fp16 = cosine_min(embed(gpu, P[:64], size, "fp16", "torch"), ref)
                rates = []
                for bs in (16, 64, 256):
                    embed(gpu, P[:bs], size, precision, engine)  # warm-up (cudnn autotune, allocator)
                    t = time.perf_counter()
                    for i in range(0, args.n, bs):
                        embed(gpu, P[i : i + bs], size, precision, engine)
                    rates.append(args.n / (time.perf_counter() - t))
                for other in ("fp32", "fp16"):
                    embed(gpu, P[:256], size, other, "torch")
                    t = time.perf_counter()
                    for i in range(0, args.n, 256):
                        embed(gpu, P[i : i + 256], size, other, "torch")
                    rates.append(args.n / (time.perf_counter() - t))
                if size == 224:
                    best[name] = max(rates[:3])
                print(f"| {name} ({note}) | {size} | {engine} | {precision} | {cos_auto:.6f} | {cos_fp32:.6f} | "
                      f"{cos_fp16:.6f} | " + " | ".join(f"{r:.0f}" for r in rates) + " |", flush=True)
    print(f"gpu device={device_name.replace(' ', '_')} "
          + " ".join(f"{k}_224_img_s={v:.0f}" for k, v in best.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
