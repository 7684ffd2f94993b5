"""Compare per-class patch statistics of the synthetic generator with the real F3 patches.

Usage:
    python benchmarks/compare_synthetic.py [--real /work/shared/data/f3_patches] [--n 100]
        [--difficulty DEFAULT] [--seed 0] [--out benchmarks/synthetic_vs_real.md]

Real patches (0..1) are mapped to [-1, 1] with x*2-1; F3's "other" is compared with "horizon".
Prints a markdown table (median per class; real | synthetic), a table of the per-class distances
``|median_syn - median_real| / IQR_real`` and their mean over class x statistic (the overall distance:
0 = synthetic medians equal the real ones, 1 = off by one real inter-quartile range on average),
and writes them to --out. The last three statistics (:data:`EXTRA_STATS`) measure the echo, the trace-scale
jitter and the high-frequency loss; ``base_distance`` is the mean over the others, as before they were added.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from seis_assets.core import attributes as A
from seis_assets.core import synthetic as S

REAL_FOLDER = {"chaotic": "chaotic", "fault": "fault", "horizon": "other", "salt dome": "salt dome"}
BASE_STATS = tuple(name for name in A.STATISTIC_NAMES if name != "trace_correlation_lag")
#: Statistics of the three known mismatches (issue 10 item 4), computed here (benchmark only):
#: echo_autocorrelation: mean trace autocorrelation at lags 14 and 15 (an opposite-polarity echo ~14.5 samples
#:   after the wavelet makes it negative, and notches the spectrum every ~0.07 cycles/sample);
#: trace_jitter: 1 - median over depth of the correlation of adjacent traces in 9-sample windows, 90th percentile
#:   over depth (the most jittery interval, e.g. a chaotic band, decorrelates trace by trace);
#: high_frequency_share: share of the vertical amplitude spectrum (0.03-0.3 cycles/sample) above 0.18 (absorption
#:   in salt takes it away).
EXTRA_STATS = ("echo_autocorrelation", "trace_jitter", "high_frequency_share")
STATS = BASE_STATS + EXTRA_STATS


def extra_statistics(patch: np.ndarray) -> dict[str, float]:
    x = patch - patch.mean(axis=0, keepdims=True)
    den = (x**2).sum(axis=0) + 1e-12
    echo = np.mean([((x[:-lag] * x[lag:]).sum(axis=0) / den).mean() for lag in (14, 15)])
    # local adjacent-trace correlation in 9-sample windows (box sums), per depth
    from scipy import ndimage

    a, b = x[:, :-1], x[:, 1:]
    box = lambda v: ndimage.uniform_filter1d(v, 9, axis=0)  # noqa: E731
    ma, mb = box(a), box(b)
    cov = box(a * b) - ma * mb
    corr = cov / np.sqrt(np.clip(box(a * a) - ma**2, 1e-12, None) * np.clip(box(b * b) - mb**2, 1e-12, None))
    jitter = float(np.quantile(1.0 - np.median(corr, axis=1), 0.9))
    xt = x * np.hanning(x.shape[0])[:, None]
    amp = np.abs(np.fft.rfft(xt, n=256, axis=0)).mean(axis=1)
    k = np.fft.rfftfreq(256)
    band = (k >= 0.03) & (k <= 0.3)
    hf = float(amp[band & (k > 0.18)].sum() / (amp[band].sum() + 1e-12))
    return {"echo_autocorrelation": float(echo), "trace_jitter": jitter, "high_frequency_share": hf}


def statistics(patch: np.ndarray) -> dict[str, float]:
    return {**A.patch_statistics(patch), **extra_statistics(patch)}


def real_statistics(root: Path) -> pd.DataFrame:
    rows = []
    for cls, folder in REAL_FOLDER.items():
        files = sorted((root / folder).glob("*.mat"))
        if not files:
            raise FileNotFoundError(f"no .mat files in {root / folder}")
        for f in files:
            patch = scipy.io.loadmat(f)["img"].astype(np.float32) * 2.0 - 1.0
            rows.append({"class": cls, **statistics(patch)})
    return pd.DataFrame(rows)


def synthetic_statistics(n: int, difficulty: float, seed: int) -> pd.DataFrame:
    rows = []
    for c, cls in enumerate(S.CLASSES):
        for i in range(n):
            patch = S.generate_patch(cls, np.random.default_rng([seed, 0, c, i]), difficulty=difficulty)
            rows.append({"class": cls, **statistics(patch)})
    return pd.DataFrame(rows)


def comparison_table(real: pd.DataFrame, syn: pd.DataFrame) -> str:
    r, s = real.groupby("class")[list(STATS)].median(), syn.groupby("class")[list(STATS)].median()
    head = "| statistic | " + " | ".join(f"{c} real | {c} syn" for c in S.CLASSES) + " |"
    sep = "|---|" + "---:|" * (2 * len(S.CLASSES))
    lines = [head, sep]
    for stat in STATS:
        cells = [f"{r.loc[c, stat]:.3f} | {s.loc[c, stat]:.3f}" for c in S.CLASSES]
        lines.append(f"| {stat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distance_table(real: pd.DataFrame, syn: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per class and statistic ``|median_syn - median_real| / IQR_real``; (stats x classes) and its mean.

    Where the real IQR is 0 (a discrete statistic such as the dominant wavenumber bin), the
    10-90 % range is used instead.
    """
    g = real.groupby("class")[list(STATS)]
    iqr = g.quantile(0.75) - g.quantile(0.25)
    iqr = iqr.where(iqr > 1e-9, g.quantile(0.9) - g.quantile(0.1))
    diff = (syn.groupby("class")[list(STATS)].median() - g.median()).abs()
    dist = (diff / iqr.where(iqr > 1e-9)).loc[list(S.CLASSES)].T
    return dist, float(np.nanmean(dist.to_numpy()))


def distance_markdown(dist: pd.DataFrame, overall: float) -> str:
    lines = ["| statistic | " + " | ".join(S.CLASSES) + " | mean |", "|---|" + "---:|" * (len(S.CLASSES) + 1)]
    for stat, row in dist.iterrows():
        lines.append(f"| {stat} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {np.nanmean(row):.2f} |")
    lines.append("| **mean** | " + " | ".join(f"{v:.2f}" for v in dist.mean()) + f" | **{overall:.3f}** |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "f3_patches")
    p.add_argument("--n", type=int, default=100, help="synthetic patches per class")
    p.add_argument("--difficulty", type=float, default=S.DEFAULT_DIFFICULTY)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("synthetic_vs_real.md"))
    args = p.parse_args()
    real = real_statistics(args.real)
    syn = synthetic_statistics(args.n, args.difficulty, args.seed)
    dist, overall = distance_table(real, syn)
    base = float(np.nanmean(dist.loc[list(BASE_STATS)].to_numpy()))
    md = (
        f"Median per class of `attributes.patch_statistics`: real F3 ({len(real)} patches, `other` = horizon) "
        f"vs synthetic ({args.n}/class, difficulty {args.difficulty}, seed {args.seed}).\n\n"
        + comparison_table(real, syn)
        + "\n\nDistance per class: |median syn - median real| / real inter-quartile range (10-90 % range where the IQR is 0).\n\n"
        + distance_markdown(dist, overall)
        + f"\n\noverall_distance={overall:.3f} over all {len(STATS)} statistics; base_distance={base:.3f} over the "
        f"first {len(BASE_STATS)} (comparable with earlier runs) (difficulty {args.difficulty})\n"
    )
    print(md)
    args.out.write_text(md)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
