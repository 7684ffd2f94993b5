"""Map a 3-D cube end to end through the real assets and measure time, memory, the window cache and Dask.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_cube.py                    # the F3-sized cube (651 inlines)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_cube.py --inlines 40 --dask # a slice of it, and on Dask
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_cube.py --cube C --work W --remap-only  # step 3 alone, later
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_cube.py --line-step 3 --agree-with W1/data/outputs/sections/C/facies_labels.sgy

What runs, each step a fresh Python process as a user's ``make demo-segy`` would be (``SEIS_*`` variables, its own
``DAGSTER_HOME``):

1. ``train``: the recluster job on the real F3 patches (``$SHARED_DATA/f3_patches``) makes the model generation the
   cube is classified with (``models=patches``; ``--models survey`` fits on the cube's own windows instead and
   skips this). Not part of the cube's time.
2. ``map``: ``segy_job`` on the cube (``survey_windows`` then ``facies_map``): windows along inlines, stride 33,
   the default survey backbone (``auto+instnorm``) on the engine ``auto`` picks. Its wall time is ``seconds``; the
   process tree's peak RSS (sampled every 0.2 s; ``peak_anon_mb`` leaves out shared libraries and mapped files) is
   ``peak_rss_mb``; the stage times come from the assets' metadata.
3. ``remap``: ``segy_job`` again, as after a new model generation: every line's windows come from the cache, only
   classification and voting run.
4. ``--dask``: the window cache emptied and ``segy_job`` run with ``SEIS_DASK_SCHEDULER`` pointing at a Dask
   ``LocalCluster`` of 2 single-threaded worker processes started here on 127.0.0.1 (``dask_seconds``; its peak
   memory counts the workers' processes too). ``--dask local``: the same cluster started by the run itself
   (``SEIS_DASK_SCHEDULER=local:2``), start-up and shut-down included. Printed after it: its stage times (the
   workers' summed) and whether its ``facies_labels.sgy`` equals the local map's byte for byte.

``--units N`` (with ``--models survey``) maps N stratigraphic units per line (``SEIS_SEGY_UNITS``), each inline cut
with ``--tie-lines`` inlines on each side (``SEIS_SEGY_TIE_LINES``; default: the setting's). Every run prints
``neighbour_agreement``: the share of samples whose class is the same on the next inline.
``--line-step N`` cuts windows on every N-th inline only (``SEIS_SEGY_LINE_STEP``; the lines between take their
nearest cut line's votes); ``--agree-with`` an earlier run's ``facies_labels.sgy`` prints the share of the cube's
samples whose class is the same in both (``agreement``).

The cube is made by ``benchmarks/make_cube.py``'s generator when missing (``--inlines`` of the F3-sized geometry,
from the real inline 362 of ``$SHARED_DATA/sections``, else a generated section). Last line:
``cube samples= windows= seconds= windows_per_s= peak_rss_mb= dask_seconds=``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DATA", ROOT.parent / "shared" / "data"))
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " ".join(f for f in FLAGS if re.search(rf"\b{f}\b", text))


def ensure_cube(path: Path, inlines: int) -> Path:
    if path.exists():
        return path
    from seis_assets.core.cube_model import CarryModel, generated_section, make_cube, read_section

    source = SHARED / "sections" / "f3_inline362.sgy"
    section = read_section(source) if source.exists() else generated_section()
    print(f"making {path} ({inlines} inlines x 951 x 462) from {source if source.exists() else 'a generated line'}",
          flush=True)
    model = CarryModel()
    if source.exists():  # centre the dome's changes on it (make_cube.py --body-xline 860)
        import dataclasses

        model = dataclasses.replace(model, body_centre=(860 - section.first_xline) / (section.data.shape[0] - 1))
    make_cube(path, section, inlines, 951, 462, seed=0, model=model)
    return path


class TreeMemory:
    """Peak RSS and anonymous RSS of some processes and all their children, sampled every ``every`` seconds."""

    def __init__(self, pids: list[int], every: float = 0.2):
        import psutil

        self.roots = [psutil.Process(pid) for pid in pids]
        self.peak_rss = self.peak_anon = 0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            rss = anon = 0
            try:
                tree = {p.pid: p for root in self.roots for p in [root, *root.children(recursive=True)]}
                for p in tree.values():
                    try:
                        status = Path(f"/proc/{p.pid}/status").read_text()
                        rss += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
                        anon += int(re.search(r"RssAnon:\s+(\d+)", status).group(1))
                    except (OSError, AttributeError):
                        pass
            except psutil.Error:
                pass
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            self._stop.wait(self.every)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_rss / 1024, self.peak_anon / 1024


def run_step(name: str, code: str, env: dict, log: Path, also: list[int] = ()) -> dict:
    """Run ``code`` in a fresh interpreter with ``env``; wall seconds and peak memory of its process tree, plus the
    trees of the processes ``also`` (a Dask cluster's workers)."""
    start = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        memory = TreeMemory([proc.pid, *also])
        rc = proc.wait()
    seconds = time.perf_counter() - start
    rss, anon = memory.stop()
    if rc:
        raise SystemExit(f"{name} failed (exit {rc}); its log: {log}")
    print(f"  {name}: {seconds:.1f} s, peak RSS {rss:.0f} MB (anonymous {anon:.0f} MB)", flush=True)
    return {"seconds": seconds, "peak_rss_mb": rss, "peak_anon_mb": anon}


TRAIN = "import seis_assets.demo as d, sys; sys.exit(d.main())"
MAP = (
    "import dagster as dg; from seis_assets.definitions import defs; "
    "from seis_assets.demo import QUIET_LOGS; from seis_assets.demo_segy import run_surveys\n"
    "with dg.DagsterInstance.get() as instance: run_surveys(defs, instance, QUIET_LOGS)"
)


def last_metadata(home: Path, asset: str, partition: str) -> dict:
    """The metadata of the latest materialization of ``asset[partition]`` in the instance at ``home``."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event.dagster_event.partition == partition, event.dagster_event.partition
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def stage_times(home: Path, cube: Path) -> str:
    """The latest map's stage times as ``survey_windows`` (summed over Dask workers) and ``facies_map`` record them."""
    return (f"windows {json.dumps(last_metadata(home, 'survey_windows', cube.name)['lines']['seconds'])}; "
            f"facies_map {json.dumps(last_metadata(home, 'facies_map', cube.name)['seconds'])}")


def remap(env: dict, home: Path, cube: Path, log: Path) -> tuple[dict, dict]:
    """Step 3: ``segy_job`` again over the window cache; prints its lines re-used and stage times, returns
    ``(run_step's figures, survey_windows' lines metadata)``."""
    again = run_step("remap (windows from the cache)", MAP, env, log)
    lines = last_metadata(home, "survey_windows", cube.name)["lines"]
    print(f"  remap: {lines['lines_reused']} of {lines['lines']} lines re-used; stages (s): {stage_times(home, cube)}; "
          f"total {again['seconds']:.1f} s", flush=True)
    return again, lines


def labels_digest(data: Path, cube: Path) -> str:
    """sha256 of the map's ``facies_labels.sgy``: two runs wrote the same map when their digests are equal."""
    import hashlib

    h = hashlib.sha256()
    with open(data / "outputs" / "sections" / cube.name / "facies_labels.sgy", "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def labels_agreement(a: Path, b: Path) -> float:
    """Share of the samples whose class is the same in two ``facies_labels.sgy`` of one cube (trace by trace)."""
    import numpy as np
    import segyio

    same = total = 0
    with segyio.open(a, ignore_geometry=True) as fa, segyio.open(b, ignore_geometry=True) as fb:
        if fa.tracecount != fb.tracecount or len(fa.samples) != len(fb.samples):
            raise SystemExit(f"{a} and {b} are not maps of the same cube")
        for i in range(0, fa.tracecount, 4096):
            j = min(i + 4096, fa.tracecount)
            x, y = np.asarray(fa.trace.raw[i:j]), np.asarray(fb.trace.raw[i:j])
            same += int((x == y).sum())
            total += x.size
    return same / total


def neighbour_agreement(labels: Path) -> float:
    """Share of the samples whose class is the same on the next inline (trace by trace, where both inlines have the
    same crosslines): how much a map changes from one inline to the next, 25 m on F3."""
    from seis_assets.core.segy import open_survey

    same = total = 0
    with open_survey(labels) as survey:
        previous = None
        for number in survey.lines("inline"):
            values, idx = survey.read_line("inline", number)
            line = (tuple(survey.trace_xline[idx]), values)
            if previous is not None and previous[0] == line[0]:
                same += int((previous[1] == values).sum())
                total += values.size
            previous = line
    return same / total if total else float("nan")


def start_dask(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inlines", type=int, default=651, help="inlines of the F3-sized cube (951 x 462 each)")
    ap.add_argument("--cube", type=Path, help="map this SEG-Y instead (made when missing)")
    ap.add_argument("--models", choices=("patches", "survey"), default="patches")
    ap.add_argument("--units", type=int, default=0,
                    help="with --models survey: map this many stratigraphic units per line (SEIS_SEGY_UNITS)")
    ap.add_argument("--tie-lines", type=int, default=None,
                    help="with --units: inlines on each side an inline is cut with (SEIS_SEGY_TIE_LINES)")
    ap.add_argument("--stride", type=int, default=33)
    ap.add_argument("--line-step", type=int, default=1, help="windows on every n-th inline (SEIS_SEGY_LINE_STEP)")
    ap.add_argument("--agree-with", type=Path,
                    help="an earlier map's facies_labels.sgy: print the share of samples of the same class")
    ap.add_argument("--input-size", default=None, help="SEIS_INPUT_SIZE (224 or native; default: the setting's)")
    ap.add_argument("--dask", nargs="?", const="external", choices=("external", "local"),
                    help="also map on a LocalCluster of 2 one-thread worker processes: started here (external, the "
                         "default) or by the run itself (local: SEIS_DASK_SCHEDULER=local:2)")
    ap.add_argument("--no-remap", action="store_true")
    ap.add_argument("--remap-only", action="store_true",
                    help="only the remap step, in the --work folder of an earlier run (its models and window cache)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed at the end)")
    args = ap.parse_args(argv)
    if args.units and args.models != "survey":
        ap.error("--units needs --models survey (units are cut from the survey's own window clusters)")
    if args.remap_only and not (args.work and (args.work / "data" / "cache" / "windows").is_dir()):
        raise SystemExit("--remap-only needs --work, the folder of an earlier run with its window cache")

    cube = ensure_cube(args.cube or ROOT / "data" / "cube" / f"f3_like_{args.inlines}il.sgy", args.inlines)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_cube_"))
    work.mkdir(parents=True, exist_ok=True)
    home, data, log = work / "dagster_home", work / "data", work / "bench_cube.log"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").touch()  # an instance in the folder itself, as the Makefile's .dagster_home
    env = {**os.environ, "DAGSTER_HOME": str(home), "SEIS_DATA_DIR": str(data), "PYTHONPATH": str(ROOT),
           "SEIS_SEGY_STRIDE": str(args.stride), "SEIS_SEGY_MODELS": args.models,
           "SEIS_SEGY_LINE_STEP": str(args.line_step), "SEIS_SEGY_UNITS": str(args.units)}
    if args.input_size:
        env["SEIS_INPUT_SIZE"] = args.input_size
    if args.tie_lines is not None:
        env["SEIS_SEGY_TIE_LINES"] = str(args.tie_lines)
    print(f"cube {cube} ({cube.stat().st_size / 1e9:.2f} GB); machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, flags {cpu_flags()}; log {log}", flush=True)
    try:
        if args.remap_only:
            env["SEIS_SEGY"] = str(cube)
            again, lines = remap(env, home, cube, log)
            print(f"cube remap seconds={again['seconds']:.1f} lines_reused={lines['lines_reused']} "
                  f"lines={lines['lines']} peak_rss_mb={again['peak_rss_mb']:.0f} "
                  f"peak_anon_mb={again['peak_anon_mb']:.0f}")
            return 0
        if args.models == "patches":
            patches = SHARED / "f3_patches"
            if not patches.is_dir():
                raise SystemExit(f"--models patches trains on {patches}: set SHARED_DATA, or pass --models survey")
            # the backbone surveys are mapped with (auto+instnorm, chosen when SEIS_SEGY is set), on the patches
            run_step("train", TRAIN, {**env, "SEIS_TRAIN_DIR": str(patches), "SEIS_SEGY": ""} | {
                "SEIS_BACKBONE": os.environ.get("SEIS_BACKBONE", "auto+instnorm")}, log)
        env["SEIS_SEGY"] = str(cube)
        first = run_step("map", MAP, env, log)
        n_windows = int(last_metadata(home, "survey_windows", cube.name)["lines"]["n_windows"])
        print(f"  stages (s): {stage_times(home, cube)}", flush=True)
        local_digest = labels_digest(data, cube) if args.dask else None  # before the Dask run rewrites it
        if not args.no_remap:
            remap(env, home, cube, log)
        dask_seconds = float("nan")
        if args.dask:
            shutil.rmtree(data / "cache" / "windows", ignore_errors=True)
        if args.dask == "local":  # the run starts and stops the cluster; its workers are the map's children
            step = run_step("map on Dask, SEIS_DASK_SCHEDULER=local:2 (the run's own cluster)", MAP,
                            {**env, "SEIS_DASK_SCHEDULER": "local:2"}, log)
            dask_seconds = step["seconds"]
        elif args.dask:
            with start_dask(2) as cluster:
                import psutil

                workers = [p.pid for p in psutil.Process().children()]  # the cluster's worker processes
                step = run_step("map on Dask (2 workers x 1 thread; memory counts the workers)", MAP,
                                {**env, "SEIS_DASK_SCHEDULER": cluster.scheduler_address}, log, also=workers)
            dask_seconds = step["seconds"]
        if args.dask:
            print(f"  stages on Dask (s, summed over the workers): {stage_times(home, cube)}; "
                  f"labels identical to the local map: {labels_digest(data, cube) == local_digest}", flush=True)
        from seis_assets.core.segy import open_survey

        with open_survey(cube) as survey:
            samples = survey.info.n_traces * survey.info.n_samples
        agreement = float("nan")
        if args.agree_with:
            agreement = labels_agreement(data / "outputs" / "sections" / cube.name / "facies_labels.sgy",
                                         args.agree_with)
            print(f"  agreement with {args.agree_with}: {agreement:.4f} of the samples have the same class")
        neighbours = neighbour_agreement(data / "outputs" / "sections" / cube.name / "facies_labels.sgy")
        print(f"  neighbouring inlines: {neighbours:.4f} of the samples have the class of the next inline's")
        print(f"  peak anonymous RSS {first['peak_anon_mb']:.0f} MB (RSS counts shared libraries and mapped files too)")
        print(f"cube samples={samples} windows={n_windows} seconds={first['seconds']:.1f} "
              f"windows_per_s={n_windows / first['seconds']:.1f} peak_rss_mb={first['peak_rss_mb']:.0f} "
              f"dask_seconds={dask_seconds:.1f} line_step={args.line_step} agreement={agreement:.4f} "
              f"neighbour_agreement={neighbours:.4f}")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
