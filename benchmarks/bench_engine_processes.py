"""Several processes sharing a machine, each running the survey backbone on OpenVINO: total img/s, pinned or not.

A Dask ``LocalCluster`` of 2 single-threaded workers on 2 cores is two processes each with a one-thread OpenVINO
runner. OpenVINO pins its threads to cores by default, and every process picks the same first core;
``engines.openvino_pins_threads`` pins only a runner that has every core of its process. This runs ``--processes``
processes at the same time, each with ``--threads`` threads (torch too, as a Dask worker sets it) embedding the same
real windows (``bench_survey_engine.line_windows``: F3 inline 362) for ``--seconds``, once with pinning as the
pipeline now sets it and once forced on (OpenVINO's default), in alternating rounds; then one process with every
core, for reference.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_engine_processes.py
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_engine_processes.py --processes 4 --threads 1 --rounds 2

Last line: ``engine_processes processes= threads= pinned_img_s= unpinned_img_s= one_process_img_s=`` (totals, best
round).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import torch
torch.set_num_threads({threads})
from seis_assets.core import engines
if {force_pin}:
    engines.openvino_pins_threads = lambda threads, cores=None: True
from bench_survey_engine import line_windows
from seis_assets.core.backbones import load_backbone
from seis_assets.core.features import embed
P = line_windows({segy!r}, 64)
bb = load_backbone("auto+instnorm", device="cpu")
run = lambda i: embed(bb, P[i : i + 4], 224, "fp32", "openvino", {cache!r}, threads={threads})
run(0)
pinned = next(iter(bb.runners.values())).compiled.get_property("ENABLE_CPU_PINNING")
n, t = 0, time.perf_counter()
while time.perf_counter() - t < {seconds}:
    run(n % len(P)); n += 4
print(json.dumps({{"img_s": n / (time.perf_counter() - t), "pinned": bool(pinned)}}))
"""


def run_group(processes: int, threads: int, force_pin: bool, args) -> tuple[float, list[bool]]:
    """Start ``processes`` children at once; their summed img/s and whether each pinned."""
    code = CHILD.format(root=ROOT, bench=os.path.join(ROOT, "benchmarks"), threads=threads, force_pin=force_pin,
                        segy=args.segy, cache=args.cache, seconds=args.seconds)
    env = {**os.environ, "SEIS_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=env, text=True) for _ in range(processes)]
    results = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a child failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return sum(r["img_s"] for r in results), [r["pinned"] for r in results]


def main(argv=None) -> int:
    from bench_survey_engine import cpu_line, default_segy

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from seis_assets.core.engines import available_cores

    cores = available_cores()
    ap.add_argument("--processes", type=int, default=cores)
    ap.add_argument("--threads", type=int, default=1, help="threads of each process")
    ap.add_argument("--seconds", type=float, default=25.0, help="how long each process embeds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--segy", default=default_segy())
    ap.add_argument("--cache", default="/tmp/seis_bench_engine_processes", help="exported models' folder")
    args = ap.parse_args(argv)
    print(cpu_line(), flush=True)
    run_group(1, 1, False, argparse.Namespace(**{**vars(args), "seconds": 1.0}))  # export the model once
    best = {"now": 0.0, "forced": 0.0}
    for r in range(args.rounds):
        for label, force in (("now", False), ("forced", True)):
            total, pinned = run_group(args.processes, args.threads, force, args)
            best[label] = max(best[label], total)
            print(f"round {r + 1}: {args.processes} processes x {args.threads} thread(s), pinning "
                  f"{'forced on' if force else 'as engines sets it'} (pinned: {pinned}): {total:.1f} img/s", flush=True)
            time.sleep(3)
    one, pinned = run_group(1, cores, False, args)
    print(f"one process x {cores} threads (pinned: {pinned}): {one:.1f} img/s", flush=True)
    print(f"engine_processes processes={args.processes} threads={args.threads} pinned_img_s={best['forced']:.1f} "
          f"unpinned_img_s={best['now']:.1f} one_process_img_s={one:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
