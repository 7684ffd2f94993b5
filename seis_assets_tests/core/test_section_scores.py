"""Scores of a map against interpreters' labels, on hand-made arrays whose answers are worked out by hand."""

import numpy as np
import pytest

from seis_assets.core.section_scores import (
    baseline_scores,
    check_pair,
    depth_bands,
    hungarian_miou,
    iou_matrix,
    score_map,
)


def test_a_renamed_copy_of_the_labels_scores_one_everywhere():
    labels = np.array([[0, 0, 1], [1, 2, 2]])
    renamed = np.array([[7, 7, 3], [3, 5, 5]])
    assert score_map(renamed, labels) == pytest.approx({"ari": 1.0, "nmi": 1.0, "miou": 1.0, "no_class": 0.0})
    assert hungarian_miou(renamed, labels)[1] == {0: 7, 1: 3, 2: 5}


def test_one_cluster_for_everything_scores_zero_ari_and_nmi_and_one_unit_matched():
    labels = np.array([0, 0, 1, 1, 2, 2])
    scores = score_map(np.zeros(6, dtype=int), labels)
    assert scores["ari"] == pytest.approx(0.0)
    assert scores["nmi"] == pytest.approx(0.0)
    # the one cluster meets each unit with IoU 2/6; it is matched to one unit, the other two count 0
    assert scores["miou"] == pytest.approx((1 / 3) / 3)


def test_hungarian_miou_worked_example():
    labels = np.array([0, 0, 0, 1, 1, 1])
    map_ = np.array([5, 5, 1, 1, 1, 1])
    iou, clusters, units = iou_matrix(map_, labels)
    assert clusters.tolist() == [1, 5] and units.tolist() == [0, 1]
    # cluster 1 = 4 samples (1 of unit 0, 3 of unit 1); cluster 5 = 2 samples of unit 0
    np.testing.assert_allclose(iou, [[1 / 6, 3 / 4], [2 / 3, 0.0]])
    miou, matching = hungarian_miou(map_, labels)
    assert matching == {0: 5, 1: 1}
    assert miou == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_hungarian_matching_is_one_to_one_not_greedy():
    # unit 0: samples 0-9; unit 1: samples 10-19. Cluster A (0) takes 0-8 and 10-18, the best cluster of both
    # units; cluster B (1) takes 9 and 19. A serves one unit only, so the other gets B.
    labels = np.repeat([0, 1], 10)
    map_ = np.where(np.isin(np.arange(20), [9, 19]), 1, 0)
    miou, matching = hungarian_miou(map_, labels)
    assert sorted(matching.values()) == [0, 1]
    # IoU(A, unit) = 9 / (18 + 10 - 9) = 9/19; IoU(B, unit) = 1 / (2 + 10 - 1) = 1/11
    assert miou == pytest.approx((9 / 19 + 1 / 11) / 2)


def test_more_clusters_than_units_leave_the_extra_clusters_unmatched():
    labels = np.array([0, 0, 0, 0])
    map_ = np.array([0, 0, 1, 2])
    miou, matching = hungarian_miou(map_, labels)
    assert matching == {0: 0}
    assert miou == pytest.approx(0.5)


def test_no_class_is_scored_as_a_block_of_its_own_and_never_matched():
    # unit 0: samples 0-5, unit 1: 6-11; the map gets unit 0 right and gives unit 1's last 3 samples no class
    labels = np.repeat([0, 1], 6)
    map_ = np.array([4] * 6 + [2] * 3 + [-1] * 3)
    scores = score_map(map_, labels)
    assert scores["no_class"] == pytest.approx(0.25)
    # ARI / NMI see the partition {0-5}, {6-8}, {9-11}: as any map with a third cluster there
    assert scores["ari"] == pytest.approx(score_map(np.where(map_ < 0, 9, map_), labels)["ari"])
    assert scores["nmi"] == pytest.approx(score_map(np.where(map_ < 0, 9, map_), labels)["nmi"])
    # mIoU: unit 1 is matched to cluster 2 (IoU 3/6), never to no class, whose samples count against it
    miou, matching = hungarian_miou(map_, labels)
    assert matching == {0: 4, 1: 2} and miou == pytest.approx((1.0 + 0.5) / 2)
    # all of a unit without a class: that unit is matched to nothing and counts 0
    assert hungarian_miou(np.array([4] * 6 + [-1] * 6), labels) == (pytest.approx(0.5), {0: 4})


def test_depth_bands_are_equal_within_one_sample_and_constant_along_traces():
    bands = depth_bands(10, 3, 3)
    assert bands.shape == (10, 3)
    assert bands[:, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (bands == bands[:, :1]).all()
    assert depth_bands(5, 2, 1).max() == 0


def test_the_baseline_is_perfect_on_equal_layers_and_not_on_unequal_ones():
    equal = np.repeat(np.arange(4), 5)[:, None].repeat(6, axis=1)  # 20 samples, 4 layers of 5
    assert baseline_scores(equal, 4) == pytest.approx({"ari": 1.0, "nmi": 1.0, "miou": 1.0, "no_class": 0.0})
    unequal = np.repeat([0, 1], [15, 5])[:, None].repeat(6, axis=1)  # layers of 15 and 5 samples
    scores = baseline_scores(unequal, 2)  # bands of 10 and 10
    # band 0 = unit 0's first 10 samples: IoU 10/15; band 1 vs unit 1: 5/10
    assert scores["miou"] == pytest.approx((10 / 15 + 5 / 10) / 2)
    assert 0 < scores["ari"] < 1


@pytest.mark.parametrize(
    "map_, labels, message",
    [
        (np.zeros((2, 3), int), np.zeros((3, 2), int), "shape"),
        (np.array([0, -2]), np.array([0, 1]), "negative"),
        (np.array([0, 1]), np.array([0, -1]), "negative"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integers"),
        (np.zeros(0, int), np.zeros(0, int), "empty"),
    ],
)
def test_bad_pairs_are_clear_errors(map_, labels, message):
    with pytest.raises(ValueError, match=message):
        check_pair(map_, labels)


def test_depth_bands_reject_impossible_k():
    with pytest.raises(ValueError, match="k must be"):
        depth_bands(5, 2, 6)
    with pytest.raises(ValueError, match="samples x traces"):
        baseline_scores(np.zeros(5, int), 2)
