"""The whole Dagster pipeline at LANDMASS-1 size: ingest of every category partition, then a re-cluster.

Usage::

    /work/main/.venv/bin/python benchmarks/bench_pipeline.py                 # 17,667 patches (LANDMASS-1 size)
    /work/main/.venv/bin/python benchmarks/bench_pipeline.py --n 1767 --resnet-n 200   # a 10 % check

What it does
------------
1. Generates ``--n`` 99x99 patches (``core.synthetic.generate_patch``, difficulty 0.5) in LANDMASS-1's class
   proportions: horizon 9,385, chaotic 5,140, salt dome 1,891, fault 1,251 (of 17,667), as ``.mat`` files under
   ``<workdir>/train/<category>/``. No test split (LANDMASS has none).
2. For each input size (``native`` then ``224``): a fresh warehouse, an ephemeral Dagster instance, one dynamic
   partition per category, ``dg.materialize`` of the ingest assets (``raw_mat_index``, ``quarantine``,
   ``resnet_features``) for every partition, then the analysis assets with their checks (the re-cluster:
   ``umap_50d`` ... ``plots``), with the default backbone (``auto``: ResNet50 where its ImageNet weights resolve,
   else EfficientNet-Lite0) and engine ``auto`` -- the real assets, resources and IO managers.
3. Incremental: adds 1 % new files (spread over the categories like the rest) and runs step 2 again on the last
   size's warehouse; only the new files go through the network, then the re-cluster.
4. ResNet50 throughput: ``extract_features`` at 224 with engine ``auto`` on a ``--resnet-n`` subset
   (ImageNet weights when available, else random weights: speed does not depend on weight values).

Peak RSS is the largest sum of the resident memory of this process and all its children, sampled every
0.2 s with psutil. Each run prints a profile: read, preprocess and forward (per-patch costs measured on a
256-patch sample and scaled to the run), the rest of the feature step (loading the model, building the ONNX Runtime session, hashing, Parquet), UMAP (``umap_50d`` +
``umap_2d`` steps), KMeans (``k_sweep`` + ``kmeans_model``), the other analysis steps, and Dagster overhead
(wall time minus the steps' own durations).

The last line is ``pipeline n= total_s_224= total_s_native= incremental_s= peak_rss_mb= resnet50_img_s=``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: LANDMASS-1 class counts (17,667 patches of 99x99).
LANDMASS1 = {"horizon": 9385, "chaotic": 5140, "salt dome": 1891, "fault": 1251}
LANDMASS1_N = sum(LANDMASS1.values())


def class_counts(n: int) -> dict[str, int]:
    """``n`` patches split in LANDMASS-1 proportions (largest remainders; sums to n)."""
    exact = {c: n * k / LANDMASS1_N for c, k in LANDMASS1.items()}
    counts = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True)[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def generate(train: Path, counts: dict[str, int], start: int = 0, seed: int = 0, prefix: str = "p") -> int:
    """Write ``counts[c]`` patches per class into ``train/<c>/`` (names continue from ``start``)."""
    import scipy.io

    from seis_assets.core.synthetic import CLASSES, generate_patch

    written = 0
    for c, k in counts.items():
        folder = train / c
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + k):
            rng = np.random.default_rng([seed, CLASSES.index(c), i])
            scipy.io.savemat(folder / f"{prefix}_{i:05d}.mat", {"img": generate_patch(c, rng, (99, 99))})
            written += 1
    return written


class PeakRss:
    """Largest RSS sum of this process and its descendants, sampled in a thread."""

    def __init__(self, every_s: float = 0.2):
        import psutil

        self.proc = psutil.Process()
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        return total

    def _run(self):
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def step_seconds(result) -> dict[str, float]:
    """Own duration of every successful step of an in-process result (STEP_SUCCESS duration_ms)."""
    out = {}
    for ev in result.all_events:
        if ev.event_type_value == "STEP_SUCCESS":
            out[ev.step_key] = out.get(ev.step_key, 0.0) + ev.event_specific_data.duration_ms / 1000
    return out


def run_pipeline(root: Path, train: Path, input_size: str, backbone: str, engine: str, log) -> dict:
    """Ingest every category partition, then re-cluster; returns wall times and the steps' own durations."""
    import dagster as dg

    from seis_assets.assets import CLUSTERING, EMBEDDING, EVALUATION, INGEST
    from seis_assets.checks import ALL_CHECKS
    from seis_assets.core.listing import list_categories
    from seis_assets.definitions import ALL_ASSETS, build_resources
    from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
    from seis_assets.resources import AnalysisSettings, FeatureSettings, SeisPaths

    paths = SeisPaths(train_dir=str(train), test_dir=str(root / "test"), output_dir=str(root / "outputs"),
                      data_dir=str(root), incoming_dir=str(root / "incoming"))
    resources = build_resources(
        paths, feature_settings=FeatureSettings(backbone=backbone, input_size=input_size, engine=engine),
        analysis=AnalysisSettings(),
    )
    instance = dg.DagsterInstance.ephemeral()
    categories = list_categories(train)
    instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, categories)
    steps: dict[str, float] = {}
    extracted = 0
    engine_used = precision = ""
    t0 = time.perf_counter()
    for c in categories:
        r = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.groups(INGEST), partition_key=c,
                           resources=resources, instance=instance)
        assert r.success, f"ingest of {c} failed"
        for k, v in step_seconds(r).items():
            steps[k] = steps.get(k, 0.0) + v
        mat = r.asset_materializations_for_node("resnet_features")[0].metadata
        extracted += int(mat["n_extracted"].value)
        engine_used, precision = mat["engine"].value, mat["precision"].value
        log(f"  ingest {c}: {int(mat['n_extracted'].value)} extracted, {int(mat['n_reused'].value)} reused, "
            f"{mat['img_per_s'].value} img/s ({engine_used} {precision})")
    t_ingest = time.perf_counter() - t0
    # the same groups as the ingest and re-cluster jobs (seis_assets/jobs.py), so the benchmark follows the graph
    r = dg.materialize([*ALL_ASSETS, *ALL_CHECKS], selection=dg.AssetSelection.groups(EMBEDDING, CLUSTERING, EVALUATION),
                       resources=resources,
                       instance=instance, raise_on_error=False)
    assert r.success, "re-cluster failed"
    steps.update(step_seconds(r))
    total = time.perf_counter() - t0
    import json

    metrics = json.loads(paths.output("metrics.json").read_text())
    return dict(total=total, ingest=t_ingest, recluster=total - t_ingest, steps=steps,
                extracted=extracted, ari=metrics.get("ari"), engine=engine_used, precision=precision)


def profile_forward(train: Path, backbone: str, input_size: str, engine: str, n: int = 256) -> dict[str, float]:
    """Seconds per patch for read (bytes + sha256 + parse), preprocess and forward, on an n-patch sample."""
    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.engines import thread_budget
    from seis_assets.core.feature_table import table_identity
    from seis_assets.core.features import embed
    from seis_assets.core.preprocess import preprocess
    from seis_assets.core.patches import read_patch_bytes
    from seis_assets.core.storage import read_bytes

    files = sorted(train.rglob("*.mat"))[:: max(1, len(list(train.rglob("*.mat"))) // n)][:n]
    t = time.perf_counter()
    patches = []
    for f in files:
        data = read_bytes(f)
        hashlib.sha256(data).hexdigest()
        patches.append(read_patch_bytes(data, "img", name=str(f)))
    t_read = (time.perf_counter() - t) / len(files)
    bb = load_backbone(backbone, device="cpu")
    size = input_size if input_size == "native" else int(input_size)
    ident = table_identity(bb, size, "auto", engine)
    P = np.stack(patches)
    import torch

    torch.set_num_threads(thread_budget())
    embed(bb, P[:16], size, ident["precision"], ident["engine"])  # warm-up / build / export
    t = time.perf_counter()
    for i in range(0, len(P), 16):
        preprocess(P[i : i + 16], size, bb.mean, bb.std)
    t_pre = (time.perf_counter() - t) / len(P)
    t = time.perf_counter()
    for i in range(0, len(P), 16):
        embed(bb, P[i : i + 16], size, ident["precision"], ident["engine"])
    t_embed = (time.perf_counter() - t) / len(P)
    return dict(read=t_read, preprocess=t_pre, forward=max(t_embed - t_pre, 0.0))


def print_profile(label: str, run: dict, per_patch: dict[str, float], n_files: int, log) -> None:
    s = run["steps"]
    feature_step = sum(v for k, v in s.items() if k.startswith("resnet_features"))
    index_step = sum(v for k, v in s.items() if k.startswith("raw_mat_index"))
    read = per_patch["read"] * run["extracted"]
    pre = per_patch["preprocess"] * run["extracted"]
    fwd = per_patch["forward"] * run["extracted"]
    umap = s.get("umap_50d", 0) + s.get("umap_2d", 0)
    km = s.get("k_sweep", 0) + s.get("kmeans_model", 0)
    other = sum(s.values()) - feature_step - index_step - umap - km
    overhead = run["total"] - sum(s.values())
    log(f"profile {label} (s): index {index_step:.1f} | read {read:.1f}, preprocess {pre:.1f}, forward {fwd:.1f}, "
        f"rest of feature step (model load, ONNX session, hash, Parquet) {max(feature_step - read - pre - fwd, 0):.1f} | UMAP {umap:.1f} | "
        f"KMeans {km:.1f} | other analysis {other:.1f} | Dagster overhead {overhead:.1f} | total {run['total']:.1f}")
    steps = {k: v for k, v in s.items() if not k.startswith(("raw_mat_index", "resnet_features"))}
    log(f"  steps {label} (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])))


def resnet50_throughput(tmp: Path, train: Path, n: int) -> tuple[float, str]:
    import pandas as pd
    import torch
    import torchvision

    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.features import extract_features
    from seis_assets.core.listing import list_categories
    from seis_assets.core.mat_index import scan_category

    try:
        bb, note = load_backbone("resnet50", device="cpu"), "ImageNet weights"
    except RuntimeError:
        torch.manual_seed(0)
        path = tmp / "resnet50_random.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
        bb, note = load_backbone("resnet50", weights_path=path, device="cpu"), "random weights"
    index = pd.concat([scan_category(train, c, "train")[0] for c in list_categories(train)], ignore_index=True)
    index = index.sample(n=min(n, len(index)), random_state=0)
    r = extract_features(index, tmp / "resnet50.parquet", bb, input_size=224, engine="auto",
                         engine_cache_dir=tmp / "engines")
    return r.img_per_s, f"{note}, engine {r.identity['engine']} {r.precision}"


F3_ROOT = REPO.parent / "shared" / "data" / "f3_patches"


def f3_large_path_ari(tmp: Path, log, seeds=(42, 43, 44)) -> None:
    """ARI on the real F3 patches: the default path (seeded UMAP on the raw features) vs the large-input path
    forced with ``large_n=1`` (PCA 100 first, parallel unseeded UMAP), same features, KMeans k = 4."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.cluster import fit_kmeans
    from seis_assets.core.feature_table import feature_matrix
    from seis_assets.core.features import extract_features
    from seis_assets.core.listing import list_categories
    from seis_assets.core.mat_index import scan_category
    from seis_assets.core.reduce import fit_reducer

    if not F3_ROOT.is_dir():
        log(f"F3 ARI: skipped ({F3_ROOT} not found)")
        return
    index = pd.concat([scan_category(F3_ROOT, c, "train")[0] for c in list_categories(F3_ROOT)], ignore_index=True)
    k = index["category"].nunique()
    for size in ("native", 224):
        out = tmp / f"f3_{size}.parquet"
        r = extract_features(index, out, load_backbone("efficientnet_lite0", device="cpu"), input_size=size,
                             engine="auto", engine_cache_dir=tmp / "engines")
        table = pd.read_parquet(out)
        X = feature_matrix(table)
        for label, large_n in (("default (seeded UMAP)", None), ("large-input path forced (PCA 100 + parallel)", 1)):
            aris, secs = [], []
            for seed in seeds:
                reducer, Z = fit_reducer(X, 50, random_state=seed, **({"large_n": large_n} if large_n else {}))
                aris.append(adjusted_rand_score(table["category"], fit_kmeans(Z, k, random_state=42).labels_))
                secs.append(reducer.settings_["seconds"])
            log(f"F3 {len(X)} patches, efficientnet_lite0 {size} ({r.identity['engine']} {r.precision}), {label}: "
                f"ARI {np.mean(aris):.3f} (seeds {list(seeds)}: {', '.join(f'{a:.3f}' for a in aris)}), "
                f"UMAP {np.mean(secs):.1f} s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=LANDMASS1_N, help=f"patches (default {LANDMASS1_N}, LANDMASS-1)")
    ap.add_argument("--sizes", default="native,224", help="input sizes to run, in order (default native,224)")
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--incremental-share", type=float, default=0.01)
    ap.add_argument("--resnet-n", type=int, default=2000, help="ResNet50 throughput subset (0 = skip)")
    ap.add_argument("--workdir", help="folder for the data (default: a temp folder, deleted afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--f3-ari", choices=("yes", "no", "only"), default="yes",
                    help="compare ARI of the default and the large-input UMAP path on the real F3 patches")
    args = ap.parse_args(argv)

    from seis_assets.core.engines import cpu_flags, has_native_bf16, thread_budget

    def log(msg):
        print(msg, flush=True)

    shown = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    log(f"machine: {len(os.sched_getaffinity(0))} cores, thread budget {thread_budget()}, flags "
        f"{' '.join(sorted(shown & cpu_flags()))}, native bf16 {has_native_bf16(cpu_flags())}, "
        f"load average {os.getloadavg()[0]:.1f}")
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_", dir=args.workdir))
    if args.f3_ari == "only":
        try:
            f3_large_path_ari(tmp, log)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        train = tmp / "train"
        counts = class_counts(args.n)
        t = time.perf_counter()
        generate(train, counts)
        log(f"generated {args.n} patches {counts} in {time.perf_counter() - t:.0f} s")
        totals: dict[str, float] = {}
        peak = PeakRss()
        with peak:
            root = None
            for size in args.sizes.split(","):
                root = tmp / f"run_{size}"
                log(f"run input_size={size} (load average {os.getloadavg()[0]:.1f})")
                run = run_pipeline(root, train, size, args.backbone, args.engine, log)
                totals[size] = run["total"]
                log(f"  total {run['total']:.1f} s (ingest {run['ingest']:.1f}, re-cluster {run['recluster']:.1f}), "
                    f"ARI {run['ari'] if run['ari'] is None else round(run['ari'], 3)}, peak RSS so far {peak.peak_mb:.0f} MB")
                print_profile(size, run, profile_forward(train, args.backbone, size, args.engine), args.n, log)
            # incremental: 1 % new files on the last size's warehouse
            extra = class_counts(max(1, round(args.n * args.incremental_share)))
            generate(train, extra, start=0, seed=1, prefix="new")
            run = run_pipeline(root, train, size, args.backbone, args.engine, log)
            incremental = run["total"]
            log(f"incremental (+{sum(extra.values())} files, input_size={size}): {incremental:.1f} s, "
                f"{run['extracted']} extracted, ARI {run['ari'] if run['ari'] is None else round(run['ari'], 3)}")
            print_profile(f"incremental {size}", run, profile_forward(train, args.backbone, size, args.engine),
                          args.n, log)
            resnet = float("nan")
            if args.resnet_n:
                resnet, note = resnet50_throughput(tmp, train, args.resnet_n)
                log(f"resnet50 at 224 on {min(args.resnet_n, args.n)} patches: {resnet:.1f} img/s ({note})")
        if args.f3_ari == "yes":
            f3_large_path_ari(tmp, log)
        log(f"load average at the end: {os.getloadavg()[0]:.1f}")
        print(f"pipeline n={args.n} total_s_224={totals.get('224', float('nan')):.1f} "
              f"total_s_native={totals.get('native', float('nan')):.1f} incremental_s={incremental:.1f} "
              f"peak_rss_mb={peak.peak_mb:.0f} resnet50_img_s={resnet:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
