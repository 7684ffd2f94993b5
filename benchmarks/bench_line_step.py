"""What a line step costs on real geology: interpreters' labels of real F3 lines, taken from the nearest cut line.

With ``segy_settings.line_step = s`` windows are cut on every s-th inline only and each inline between takes the
votes of its nearest cut inline (``seis_assets.core.segy_windows.line_sources``). Even a perfect map of the cut
inlines is then wrong wherever the geology changes within the s // 2 inlines to the nearest cut one. This measures
that share on real F3 geology, with no network: ``labelled_sections/crossline_575`` runs **across** the inlines
(its traces are inlines 100-750, 25 m apart), so taking each of its traces' labels from the trace of the nearest
cut inline is exactly what the step does to a perfect map at that crossline; ``inline_241`` (crosslines 300-1250,
also 25 m apart) gives the same along the other axis, as a second sample of the geology.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_line_step.py [--data PATH] [--steps 2 3 5 7 9]

Prints, per section and step, the share of samples whose label is the label of the nearest cut line (with two
equally near, the one above; even steps have such ties); last line
``line_step steps= crossline_575= inline_241=`` (agreements in the order of ``--steps``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seis_assets.core.segy_windows import line_sources  # noqa: E402

SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
SECTIONS = ("crossline_575", "inline_241")


def stepped_agreement(labels: np.ndarray, step: int) -> float:
    """Share of the samples of ``labels`` (samples x traces) equal to the label at their trace's nearest cut trace."""
    n = labels.shape[1]
    sources = line_sources(range(n), step)
    source = np.array([sources[t][0] for t in range(n)])
    return float((labels == labels[:, source]).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SHARED, help="the shared data folder (holds labelled_sections/)")
    ap.add_argument("--steps", type=int, nargs="+", default=[2, 3, 5, 7, 9])
    args = ap.parse_args(argv)
    folder = args.data / "labelled_sections"
    if not folder.is_dir():
        raise SystemExit(f"no labelled sections at {folder}: set SHARED_DATA or pass --data")
    results = {}
    for name in SECTIONS:
        labels = np.load(folder / f"{name}_labels.npy")
        results[name] = [stepped_agreement(labels, s) for s in args.steps]
        for s, a in zip(args.steps, results[name]):
            print(f"{name}: line step {s}: {a:.4f} of {labels.size} samples keep their label "
                  f"({1 - a:.2%} take a neighbour's)")
    print("line_step steps=" + ",".join(map(str, args.steps))
          + "".join(f" {n}=" + ",".join(f"{a:.4f}" for a in results[n]) for n in SECTIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
