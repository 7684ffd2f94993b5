"""Memory of cutting every window of a SEG-Y cube: a cube and one 4x larger, inline and crossline windows.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_segy_memory.py [--folder /tmp/seis_bench_segy]

Each cube is read in a child process; the figure is the peak *anonymous* resident memory (RssAnon, sampled every
50 windows), and ru_maxrss (all resident memory: the interpreter, numpy, shared libraries). Files are read with
plain reads (``seis_assets.core.segy``), so the file's pages stay in the page cache, out of the process's RSS.
"""

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from seis_assets.core.segy_write import write_cube  # noqa: E402

CHILD = r"""
import sys, resource
sys.path.insert(0, {root!r})
from seis_assets.core.segy import open_survey
from seis_assets.core.segy_windows import iter_windows, scale_window
def anon():
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon'):
            return int(line.split()[1]) / 1024
base = anon(); peak = base; n = 0
with open_survey({path!r}) as s:
    # stride 33: the stride of this benchmark's figures in benchmarks/README.md
    for pos, w in iter_windows(s, stride=33, directions=("inline", "xline")):
        scale_window(w, 'per_window'); n += 1
        if n % 50 == 0:
            peak = max(peak, anon())
print(f"{{n}} {{base:.1f}} {{peak:.1f}} {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}}")
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", default="/tmp/seis_bench_segy")
    args = ap.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    for n_inlines in (120, 480):
        path = os.path.join(args.folder, f"cube_{n_inlines}x120x463.sgy")
        if not os.path.exists(path):
            write_cube(path, range(1, n_inlines + 1), range(1, 121), n_samples=463)
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT, path=path)], capture_output=True,
                             text=True, check=True).stdout.split()
        n, base, peak, maxrss = int(out[0]), *map(float, out[1:])
        print(f"{os.path.basename(path)} ({os.path.getsize(path) / 1e6:.0f} MB): {n} windows, anonymous RSS "
              f"{base:.0f} -> peak {peak:.0f} MB; ru_maxrss {maxrss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
