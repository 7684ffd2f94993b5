"""Tried, not adopted: one forward pass over a whole section instead of one per window (issue 17's time budget).

The windows of a line at stride 33 overlap three times in each direction, so the per-window forward pass computes
every part of the section about nine times. This runs the survey backbone's trunk (EfficientNet-Lite0, ImageNet
weights) once over the whole inline, resized by 224/99 as each window is, on OpenVINO, and gives each window the
average of the final feature cells its span covers (weighted by overlap). ``+instnorm`` normalises each *window*
by its own statistics in the shallow layers, which a single pass cannot do; here each position is normalised by
the mean and variance of a window-sized neighbourhood instead (``--neighbourhood`` scales it).

What it prints, on F3 inline 362 (``$SHARED_DATA/sections``) with models fitted on the 1,000 real F3 patches as
``bench_facies_map.py`` fits them (``auto+instnorm`` features, k = 4, the patches' cache in ``--cache``):

- seconds for the inline's windows: the pipeline's per-window forward pass (``window_predict.window_features``,
  the engine ``auto`` picks) against the one pass (plain trunk, and with the neighbourhood normalisation);
- the cosine of each window's one-pass feature to its per-window feature (and, for scale, of per-window
  features of windows 33 samples apart);
- the inline 362 region shares (goals of ``bench_facies_map.py``) for both.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/try_section_pass.py

Last line: ``section_pass windows= per_window_s= one_pass_s= speedup= cosine_median= shares_per_window= shares_one_pass=``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_facies_map as bfm  # noqa: E402
from bench_cube import cpu_flags  # noqa: E402
from seis_assets.core.backbones import LITE_MEAN, LITE_STD, load_backbone  # noqa: E402
from seis_assets.core.facies import vote_line  # noqa: E402
from seis_assets.core.instance_norm import output_sides, shallow_batchnorms  # noqa: E402
from seis_assets.core.segy import open_survey  # noqa: E402
from seis_assets.core.segy_windows import WINDOW_COLUMNS, scale_window, survey_scale, window_starts  # noqa: E402
from seis_assets.core.window_predict import classify_windows, window_features  # noqa: E402

WINDOW, SIDE = 99, 224


def neighbourhood_norm(bn, side: int):
    """``bn``'s scale and shift after normalising each position by the mean and variance of the ``side`` x ``side``
    neighbourhood around it (computed on a grid of ``side / 4`` and interpolated back)."""
    import torch
    import torch.nn.functional as F

    class NeighbourhoodNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps

        def forward(self, x):
            step = max(1, side // 4)
            mean = F.avg_pool2d(x, side, stride=step, padding=side // 2, count_include_pad=False)
            square = F.avg_pool2d(x * x, side, stride=step, padding=side // 2, count_include_pad=False)
            mean = F.interpolate(mean, size=x.shape[-2:], mode="bilinear", align_corners=False)
            square = F.interpolate(square, size=x.shape[-2:], mode="bilinear", align_corners=False)
            var = (square - mean * mean).clamp_min(0)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    return NeighbourhoodNorm()


def trunk(neighbourhood: float | None):
    """EfficientNet-Lite0's trunk (feature map out); with ``neighbourhood`` its shallow BatchNorms (those
    ``+instnorm`` normalises per image) take :func:`neighbourhood_norm` of ``neighbourhood`` x the window's side."""
    import torch

    net = load_backbone("efficientnet_lite0").build().net
    if neighbourhood:
        names = shallow_batchnorms(net, SIDE)
        sides = dict(zip(names, output_sides(net, [net.get_submodule(n) for n in names], SIDE)))
        for name in names:
            parent_name, _, last = name.rpartition(".")
            parent = net.get_submodule(parent_name)
            setattr(parent, last, neighbourhood_norm(getattr(parent, last), int(round(sides[name] * neighbourhood))))

    class Trunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x)

    return Trunk().eval()


def openvino_trunk(module, threads: int = 2):
    """``module`` exported to ONNX (height and width dynamic) and compiled by OpenVINO as the pipeline's runner is."""
    import openvino as ov
    import torch

    path = os.path.join(tempfile.mkdtemp(prefix="section_pass_"), "trunk.onnx")
    with torch.no_grad():
        torch.onnx.export(module, torch.zeros(1, 3, 256, 256), path, input_names=["x"],
                          dynamic_axes={"x": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    core = ov.Core()
    return core.compile_model(core.read_model(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                             "INFERENCE_NUM_THREADS": threads,
                                                             "INFERENCE_PRECISION_HINT": "f32"})


def section_image(section: np.ndarray, scale: float) -> np.ndarray:
    """(traces, samples) amplitudes -> (1, 3, H, W) normalised image, samples down, resized by 224/99."""
    import torch
    import torch.nn.functional as F

    S = np.clip(section.T / scale, -1, 1).astype(np.float32)
    x = torch.from_numpy((S + 1) / 2)[None, None]
    f = SIDE / WINDOW
    x = F.interpolate(x, size=(round(S.shape[0] * f), round(S.shape[1] * f)), mode="bilinear", align_corners=False)
    mean, std = torch.tensor(LITE_MEAN).view(1, 3, 1, 1), torch.tensor(LITE_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).numpy()


def overlap_weights(starts: list[int], n_px: int, n_cells: int) -> np.ndarray:
    """(windows, cells): the share of each window's resized span that falls in each feature cell."""
    f, cell = SIDE / WINDOW, n_px / n_cells
    lo, hi = np.asarray(starts)[:, None] * f, (np.asarray(starts)[:, None] + WINDOW) * f
    edges = np.arange(n_cells + 1) * cell
    w = np.clip(np.minimum(hi, edges[1:]) - np.maximum(lo, edges[:-1]), 0, None)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def timed(fn, repeats: int = 3):
    fn()  # warm-up
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segy", default=os.path.join(bfm.DATA, "sections", "f3_inline362.sgy"))
    ap.add_argument("--stride", type=int, default=33)
    ap.add_argument("--neighbourhood", type=float, nargs="+", default=[1.0, 2.0],
                    help="normalisation neighbourhoods, in window sides")
    ap.add_argument("--cache", default="/tmp/seis_bench_facies")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    print(f"machine: {os.cpu_count()} cores, flags {cpu_flags()}", flush=True)
    Xp, labels, identity = bfm.patch_features("auto+instnorm", args.cache)
    models = bfm.fit_models(Xp, labels, 4, cache=args.cache, tag=identity["backbone"])
    lut = dict(zip(models.mapping["cluster"], models.mapping["majority"]))
    with open_survey(args.segy) as survey:
        [number] = survey.info.inlines
        section, idx = survey.read_line("inline", number)
        scale = survey_scale(survey)
        xl, times = survey.trace_xline[idx], survey.info.time_ms(np.arange(survey.info.n_samples))
    ts, ss = window_starts(section.shape[0], WINDOW, args.stride), window_starts(section.shape[1], WINDOW, args.stride)
    pos = pd.DataFrame([dict(survey="", direction="inline", inline=number, xline=int(xl[t0]), sample=s0,
                             time_ms=float(times[s0]), n_traces=WINDOW, n_samples=WINDOW, trace_step=1)
                        for t0 in ts for s0 in ss], columns=WINDOW_COLUMNS)
    patches = np.stack([scale_window(section[t0 : t0 + WINDOW, s0 : s0 + WINDOW].T, "per_window")
                        for t0 in ts for s0 in ss])

    def shares(X):
        pred = classify_windows(X, models)
        cmap, _ = vote_line(pos, pred["cluster"].to_numpy(), None, 4, len(idx), len(times), "inline", number, xl)
        r = bfm._region_shares(np.vectorize(lut.get)(cmap), xl, times)
        return "/".join(f"{r[name]:.3f}" for name, *_ in bfm.REGIONS) + f" ({bfm._goal(r)})"

    per_window_s, Xw = timed(lambda: window_features(patches, identity), repeats=2)
    A = Xw.reshape(len(ts), len(ss), -1)
    near = (A[:, 1:] * A[:, :-1]).sum(-1) / np.linalg.norm(A[:, 1:], axis=-1) / np.linalg.norm(A[:, :-1], axis=-1)
    base = shares(Xw)
    print(f"{len(patches)} windows; per-window ({identity['backbone']}, {identity['engine']}): {per_window_s:.2f} s; "
          f"cosine of windows {args.stride} samples apart: median {np.median(near):.3f}; shares salt dome / chaotic "
          f"band / faulted lower left / continuous layers -> other: {base}", flush=True)
    image = section_image(section, scale)
    results = []
    for neighbourhood in [None, *args.neighbourhood]:
        compiled = openvino_trunk(trunk(neighbourhood))
        seconds, fm = timed(lambda: np.asarray(next(iter(compiled({0: image}).values())))[0])
        if neighbourhood is None:
            print(f"one pass, plain trunk, input {image.shape[2]}x{image.shape[3]}: {seconds:.3f} s", flush=True)
            continue
        Mr = overlap_weights(ss, image.shape[2], fm.shape[1])
        Mc = overlap_weights(ts, image.shape[3], fm.shape[2])
        Xd = np.einsum("rh,chw,tw->trc", Mr, fm, Mc).reshape(-1, fm.shape[0])
        cos = (Xd * Xw).sum(1) / np.linalg.norm(Xd, axis=1) / np.linalg.norm(Xw, axis=1)
        results.append((neighbourhood, seconds, float(np.median(cos)), shares(Xd)))
        print(f"one pass, neighbourhood {neighbourhood:g} window: {seconds:.3f} s ({per_window_s / seconds:.1f}x); "
              f"cosine to per-window median {np.median(cos):.3f} (p10 {np.percentile(cos, 10):.3f}); "
              f"shares {results[-1][3]}", flush=True)
    n, seconds, cos, sh = results[0]
    print(f"section_pass windows={len(patches)} per_window_s={per_window_s:.2f} one_pass_s={seconds:.3f} "
          f"speedup={per_window_s / seconds:.1f} cosine_median={cos:.3f} shares_per_window={base.split()[0]} "
          f"shares_one_pass={sh.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
