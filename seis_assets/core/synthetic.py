"""Synthetic seismic patches of the LANDMASS classes, test-set anomalies, and a data set of them on disk.

Each class is a *structure* drawn at random (a relative-geologic-time map ``t = z - u(z, x)``, where ``u`` is a smooth
displacement field: regional dip plus folds whose wavelength and amplitude vary laterally and with depth):

- ``horizon`` (F3's "other"): quiet, thinly layered intervals, sometimes with one bright marker bed;
- ``fault``: a throw on one side of steep dipping planes (a staircase offsetting a bright marker);
- ``chaotic``: a hummocky displacement in a band with brighter, broken reflector segments whose traces jitter
  (shift and scale) one by one;
- ``salt dome``: layers dragged steeply upwards on the flanks, the body replaced by weakly reflective salt under a
  strong top reflector, migration swings of the opposite dip (conflicting dips), and absorption inside the salt.

:mod:`seis_assets.core.synthetic_model` renders a structure into a patch (layered earth, wavelet, noise, clip,
scaling to [-1, 1]); its physics was tuned against real F3 patches with ``benchmarks/compare_synthetic.py``
(``benchmarks/synthetic_vs_real.md``).

``difficulty`` in [0, 1] raises noise, fold amplitude and dip spread and lowers
fault throw, the marker contrast, chaotic disruption and the salt-body contrast, so
classes overlap more. A seed makes every data set reproducible: each patch has its own
generator seeded by ``(seed, split, class, index)``.

Anomalies for the test set (:data:`ANOMALY_KINDS`): ``dead_traces`` (zeroed
columns), ``clipped`` (amplitude clipping), ``spikes`` (isolated full-scale
samples), ``polarity_block`` (a block with reversed polarity) and
``absent_class`` (an igneous sill, :data:`ABSENT_CLASS`: a bright saucer-shaped
reflector cutting across the layering, a class not in training).

The command line (``python -m seis_assets.synthetic``) is :mod:`seis_assets.synthetic`.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from scipy import ndimage

from seis_assets.core.synthetic_model import Scene, child_rng, fold_field, lerp, render, smooth_field

__all__ = [
    "CLASSES",
    "ABSENT_CLASS",
    "ANOMALY_KINDS",
    "DEFAULT_DIFFICULTY",
    "DEFAULT_SIZE",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_TEST",
    "DEFAULT_SEED",
    "DEFAULT_ANOMALY_SHARE",
    "MANIFEST_COLUMNS",
    "generate_patch",
    "generate_sill",
    "inject_anomaly",
    "write_dataset",
]

CLASSES: tuple[str, ...] = ("chaotic", "fault", "horizon", "salt dome")
#: The class the ``absent_class`` anomaly draws from (never in training).
ABSENT_CLASS = "igneous sill"
ANOMALY_KINDS: tuple[str, ...] = ("dead_traces", "clipped", "spikes", "polarity_block", "absent_class")
#: Chosen so that the default pipeline (EfficientNet-Lite0 -> UMAP 50-d -> KMeans) separates the classes clearly
#: but not perfectly (benchmarks/README.md, "ARI against the generator's difficulty").
DEFAULT_DIFFICULTY = 0.5
DEFAULT_SIZE: tuple[int, int] = (99, 99)
DEFAULT_N_TRAIN = 150
DEFAULT_N_TEST = 40
DEFAULT_SEED = 0
DEFAULT_ANOMALY_SHARE = 0.08
#: Columns of the manifest returned by :func:`write_dataset`.
MANIFEST_COLUMNS: tuple[str, ...] = ("file", "split", "category", "generated_class", "anomaly")

_SPLITS = ("train", "test")
_MIN_SIDE = 16


def _check(size: tuple[int, int], difficulty: float) -> tuple[int, int]:
    if len(size) != 2 or min(size) < _MIN_SIDE:
        raise ValueError(f"size must be (height, width) with sides >= {_MIN_SIDE}, got {size}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    return int(size[0]), int(size[1])


# --------------------------------------------------------------------------- the classes
def _horizon(rng: np.random.Generator, scene: Scene, u: np.ndarray, z: np.ndarray, x: np.ndarray, d: float) -> None:
    """F3 "other": quiet, thinly layered intervals, sometimes with one bright marker."""
    scene.strength = rng.uniform(0.3, 0.55)
    if rng.random() < 0.7:
        scene.marker = (6.0, 12.0)


def _fault(rng: np.random.Generator, scene: Scene, u: np.ndarray, z: np.ndarray, x: np.ndarray, d: float) -> None:
    """A staircase of sub-parallel, steep normal faults offsetting a bright marker (adds their throw to ``u``)."""
    h, w = u.shape
    scene.marker = (lerp(7.0, 4.0, d), lerp(12.0, 7.0, d)) if rng.random() < 0.9 else None
    scene.strength = rng.uniform(0.5, 0.9)
    side = rng.choice([-1.0, 1.0])
    n_faults = int(rng.integers(1, 6))
    x0s = np.sort(rng.uniform(0.1, 0.9, n_faults)) * w
    for x0 in x0s:
        theta = np.radians(rng.uniform(75.0, 89.0))
        z0 = rng.uniform(0.3, 0.7) * h
        dist = (x - x0) - side * (z - z0) / np.tan(theta)  # lateral distance to the fault plane
        throw = lerp(7.0, 2.0, d) * rng.uniform(0.5, 1.3) * h / 99.0
        hanging = 0.5 * (1.0 + np.tanh(side * dist / 0.3))  # hanging wall drops: normal fault
        drag = 0.15 * throw * np.exp(-np.abs(dist) / 3.0) * np.tanh(side * dist / 0.3)
        u += throw * hanging - drag


def _chaotic(rng: np.random.Generator, scene: Scene, u: np.ndarray, z: np.ndarray, x: np.ndarray, d: float) -> None:
    """A band of bright, hummocky (mounded, laterally short but smooth) reflector segments within ordinary
    layering: mass-transport or slumped deposits (adds the band's displacement to ``u``)."""
    h, w = u.shape
    zc = rng.uniform(0.3, 0.7) * h
    half = rng.uniform(0.1, 0.3) * h
    band = 0.5 * (np.tanh((z - (zc - half)) / 3.0) - np.tanh((z - (zc + half)) / 3.0))
    strength = lerp(4.0, 1.5, d) * h / 99.0
    u += strength * band * smooth_field(rng, (h, w), (rng.uniform(3.0, 6.0), rng.uniform(6.0, 12.0)))
    seg = smooth_field(rng, (h, w), (1.5, rng.uniform(3.0, 7.0)))
    scene.gain *= 1.0 + band * rng.uniform(1.0, 2.4) * lerp(1.0, 0.6, d)
    scene.gain *= 1.0 - band * lerp(0.8, 0.4, d) * (seg < rng.uniform(-0.5, 0.3))
    # trace-scale jitter inside the band: each trace shifted and scaled on its own (unresolved scatterers,
    # short-wavelength statics), so neighbouring traces decorrelate as in F3's chaotic band
    jit = child_rng(rng)
    shift = ndimage.gaussian_filter1d(jit.standard_normal((h, w)), 3.0, axis=0)
    u += band * jit.uniform(0.25, 0.65) * shift / (shift.std() + 1e-12)
    scene.gain *= np.clip(1.0 + band * jit.uniform(0.04, 0.1) * jit.standard_normal((1, w)), 0.5, None)
    scene.strength = rng.uniform(0.5, 0.8)


def _salt_dome(rng: np.random.Generator, scene: Scene, u: np.ndarray, z: np.ndarray, x: np.ndarray, d: float) -> None:
    """A salt body: layers dragged up on its flanks (in ``u``), a weakly reflective interior under a strong top
    reflector, migration swings of the opposite dip, and absorption inside the salt."""
    h, w = u.shape
    xc = rng.uniform(0.2, 0.8) * w
    apex = rng.uniform(-0.2, 0.35) * h
    width = rng.uniform(0.3, 0.7) * w
    power = rng.uniform(1.2, 2.2)
    rugose = 1.5 * smooth_field(rng, (1, w), (0.0, 3.0))  # a rough salt top
    top = apex + h * (np.abs(x - xc) / width) ** power + rugose  # (1, W) depth of the salt top
    above = top - z  # > 0 above the salt
    drag_amp = lerp(30.0, 12.0, d) * h / 99.0
    u -= drag_amp * np.exp(-np.clip(above, 0, None) / rng.uniform(12.0, 30.0))
    inside = 0.5 * (1.0 - np.tanh(above / 0.8))
    interior_level = lerp(0.1, 0.5, d)  # interior reflectivity RMS relative to the layers'
    top_level = rng.uniform(3.0, 6.0)  # salt is faster: a strong top reflector
    scene.body = (inside, interior_level, top_level, smooth_field(rng, (h, w), (1.0, 1.5)))
    scene.strength = rng.uniform(0.9, 1.3)  # steep, dragged, bright flank reflectors
    # migration swings: steep events of the opposite dip near the flanks (conflicting dips)
    for _ in range(int(rng.integers(1, 4))):
        slope = -np.sign(x - xc) * np.tan(np.radians(rng.uniform(25.0, 55.0)))
        z_line = rng.uniform(0.2, 0.8) * h + slope * (x - xc)
        near = np.exp(-np.abs(x - xc - rng.normal(0.0, 0.2 * w)) / (0.25 * w))
        scene.extra.append(rng.uniform(1.0, 3.0) * near * np.exp(-0.5 * ((z - z_line) / 0.7) ** 2) * 0.7)
    scene.absorption_q = child_rng(rng).uniform(8.0, 25.0)  # the dim, scattering salt interior loses high frequencies


#: Each class's structure: adds its displacement to ``u`` (in place) and fills the :class:`Scene`.
_CLASS_STRUCTURES = {"horizon": _horizon, "fault": _fault, "chaotic": _chaotic, "salt dome": _salt_dome}


def _structure(category: str, rng: np.random.Generator, size: tuple[int, int], d: float) -> tuple[np.ndarray, Scene]:
    """Relative-time map t (H, W) and a :class:`Scene` for one class at difficulty d."""
    h, w = size
    z = np.arange(h, dtype=float)[:, None]
    x = np.arange(w, dtype=float)[None, :]
    dip_spread = lerp(2.0, 9.0, d)
    dip = np.tan(np.radians(rng.normal(0.0, dip_spread)))
    fold_amp = lerp(0.5, 4.0, d) * h / 99.0
    u = dip * (x - w / 2) + fold_field(rng, z, x, fold_amp)
    u = np.broadcast_to(u, (h, w)).copy()
    scene = Scene((h, w))
    draw = _CLASS_STRUCTURES.get(category)
    if draw is None:
        raise ValueError(f"unknown category {category!r}; expected one of {CLASSES} (or {ABSENT_CLASS!r})")
    draw(rng, scene, u, z, x, d)
    return z - u, scene


def generate_patch(
    category: str,
    rng: np.random.Generator,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = DEFAULT_DIFFICULTY,
) -> np.ndarray:
    """One synthetic seismic patch of a class.

    Parameters
    ----------
    category : {"chaotic", "fault", "horizon", "salt dome"}
    rng : numpy.random.Generator
        The only source of randomness; the same generator state gives the same patch.
    size : (int, int)
        (height, width) = (samples per trace, traces).
    difficulty : float in [0, 1]
        0 = textbook examples, 1 = noisy, folded, small throws: classes overlap.

    Returns
    -------
    patch : ndarray of shape size, float32, min -1 and max 1
    """
    size = _check(size, difficulty)
    if category not in CLASSES:
        raise ValueError(f"unknown category {category!r}; expected one of {CLASSES}")
    t, scene = _structure(category, rng, size, difficulty)
    return render(rng, size, difficulty, t, scene)


def generate_sill(
    rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE, difficulty: float = DEFAULT_DIFFICULTY
) -> np.ndarray:
    """A patch of the absent class: an igneous sill, a bright saucer-shaped reflector
    cutting across gently folded layers. Same parameters and return as :func:`generate_patch`."""
    h, w = _check(size, difficulty)
    t, scene = _structure("horizon", rng, (h, w), difficulty)
    z = np.arange(h, dtype=float)[:, None]
    x = np.arange(w, dtype=float)[None, :]
    xc, base = rng.uniform(0.3, 0.7) * w, rng.uniform(0.35, 0.75) * h
    rim = rng.uniform(0.2, 0.45) * h
    depth = base - rim * np.clip((np.abs(x - xc) / (rng.uniform(0.25, 0.45) * w)) ** 2 - 1.0, 0.0, None)
    thickness = rng.uniform(2.0, 4.0)
    sill = 0.5 * (np.tanh((z - depth) / 0.6) - np.tanh((z - depth - thickness) / 0.6))
    edge = np.diff(sill, axis=0, prepend=sill[:1])  # top and base reflections of the sill
    scene.marker = None
    scene.extra.append(rng.uniform(5.0, 8.0) * edge)  # igneous rock: far stronger than any sedimentary contrast
    return render(rng, (h, w), difficulty, t, scene)


def inject_anomaly(patch: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Corrupt a patch (or replace it by an absent-class patch).

    Parameters
    ----------
    patch : ndarray of shape (H, W), values in [-1, 1]
    kind : one of ANOMALY_KINDS
        dead_traces: 4-15 % of the traces (some in a block) set to 0;
        clipped: amplitudes clipped at 15-35 % of the peak, rescaled to [-1, 1];
        spikes: 0.5-2 % of the samples set to +-1;
        polarity_block: a rectangle of 1/6 to 1/2 of each side with reversed sign;
        absent_class: a new :func:`generate_sill` patch of the same size.
    rng : numpy.random.Generator

    Returns
    -------
    out : ndarray of shape (H, W), float32, values in [-1, 1] (the input is not modified)
    """
    p = np.asarray(patch, dtype=np.float32)
    if p.ndim != 2:
        raise ValueError(f"expected a 2-D patch, got shape {p.shape}")
    h, w = p.shape
    out = p.copy()
    if kind == "dead_traces":
        n = max(2, int(round(w * rng.uniform(0.04, 0.15))))
        start = int(rng.integers(0, w - n // 2))
        cols = np.unique(np.concatenate([np.arange(start, min(w, start + n // 2)), rng.choice(w, n - n // 2)]))
        out[:, cols] = 0.0
    elif kind == "clipped":
        c = rng.uniform(0.15, 0.35) * float(np.abs(out).max())
        out = np.clip(out, -c, c) / c
    elif kind == "spikes":
        n = max(3, int(h * w * rng.uniform(0.005, 0.02)))
        idx = rng.choice(h * w, n, replace=False)
        out.flat[idx] = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), n)
    elif kind == "polarity_block":
        bh, bw = int(h * rng.uniform(1 / 6, 1 / 2)), int(w * rng.uniform(1 / 6, 1 / 2))
        r0, c0 = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        out[r0 : r0 + bh, c0 : c0 + bw] *= -1.0
    elif kind == "absent_class":
        return generate_sill(rng, (h, w))
    else:
        raise ValueError(f"unknown anomaly kind {kind!r}; expected one of {ANOMALY_KINDS}")
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- data set on disk
def _patch_rng(seed: int, split: int, cls: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, split, cls, index])


def _check_dataset(
    size: tuple[int, int], difficulty: float, n_train: int, n_test: int, anomaly_share: float
) -> tuple[int, int]:
    size = _check(size, difficulty)
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    if not 0.0 <= anomaly_share <= 1.0:
        raise ValueError(f"anomaly_share must be in [0, 1], got {anomaly_share}")
    return size


def _clear(train_dir: Path, test_dir: Path, force: bool) -> None:
    """Refuse a non-empty ``train_dir`` unless ``force``; with it, delete ``train_dir`` and ``test_dir``."""
    if train_dir.is_dir() and any(train_dir.iterdir()):
        if not force:
            raise FileExistsError(
                f"{train_dir} is not empty; refusing to overwrite it. Pass force=True (--force) to replace "
                f"{train_dir} and {test_dir}, or choose another --out."
            )
        shutil.rmtree(train_dir)
        if test_dir.exists():
            shutil.rmtree(test_dir)


def _plan_anomalies(seed: int, n_test_total: int, anomaly_share: float) -> dict[int, str]:
    """``{position among all test files: anomaly kind}``, positions and kinds drawn from their own generator."""
    plan_rng = np.random.default_rng([seed, 99])
    n_anom = int(round(anomaly_share * n_test_total))
    positions = plan_rng.choice(n_test_total, n_anom, replace=False) if n_anom else np.array([], int)
    return {int(p): str(plan_rng.choice(ANOMALY_KINDS)) for p in positions}


def _write_split(
    root: Path, s: int, n: int, kinds: dict[int, str], seed: int, size: tuple[int, int], difficulty: float
) -> list[tuple[str, str, str, str, str]]:
    """Write the ``n`` patches per class of split number ``s``; return their manifest rows."""
    split = _SPLITS[s]
    rows = []
    for c, cls in enumerate(CLASSES):
        if n == 0:
            continue
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = _patch_rng(seed, s, c, i)
            patch = generate_patch(cls, rng, size, difficulty)
            kind = kinds.get(c * n + i, "")
            generated = cls
            if kind:
                patch = inject_anomaly(patch, kind, rng)
                generated = ABSENT_CLASS if kind == "absent_class" else cls
            name = f"{cls}_{i + 1:04d}.mat"
            scipy.io.savemat(folder / name, {"img": patch})
            rows.append((f"{split}/{cls}/{name}", split, cls, generated, kind))
    return rows


def _write_anomaly_list(path: Path, rows: list[tuple[str, str, str, str, str]]) -> None:
    """``anomalies.csv``: the anomalous test files (path relative to the test folder) and their kind."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "kind"])
        writer.writerows((file.split("/", 1)[1], kind) for file, split, _, _, kind in rows if split == "test" and kind)


def write_dataset(
    root: str | Path,
    n_train: int = DEFAULT_N_TRAIN,
    n_test: int = DEFAULT_N_TEST,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = DEFAULT_DIFFICULTY,
    seed: int = DEFAULT_SEED,
    anomaly_share: float = DEFAULT_ANOMALY_SHARE,
    force: bool = False,
) -> pd.DataFrame:
    """Write a LANDMASS-like data set of MATLAB v5 files.

    Layout: ``root/train/<cls>/<cls>_0001.mat`` and ``root/test/<cls>/<cls>_0001.mat``
    (key ``img``, float32 in [-1, 1]) for every class in :data:`CLASSES`, and
    ``root/test/anomalies.csv`` (columns ``file`` = path relative to ``root/test`` with
    forward slashes, ``kind``). ``round(anomaly_share * 4 * n_test)`` test files, at
    random positions over all classes, are anomalies (kinds drawn uniformly from
    :data:`ANOMALY_KINDS`); they keep the naming of their folder.

    Parameters
    ----------
    root : path
    n_train, n_test : int
        Patches per class and split (n_test may be 0: no test folder).
    size : (int, int)
    difficulty : float in [0, 1]
    seed : int
        Same seed and parameters give identical arrays.
    anomaly_share : float in [0, 1]
    force : bool
        Without it, a non-empty ``root/train`` raises FileExistsError; with it,
        ``root/train`` and ``root/test`` are deleted first.

    Returns
    -------
    manifest : DataFrame with columns MANIFEST_COLUMNS, one row per file
        file: path relative to root (forward slashes); split; category (folder);
        generated_class (the class drawn, ABSENT_CLASS for a sill); anomaly (kind or "").
    """
    size = _check_dataset(size, difficulty, n_train, n_test, anomaly_share)
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    _clear(train_dir, test_dir, force)
    kinds = _plan_anomalies(seed, n_test * len(CLASSES), anomaly_share)
    rows = _write_split(root, 0, n_train, {}, seed, size, difficulty)
    rows += _write_split(root, 1, n_test, kinds, seed, size, difficulty)
    if n_test > 0:
        _write_anomaly_list(test_dir / "anomalies.csv", rows)
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
