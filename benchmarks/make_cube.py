"""Write the benchmark cube: a real 2-D section carried across inlines with smooth warps (no download).

    python benchmarks/make_cube.py --out /work/data_cube/f3_like.sgy --body-xline 860      # F3-sized, ~1.1 GB
    python benchmarks/make_cube.py --small --generated --out /tmp/small_cube.sgy          # 6 x 160 x 200, no data

The default source is the real F3 inline 362 of ``../shared/data/sections`` beside the repository; ``--generated``
draws a section instead (:func:`seis_assets.core.cube_model.generated_section`). How the cube is made and what it is
not: :mod:`seis_assets.core.cube_model` and benchmarks/README.md, "Benchmark cube". The file is written one inline at
a time; the last line printed is ``cube path= inlines= xlines= samples= dt_ms= bytes= seconds= peak_rss_mb=``.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

from seis_assets.core.cube_model import CarryModel, generated_section, make_cube, read_section

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sections" / "f3_inline362.sgy"
SMALL = {"inlines": 6, "xlines": 160, "samples": 200}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help="SEG-Y with the line to carry (its middle inline)")
    ap.add_argument("--generated", action="store_true", help="carry a generated section instead of --source")
    ap.add_argument("--inlines", type=int, default=651)
    ap.add_argument("--xlines", type=int, default=951)
    ap.add_argument("--samples", type=int, default=462)
    ap.add_argument("--first-inline", type=int, default=100)
    ap.add_argument("--first-xline", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--body-xline", type=float, default=None,
                    help="crossline of the source line where the body (salt dome) whose extent changes is centred "
                         "(default: the middle of the line)")
    ap.add_argument("--small", action="store_true", help=f"a small cube for tests: {SMALL}")
    ap.add_argument("--out", type=Path, default=Path("data/cube/f3_like.sgy"))
    args = ap.parse_args(argv)
    if args.small:
        args.inlines, args.xlines, args.samples = SMALL["inlines"], SMALL["xlines"], SMALL["samples"]
    if args.generated:
        section = generated_section()
    elif not args.source.exists():
        print(f"make_cube: no source line at {args.source}: pass --source PATH or --generated", file=sys.stderr)
        return 2
    else:
        section = read_section(args.source)
    model = CarryModel()
    if args.body_xline is not None:
        centre = (args.body_xline - section.first_xline) / (section.data.shape[0] - 1)
        model = dataclasses.replace(model, body_centre=centre)
    start = time.perf_counter()
    path = make_cube(args.out, section, args.inlines, args.xlines, args.samples, first_inline=args.first_inline,
                     first_xline=args.first_xline, seed=args.seed, model=model)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cube path={path} inlines={args.inlines} xlines={args.xlines} samples={args.samples} "
          f"dt_ms={section.dt_ms:g} bytes={Path(path).stat().st_size} seconds={seconds:.1f} peak_rss_mb={peak_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
