"""Feature extraction benchmark: our extractor vs the seed's per-file pipeline, memory, and ARI per backbone.

Usage::

    .venv/bin/python benchmarks/bench_features.py            # everything (~5 min on 2 cores)
    .venv/bin/python benchmarks/bench_features.py --n 128 --skip-ari --skip-memory   # quick

Sections
--------
throughput  ``--n`` random smooth 99x99 patches in [-1, 1] (.mat, key img) in a temp dir, processed in
            chunks of ``--chunk`` files, ours then seed-style per chunk (fair under a shared machine). Same backbone
            (ResNet50; randomly initialised when the ImageNet weights are not available: throughput does
            not depend on weight values) through (a) ``extract_features`` at input_size 224, precision
            "auto", batch 64 and (b) the seed's pipeline: per-file loadmat, min-max to uint8, PIL RGB,
            resize 224 bilinear, ToTensor + ImageNet normalisation, fp32 NCHW, batch 64. Both exclude model
            construction and include one tiny warm-up batch outside the timing.
            With ``--engine auto`` (default) ours runs on the engine the auto rule picks for this CPU
            (seis_assets/core/engines.py); when that is not ONNX Runtime, ours is also timed on ONNX Runtime
            (the AVX2 path) in the same chunks, reported as ``ratio_onnxruntime``.
engines     forward pass alone (preprocessing included, preloaded patches) for ResNet50 and EfficientNet-Lite0 at
            224 and native, on torch fp32 / torch bf16 (bf16 CPUs only) / ONNX Runtime / OpenVINO: img/s and
            the minimum cosine to torch fp32 (``--engine-n``, 0 = skip).
cosine      our features vs fp32 features of the same model and the same preprocessing (min over patches).
memory      peak RSS of a child process that only runs ``extract_features`` on 2,000 vs 20,000 patches
            with the cheap ``texture`` backbone (the streaming / caching code is the same for every backbone).
ARI         UMAP 50-d (core.reduce) + KMeans k=4 (core.cluster) per backbone on a generated set at the
            default difficulty and on the real F3 patches in /work/shared/data/f3_patches (read in place).

The first line names the CPU model and its relevant flags (avx2, avx512*, amx*). The last line is
``features engine=... ours_img_s=... seed_style_img_s=... ratio=... [ratio_onnxruntime=...] cosine_min=...
peak_rss_mb=...`` (peak_rss_mb = the 20,000-patch run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seis_assets.core.engines import cpu_flags, has_native_bf16, thread_budget  # noqa: E402
from seis_assets.core.feature_table import table_identity  # noqa: E402
from seis_assets.core.features import DEFAULT_BATCH_SIZE  # noqa: E402

#: CPU flags worth naming next to a figure (vector width, bf16, VNNI, AMX).
SHOWN_FLAGS = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile", "amx_int8"}


def cpu_model() -> str:
    import re

    try:
        m = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), flags=re.MULTILINE)
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"

F3_ROOT = REPO.parent / "shared" / "data" / "f3_patches"


def write_patches(folder: Path, n: int, seed: int = 0, size: int = 99) -> pd.DataFrame:
    """n random smooth float32 patches in [-1, 1] as .mat files; returns an index (hashes, no loading)."""
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for start in range(0, n, 500):
        m = min(500, n - start)
        a = ndimage.gaussian_filter(rng.standard_normal((m, size, size)).astype(np.float32), (0, 2, 2))
        a /= np.abs(a).max(axis=(1, 2), keepdims=True)
        for j in range(m):
            p = folder / f"p_{start + j:05d}.mat"
            scipy.io.savemat(p, {"img": a[j]})
            rows.append(
                dict(path=str(p), category="bench", split="train", sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
                     height=size, width=size)
            )
    return pd.DataFrame(rows)


def resnet50_backbone(tmp: Path):
    """Real ResNet50 if its ImageNet weights resolve, else a randomly initialised one via weights_path."""
    import torch
    import torchvision

    from seis_assets.core.backbones import load_backbone

    try:
        return load_backbone("resnet50", device="cpu"), "ImageNet IMAGENET1K_V1 weights"
    except RuntimeError:
        torch.manual_seed(0)
        path = tmp / "resnet50_random_init.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
        note = "RANDOMLY INITIALISED weights (ImageNet weights not available; throughput does not depend on weight values)"
        return load_backbone("resnet50", weights_path=path, device="cpu"), note


SEED_BATCH_SIZE = 64  # the original script's batch


def seed_style(paths: list[str], model, batch_size: int = SEED_BATCH_SIZE) -> np.ndarray:
    """The seed's pipeline: per-file loadmat, min-max to uint8, PIL, resize 224, fp32 NCHW, batch 64."""
    import torch
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    out = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            imgs = []
            for p in paths[start : start + batch_size]:
                a = scipy.io.loadmat(p)["img"].astype(np.float64)
                a = ((a - a.min()) / (a.max() - a.min()) * 255).astype(np.uint8)
                imgs.append(tf(Image.fromarray(a).convert("RGB")))
            out.append(model(torch.stack(imgs)).numpy())
    return np.concatenate(out)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def throughput(args, tmp: Path) -> dict:
    """Ours vs seed-style on the same files, interleaved chunk by chunk so both see the same machine load."""
    import pyarrow.parquet as pq
    import torch

    from seis_assets.core.engines import resolve_precision
    from seis_assets.core.feature_table import feature_matrix
    from seis_assets.core.features import embed, extract_features
    from seis_assets.core.patches import load_patch

    index = write_patches(tmp / "throughput", args.n, seed=1)
    bb, note = resnet50_backbone(tmp)
    print(f"backbone: resnet50 with {note}")
    ident = table_identity(bb, 224, "auto", args.engine)
    engine, precision = ident["engine"], ident["precision"]
    cache = tmp / "engines"
    # the AVX2 path: what `auto` picks on a CPU without native bf16, measured here too when auto picked torch
    extra = [e for e in ("onnxruntime",) if e != engine and not args.skip_avx2_path]
    print(f"cpu cores: {len(os.sched_getaffinity(0))}, threads: {thread_budget()}, engine {args.engine} -> {engine} "
          f"({precision}), load average before: {os.getloadavg()[0]:.1f}")
    warm = np.zeros((2, 99, 99), np.float32)
    embed(bb, warm, 224, resolve_precision("auto", "cpu"))  # builds the model, warms oneDNN
    for e in {engine, *extra} - {"torch"}:
        embed(bb, warm, 224, "fp32", e, cache)  # exports (once) and builds the session outside the timing
    seed_model = None
    if not args.skip_seed:
        import copy

        seed_model = copy.deepcopy(bb.model).to(memory_format=torch.contiguous_format)  # same weights, NCHW
        seed_style(index["path"].tolist()[:2], seed_model)  # warm-up

    chunk = max(SEED_BATCH_SIZE, args.chunk)
    t_ours = t_seed = 0.0
    t_extra = dict.fromkeys(extra, 0.0)
    ours_tables, seed_X = [], []
    for i, start in enumerate(range(0, args.n, chunk)):
        part = index.iloc[start : start + chunk]
        t = time.perf_counter()
        extract_features(part, tmp / f"ours_{i}.parquet", bb, input_size=224, precision="auto",
                         engine=args.engine, engine_cache_dir=cache, batch_size=args.batch_size)
        t_ours += time.perf_counter() - t
        ours_tables.append(pq.read_table(tmp / f"ours_{i}.parquet"))
        for e in extra:
            t = time.perf_counter()
            extract_features(part, tmp / f"ours_{e}_{i}.parquet", bb, input_size=224, precision="auto",
                             engine=e, engine_cache_dir=cache, batch_size=args.batch_size)
            t_extra[e] += time.perf_counter() - t
        if seed_model is not None:
            t = time.perf_counter()
            seed_X.append(seed_style(part["path"].tolist(), seed_model, SEED_BATCH_SIZE))
            t_seed += time.perf_counter() - t
    ours = args.n / t_ours
    print(f"ours: {args.n} patches in {t_ours:.1f} s -> {ours:.1f} img/s (extract_features: read+hash+load, "
          f"batched torch preprocessing, input 224, engine {engine} {precision}, batch {args.batch_size}, "
          "streamed Parquet)")
    extra_rates = {e: args.n / t for e, t in t_extra.items()}
    for e, r in extra_rates.items():
        print(f"ours with engine {e} (fp32; what auto picks on a CPU without native bf16): {r:.1f} img/s")

    # cosine: our features vs fp32 features of the same model and the same preprocessing
    import pyarrow as pa

    table = pa.concat_tables(ours_tables)
    m = min(args.cosine_n, table.num_rows)
    ours_X = feature_matrix(table.slice(0, m))
    patches = np.stack([load_patch(p) for p in table.column("path").slice(0, m).to_pylist()])
    fp32_X = np.concatenate([embed(bb, patches[i : i + 32], 224, "fp32") for i in range(0, m, 32)])
    cos = cosine_rows(ours_X, fp32_X)
    print(f"cosine(ours {engine} {precision}, torch fp32 same preprocessing) over {m} patches: "
          f"min {cos.min():.6f}, mean {cos.mean():.6f}")
    result = dict(ours=ours, seed=float("nan"), cosine=float(cos.min()), engine=engine, extra=extra_rates)
    if seed_model is None:
        return result

    seed = args.n / t_seed
    print(f"seed-style: {args.n} patches in {t_seed:.1f} s -> {seed:.1f} img/s (per-file loadmat, min-max uint8, "
          f"PIL RGB resize 224 bilinear, fp32 NCHW, batch {SEED_BATCH_SIZE}); load average after: "
          f"{os.getloadavg()[0]:.1f}")
    order = {p: i for i, p in enumerate(index["path"])}
    seed_all = np.concatenate(seed_X)
    cs = cosine_rows(feature_matrix(table), seed_all[[order[p] for p in table.column("path").to_pylist()]])
    print(f"(info) cosine(ours, seed-style incl. its uint8 rounding): min {cs.min():.6f}")
    result["seed"] = seed
    return result


def engine_matrix(args, tmp: Path) -> None:
    """Forward pass only (preloaded patches, batch 16): img/s and cosine to torch fp32, per backbone, size, engine."""
    import torch

    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.features import embed

    P = np.stack([np.asarray(p) for p in _smooth_patches(args.engine_n, seed=3)])
    backbones = {"resnet50": resnet50_backbone(tmp)[0], "efficientnet_lite0": load_backbone("efficientnet_lite0", device="cpu")}
    runs = [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32")]
    bs = args.batch_size
    print(f"engine matrix: {len(P)} patches, batch {bs}, threads {torch.get_num_threads()}, forward incl. "
          "preprocessing, after one warm-up batch; cosine = min over patches vs torch fp32")
    print("| backbone | input | engine | precision | img/s | cosine min |")
    print("|---|---|---|---|---:|---:|")
    for name, bb in backbones.items():
        for size in (224, "native"):
            ref = np.concatenate([embed(bb, P[i : i + bs], size, "fp32") for i in range(0, len(P), bs)])
            for engine, precision in runs:
                if precision == "bf16" and not has_native_bf16(cpu_flags()):
                    continue
                embed(bb, P[:bs], size, precision, engine, tmp / "engines")  # warm-up (and export, once)
                t = time.perf_counter()
                X = np.concatenate([embed(bb, P[i : i + bs], size, precision, engine, tmp / "engines")
                                    for i in range(0, len(P), bs)])
                rate = len(P) / (time.perf_counter() - t)
                print(f"| {name} | {size} | {engine} | {precision} | {rate:.1f} | {cosine_rows(X, ref).min():.6f} |",
                      flush=True)


def _smooth_patches(n: int, seed: int, size: int = 99):
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.standard_normal((n, size, size)).astype(np.float32), (0, 2, 2))
    a /= np.abs(a).max(axis=(1, 2), keepdims=True)
    return a


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM; unlike ru_maxrss it is not inherited across fork/exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(index_path: str, out_path: str) -> None:
    """Child process: only the extraction; prints the report and peak RSS as JSON."""
    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.features import extract_features

    index = pd.read_parquet(index_path)
    before = peak_rss_mb()
    r = extract_features(index, out_path, load_backbone("texture"), batch_size=64)
    peak = peak_rss_mb()
    print(json.dumps(dict(n=r.n_rows, img_per_s=r.img_per_s, peak_rss_mb=peak, rss_before_mb=before)))


def memory(args, tmp: Path) -> float:
    index = write_patches(tmp / "memory", args.mem_large, seed=2)
    peaks = {}
    for n in (args.mem_small, args.mem_large):
        ip = tmp / f"index_{n}.parquet"
        index.iloc[:n].to_parquet(ip)
        res = subprocess.run(
            [sys.executable, __file__, "--_memory-child", str(ip), str(tmp / f"mem_{n}.parquet")],
            capture_output=True, text=True, check=True,
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        peaks[n] = r["peak_rss_mb"]
        print(f"memory (texture backbone, child process): {r['n']} patches, {r['img_per_s']:.0f} img/s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (after imports {r['rss_before_mb']:.0f} MB)")
    print(f"memory: peak RSS {args.mem_small} -> {args.mem_large} patches: "
          f"{peaks[args.mem_small]:.0f} -> {peaks[args.mem_large]:.0f} MB")
    return peaks[args.mem_large]


def ari_table(args, tmp: Path) -> None:
    from sklearn.metrics import adjusted_rand_score

    from seis_assets.core import synthetic
    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.cluster import fit_kmeans
    from seis_assets.core.feature_table import feature_matrix
    from seis_assets.core.features import extract_features
    from seis_assets.core.listing import list_categories
    from seis_assets.core.mat_index import scan_category
    from seis_assets.core.reduce import fit_reducer

    synth_root = tmp / "synthetic"
    synthetic.write_dataset(synth_root, n_train=args.ari_n, n_test=0, seed=0)
    sets = {f"synthetic (difficulty {synthetic.DEFAULT_DIFFICULTY}, {4 * args.ari_n} patches)": synth_root / "train"}
    if F3_ROOT.is_dir():
        sets["real F3 (1000 patches)"] = F3_ROOT
    names = ["texture", "efficientnet_lite0"]
    try:
        load_backbone("resnet50", device="cpu")
        names.append("resnet50")
    except RuntimeError:
        print("ARI resnet50: skipped (no ImageNet weights; random-init ARI would mean nothing)")
    for set_name, root in sets.items():
        index = pd.concat([scan_category(root, c, "train")[0] for c in list_categories(root)], ignore_index=True)
        for name in names:
            out = tmp / f"ari_{abs(hash(set_name))}_{name}.parquet"
            rep = extract_features(index, out, load_backbone(name, device="cpu"), input_size=224, precision="auto")
            table = pd.read_parquet(out)
            X = feature_matrix(table)
            _, Z = fit_reducer(X, 50, standardize=(name == "texture"), random_state=42)
            clusters = fit_kmeans(Z, 4, random_state=42).labels_
            ari = adjusted_rand_score(table["category"], clusters)
            print(f"ARI {set_name:45s} {name:20s} {ari:.3f}  ({rep.img_per_s:.0f} img/s extraction)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="patches for the throughput runs (default 256)")
    ap.add_argument("--chunk", type=int, default=64, help="files per interleaved ours/seed-style round")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="ours (the seed-style side keeps the seed's 64)")
    ap.add_argument("--cosine-n", type=int, default=128)
    ap.add_argument("--mem-small", type=int, default=2000)
    ap.add_argument("--mem-large", type=int, default=20000)
    ap.add_argument("--ari-n", type=int, default=150, help="generated patches per class for ARI")
    ap.add_argument("--skip-seed", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-ari", action="store_true")
    ap.add_argument("--engine", default="auto", help="engine of 'ours' (default auto: see seis_assets/core/engines.py)")
    ap.add_argument("--skip-avx2-path", action="store_true",
                    help="do not also time engine onnxruntime (auto's choice on CPUs without native bf16)")
    ap.add_argument("--engine-n", type=int, default=64, help="patches per cell of the engine matrix (0 = skip it)")
    ap.add_argument("--workdir", help="temp folder (default: a new one under $TMPDIR, deleted afterwards)")
    ap.add_argument("--_memory-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._memory_child:
        memory_child(*args._memory_child)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        tmp = Path(d)
        print(f"cpu: {cpu_model()}; flags: {' '.join(sorted(f for f in cpu_flags() if f in SHOWN_FLAGS))}; "
              f"native bf16: {has_native_bf16(cpu_flags())}")
        t = throughput(args, tmp)
        if args.engine_n:
            engine_matrix(args, tmp)
        peak = float("nan") if args.skip_memory else memory(args, tmp)
        if not args.skip_ari:
            ari_table(args, tmp)
    ratio = t["ours"] / t["seed"]
    extra = "".join(f" ratio_{e}={r / t['seed']:.2f}" for e, r in t["extra"].items())
    print(
        f"features engine={t['engine']} ours_img_s={t['ours']:.1f} seed_style_img_s={t['seed']:.1f} ratio={ratio:.2f}"
        f"{extra} cosine_min={t['cosine']:.6f} peak_rss_mb={peak:.0f}"
    )


if __name__ == "__main__":
    main()
