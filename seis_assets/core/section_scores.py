"""Scores of a facies map against interpreters' labels of the same section, and a label-free baseline to beat.

A map and its labels are two integer arrays of one shape (e.g. samples x traces), one value per sample: the map's
cluster index and the interpreters' unit. The scores compare the two partitions of the samples, so cluster numbers
need not match unit numbers:

- **ARI** and **NMI** (arithmetic normalisation) over all samples (scikit-learn's definitions);
- **mIoU** after a one-to-one (Hungarian) matching of clusters to units that maximises the summed IoU: the mean,
  over the units present in the labels, of the IoU of each unit with its matched cluster; a unit left without a
  cluster (fewer clusters than units) counts 0, a cluster left without a unit costs nothing but its samples stay
  outside every matched unit's intersection.

A map may leave samples without a class (-1: :data:`NO_CLASS`, on traces without data, corrupt or dead). They are
still scored, as the map's statement that there is nothing to classify: one more block of the map's partition for
ARI and NMI, never matched to a unit for mIoU (so they count against the units they belong to); ``no_class`` in
:func:`score_map`'s result is their share. Any other negative value is an error.

The baseline (:func:`depth_bands`) cuts the section into k equal bands along the sample (depth) axis: layered units
alone make it score (ARI 0.3-0.5 on the F3 labelled sections), so a map has to beat it to show it saw more than
depth. No Dagster imports here.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = ["SCORE_NAMES", "NO_CLASS", "check_pair", "iou_matrix", "hungarian_miou", "depth_bands", "score_map", "baseline_scores"]

#: The keys of :func:`score_map`'s result, in the order the benchmark prints them.
SCORE_NAMES = ("ari", "nmi", "miou")
#: A map's value for a sample it gives no class (``facies_labels.sgy``'s -1).
NO_CLASS = -1


def check_pair(map_: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as flat int64 after checking they have one shape, hold at least one sample, and no negative value
    but the map's :data:`NO_CLASS` (any other is not a map or labels of this kind)."""
    map_, labels = np.asarray(map_), np.asarray(labels)
    if map_.shape != labels.shape:
        raise ValueError(f"map shape {map_.shape} != labels shape {labels.shape} (both samples x traces?)")
    if map_.size == 0:
        raise ValueError("empty map: no sample to score")
    for name, a in (("map", map_), ("labels", labels)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integers (cluster or unit indices), got {a.dtype}")
        bad = (a < NO_CLASS) if name == "map" else (a < 0)
        if bad.any():
            raise ValueError(f"{name} holds negative values other than the map's no class ({int(bad.sum())} samples)")
    return map_.ravel().astype(np.int64), labels.ravel().astype(np.int64)


def iou_matrix(map_: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (cluster, unit) pair.

    Returns
    -------
    iou : ndarray (n_clusters, n_units) float, intersection / union of the two sets of samples
    clusters, units : the cluster and unit values of the rows and columns (those present, sorted)
    """
    m, y = check_pair(map_, labels)
    clusters, mi = np.unique(m, return_inverse=True)
    units, yi = np.unique(y, return_inverse=True)
    inter = np.zeros((len(clusters), len(units)), dtype=np.int64)
    np.add.at(inter, (mi, yi), 1)
    union = inter.sum(axis=1, keepdims=True) + inter.sum(axis=0, keepdims=True) - inter
    return inter / union, clusters, units


def hungarian_miou(map_: np.ndarray, labels: np.ndarray) -> tuple[float, dict[int, int]]:
    """mIoU after the one-to-one matching of clusters to units with the largest summed IoU.

    Returns
    -------
    miou : mean IoU over the units present in ``labels`` (an unmatched unit counts 0)
    matching : {unit: cluster} of the matched pairs
    """
    iou, clusters, units = iou_matrix(map_, labels)
    iou[clusters == NO_CLASS] = 0.0  # "no class" is never a unit's match
    rows, cols = linear_sum_assignment(iou, maximize=True)
    per_unit = np.zeros(len(units))
    per_unit[cols] = iou[rows, cols]
    return float(per_unit.mean()), {int(units[c]): int(clusters[r]) for r, c in zip(rows, cols)
                                    if clusters[r] != NO_CLASS}


def depth_bands(n_samples: int, n_traces: int, k: int) -> np.ndarray:
    """The label-free baseline: ``k`` equal bands along the sample axis, as an int array (n_samples, n_traces).

    Sample ``i`` is in band ``floor(i * k / n_samples)``, so band sizes differ by at most one sample.
    """
    if not 1 <= k <= n_samples:
        raise ValueError(f"k must be between 1 and n_samples={n_samples}, got {k}")
    if n_traces < 1:
        raise ValueError(f"n_traces must be positive, got {n_traces}")
    band = (np.arange(n_samples) * k) // n_samples
    return np.repeat(band[:, None], n_traces, axis=1).astype(np.int64)


def score_map(map_: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ARI, NMI and Hungarian mIoU of a map against the labels of the same samples (keys :data:`SCORE_NAMES`), and
    ``no_class``, the share of samples the map gives no class."""
    m, y = check_pair(map_, labels)
    return {
        "ari": float(adjusted_rand_score(y, m)),
        "nmi": float(normalized_mutual_info_score(y, m)),
        "miou": hungarian_miou(m, y)[0],
        "no_class": float((m == NO_CLASS).mean()),
    }


def baseline_scores(labels: np.ndarray, k: int) -> dict[str, float]:
    """:func:`score_map` of the ``k`` depth bands of a labelled section (samples x traces, time down)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be samples x traces, got shape {labels.shape}")
    return score_map(depth_bands(labels.shape[0], labels.shape[1], k), labels)
