"""F3 inline 362 at 2, 4 and 8 ms: the same map once windows are cut at the patches' rate (issue 16, item 1).

The 4 ms file is the real one; the 8 ms and 2 ms files are made from it here (``scipy.signal.resample_poly``,
anti-aliased) and written with 8 / 2 ms in their headers, as a survey recorded at that rate would come. Models are
fitted on the 1,000 labelled F3 patches as ``test_facies_real`` fits them (backbone ``auto+instnorm``, 50-d UMAP
seed 42, KMeans k = 4, majority mapping), then each file is mapped twice: through
:func:`seis_assets.core.section_grid.at_patch_scale` (what the ``facies_map`` asset does) and, for comparison,
with windows cut in samples from the file as it is (what the assets did before). For each map: the issue-8 region
shares at the file's own times, and the share of samples whose category agrees with the 4 ms map at common times.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_segy_scale.py              # stride 11, the default
    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_segy_scale.py --stride 33  # 9x fewer windows

Last line: ``scale maps=<n> agree_8ms= agree_2ms= agree_8ms_unresampled= agree_2ms_unresampled= seconds=``.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np
from scipy.signal import resample_poly

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from seis_assets.core.backbones import load_backbone  # noqa: E402
from seis_assets.core.cluster import fit_kmeans, majority_mapping  # noqa: E402
from seis_assets.core.facies import region_share, vote_line  # noqa: E402
from seis_assets.core.feature_table import table_identity  # noqa: E402
from seis_assets.core.features import embed  # noqa: E402
from seis_assets.core.patches import load_patch  # noqa: E402
from seis_assets.core.reduce import fit_reducer  # noqa: E402
from seis_assets.core.section_grid import at_patch_scale  # noqa: E402
from seis_assets.core.segy import open_survey  # noqa: E402
from seis_assets.core.segy_windows import DEFAULT_STRIDE, cut_windows  # noqa: E402
from seis_assets.core.segy_write import write_section  # noqa: E402
from seis_assets.core.window_predict import window_features  # noqa: E402

DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
INLINE362 = os.path.join(DATA, "sections", "f3_inline362.sgy")
#: (name, category, crossline range, time range ms): ../shared/data/sections/README.md and issue 8
REGIONS = [
    ("salt dome", "salt dome", (820, 950), (1500, 1840)),
    ("chaotic band", "chaotic", None, (1200, 1320)),
    ("faulted lower left", "fault", (300, 700), (1500, 1848)),
    ("continuous layers", "other", None, (200, 1000)),
]
BACKBONE = "auto+instnorm"


def fit_patch_models():
    files = sorted(glob.glob(os.path.join(DATA, "f3_patches", "*", "*.mat")))
    labels = np.array([os.path.basename(os.path.dirname(f)) for f in files])
    backbone = load_backbone(BACKBONE)
    identity = table_identity(backbone, 224, "auto")
    patches = np.stack([load_patch(f) for f in files])
    X = np.concatenate([embed(backbone, patches[i : i + 64], 224, identity["precision"], engine=identity["engine"])
                        for i in range(0, len(patches), 64)])
    reducer, Z = fit_reducer(X, 50, n_neighbors=15, min_dist=0.1, random_state=42)
    kmeans = fit_kmeans(Z, 4, random_state=42)
    return identity, reducer, kmeans, majority_mapping(kmeans.labels_, labels)


def category_map(path: str, models, resample: bool, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Categories of every sample of the file's own grid, its crosslines and times (ms)."""
    identity, reducer, kmeans, mapping = models
    with open_survey(path) as survey:
        grid = at_patch_scale(survey) if resample else survey
        positions, windows, _ = cut_windows(grid, scaling="per_window", stride=stride)
        _, idx = grid.read_line("inline", 362)
        xlines = survey.trace_xline[idx]
        Zw = reducer.transform(window_features(windows, identity))
        clusters = kmeans.predict(np.asarray(Zw, dtype=kmeans.cluster_centers_.dtype))
        cmap, _ = vote_line(positions, clusters, None, 4, len(idx), grid.info.n_samples, "inline", 362, xlines)
        cmap = grid.file_samples(cmap)
        times = survey.info.time_ms(np.arange(survey.info.n_samples))
    return np.vectorize(mapping.get)(cmap), xlines, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=DEFAULT_STRIDE)
    stride = parser.parse_args().stride
    start = time.time()
    tmp = tempfile.mkdtemp(prefix="seis_scale_")
    with open_survey(INLINE362) as survey:
        data, _ = survey.read_line("inline", 362)
    files = {
        4: INLINE362,
        8: write_section(os.path.join(tmp, "inline362_8ms.sgy"), resample_poly(data, 1, 2, axis=1), dt_us=8000,
                         inline=362, first_xline=300),
        2: write_section(os.path.join(tmp, "inline362_2ms.sgy"), resample_poly(data, 2, 1, axis=1)[:, :925],
                         dt_us=2000, inline=362, first_xline=300),
    }
    models = fit_patch_models()
    print(f"patch models fitted: {time.time() - start:.0f} s", flush=True)
    reference, _, _ = category_map(files[4], models, True, stride)
    agree = {}
    for dt, resample in ((4, True), (8, True), (2, True), (8, False), (2, False)):
        cats, xlines, times = category_map(files[dt], models, resample, stride) if dt != 4 else (reference, None, None)
        if dt == 4:
            with open_survey(files[4]) as s:
                xlines, times = np.array(s.info.xlines), s.info.time_ms(np.arange(s.info.n_samples))
        common = cats[:, ::2] if dt == 2 else cats
        ref = reference[:, ::2] if dt == 8 else reference
        agree[(dt, resample)] = float((common[:, : ref.shape[1]] == ref[:, : common.shape[1]]).mean())
        shares = {name: region_share(cats, cat, xlines, times, xr, tr) for name, cat, xr, tr in REGIONS}
        print(f"{dt} ms {'resampled to 4 ms' if resample else 'cut in samples  '} agree_with_4ms="
              f"{agree[(dt, resample)]:.3f} " + " ".join(f"{k.replace(' ', '_')}={v:.3f}" for k, v in shares.items()),
              flush=True)
    print(f"scale maps=5 stride={stride} agree_8ms={agree[(8, True)]:.3f} agree_2ms={agree[(2, True)]:.3f} "
          f"agree_8ms_unresampled={agree[(8, False)]:.3f} agree_2ms_unresampled={agree[(2, False)]:.3f} "
          f"seconds={time.time() - start:.0f}")


if __name__ == "__main__":
    main()
