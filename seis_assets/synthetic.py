"""Command line of the synthetic data set: ``python -m seis_assets.synthetic --out data [--n-train 150] ...``.

The generator is :mod:`seis_assets.core.synthetic`; this module only parses the arguments, calls
:func:`~seis_assets.core.synthetic.write_dataset` and prints what it wrote.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seis_assets.core.synthetic import (
    DEFAULT_ANOMALY_SHARE,
    DEFAULT_DIFFICULTY,
    DEFAULT_N_TEST,
    DEFAULT_N_TRAIN,
    DEFAULT_SEED,
    DEFAULT_SIZE,
    write_dataset,
)

__all__ = ["DEFAULT_OUT", "main", "parse_size"]

DEFAULT_OUT = "data"


def parse_size(text: str) -> tuple[int, int]:
    """Parse "HxW" (e.g. "99x99", "150x300") into (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 99x99 (height x width), got {text!r}") from None
    return h, w


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seis_assets.synthetic",
        description="Write synthetic LANDMASS-like seismic patches (chaotic, fault, horizon, salt dome).",
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help="data root (train/ and test/ go inside)")
    parser.add_argument("--n-train", type=int, default=DEFAULT_N_TRAIN, help="training patches per class")
    parser.add_argument("--n-test", type=int, default=DEFAULT_N_TEST, help="test patches per class")
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="HxW, e.g. 99x99 or 150x300")
    parser.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY, help="0 (easy) .. 1 (hard)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--anomaly-share", type=float, default=DEFAULT_ANOMALY_SHARE, help="share of test files")
    parser.add_argument("--force", action="store_true", help="replace an existing non-empty train/ (and test/)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m seis_assets.synthetic --out data [--n-train 150] ...``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        manifest = write_dataset(
            args.out,
            n_train=args.n_train,
            n_test=args.n_test,
            size=args.size,
            difficulty=args.difficulty,
            seed=args.seed,
            anomaly_share=args.anomaly_share,
            force=args.force,
        )
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts = manifest.groupby("split").size().to_dict()
    n_anom = int((manifest["anomaly"] != "").sum())
    print(
        f"wrote {counts.get('train', 0)} train and {counts.get('test', 0)} test patches "
        f"({n_anom} anomalies) of size {args.size[0]}x{args.size[1]} to {args.out} "
        f"(difficulty {args.difficulty}, seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
