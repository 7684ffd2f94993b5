import base64
import os
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from upath import UPath

from seis_assets.core import plots
from seis_assets.core.plots.thumbnails import THUMBNAIL_MAX_BYTES

CLASSES = ["chaotic", "fault", "horizon", "salt dome"]


@pytest.fixture(scope="module")
def embedding():
    rng = np.random.default_rng(0)
    xy = np.vstack([rng.normal(size=(25, 2)) + 6 * i for i in range(4)])
    labels = np.repeat(CLASSES, 25)
    clusters = np.repeat([2, 0, 3, 1], 25)
    return xy, labels, clusters


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_scatter_labels_legend_names_classes(tmp_path, embedding):
    xy, labels, _ = embedding
    fig = plots.scatter_figure(xy, labels, title="t", order=CLASSES)
    assert _legend_texts(fig) == [f"{c} (n=25)" for c in CLASSES]
    path = plots.scatter_labels(xy, labels, "UMAP", tmp_path / "sub" / "labels.png")
    w, h = _png_size(path)
    assert (w, h) == (round(8.6 * plots.DPI), round(6.2 * plots.DPI))
    assert os.listdir(tmp_path / "sub") == ["labels.png"]  # temporary sibling renamed away


def test_scatter_clusters_legend_shows_mapping(tmp_path, embedding):
    xy, _, clusters = embedding
    mapping = {0: "fault", 1: "salt dome", 2: "chaotic", 3: "horizon"}
    fig = plots.scatter_clusters_figure(xy, clusters, mapping=mapping)
    assert _legend_texts(fig) == [
        "cluster 0 → fault (n=25)", "cluster 1 → salt dome (n=25)",
        "cluster 2 → chaotic (n=25)", "cluster 3 → horizon (n=25)",
    ]
    assert _legend_texts(plots.scatter_clusters_figure(xy, clusters))[0] == "cluster 0 (n=25)"
    assert os.path.getsize(plots.scatter_clusters(xy, clusters, "k", tmp_path / "c.png", mapping=mapping)) > 5000


def test_confusion_heatmap_annotates_counts_and_names(tmp_path):
    cm = pd.DataFrame([[5, 1], [0, 7]], index=pd.Index(["fault", "salt dome"], name="true"),
                      columns=pd.Index(["fault", "salt dome"], name="predicted"))
    fig = plots.confusion_figure(cm)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["5\n83%", "1\n17%", "0\n0%", "7\n100%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fault", "salt dome"]
    assert ax.get_ylabel() == "true" and ax.get_xlabel() == "predicted"
    assert _png_size(plots.confusion_heatmap(cm, tmp_path / "cm.png"))[0] > 400
    with pytest.raises(ValueError, match="classes"):
        plots.confusion_figure(np.eye(2))


def test_gallery_keeps_patch_aspect_time_down(tmp_path):
    patch = np.zeros((150, 300), np.float32)
    patch[:10] = 1.0  # shallow rows bright: must be drawn on top
    fig = plots.patch_gallery_figure([patch] * 3, ["a", "b", "c"], ncols=3)
    ax = fig.axes[0]
    im = ax.get_images()[0]
    assert ax.get_aspect() == 1.0
    assert im.get_clim() == (-1.0, 1.0)
    assert ax.yaxis_inverted()  # row 0 at the top
    fig.canvas.draw()
    bbox = ax.get_window_extent()
    assert bbox.width / bbox.height == pytest.approx(2.0, rel=0.05)
    path = plots.patch_gallery([patch] * 3, ["a", "b", "c"], tmp_path / "g.png", ncols=3)
    assert _png_size(path)[0] > 300


def test_cluster_gallery_reads_only_sampled_patches_and_labels_rows(tmp_path):
    clusters = np.repeat([0, 1], 20)
    labels = np.array(["fault"] * 18 + ["chaotic"] * 2 + ["chaotic"] * 20)
    read = []

    def load(i):
        read.append(i)
        return np.full((99, 99), (i % 5) / 5, np.float32)

    fig = plots.cluster_gallery_figure(load, clusters, labels=labels, mapping={0: "fault", 1: "chaotic"},
                                       n_per_cluster=4)
    assert len(set(read)) == 8
    ylabels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert ylabels == ["cluster 0 → fault\n(n=20)", "cluster 1 → chaotic\n(n=20)"]
    assert os.path.getsize(plots.cluster_gallery(load, clusters, tmp_path / "cg.png", n_per_cluster=4)) > 1000


def test_anomaly_gallery_shows_top_scores_in_order(tmp_path):
    patches = np.zeros((10, 32, 32), np.float32)
    scores = np.arange(10.0)
    labels = [f"kind{i}" for i in range(10)]
    fig = plots.anomaly_gallery_figure(patches, scores, labels=labels, n=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["#1 score 9.00\nkind9", "#2 score 8.00\nkind8", "#3 score 7.00\nkind7"]
    assert os.path.getsize(plots.anomaly_gallery(patches, scores, tmp_path / "a.png", labels=labels, n=3)) > 1000


def test_k_sweep_plot_marks_configured_k(tmp_path):
    sweep = pd.DataFrame({"k": [2, 3, 4, 5], "silhouette": [0.3, 0.5, 0.7, 0.4],
                          "davies_bouldin": [1.2, 0.9, 0.5, 0.8], "inertia": [100.0, 60.0, 30.0, 25.0]})
    fig = plots.k_sweep_figure(sweep, configured_k=4)
    assert len(fig.axes) == 3
    assert all("configured k=4" in _legend_texts_ax(ax) for ax in fig.axes)
    assert _png_size(plots.k_sweep_plot(sweep, tmp_path / "k.png", configured_k=4)) == (
        round(12.0 * plots.DPI), round(3.8 * plots.DPI))
    with pytest.raises(ValueError, match="lacks columns"):
        plots.k_sweep_figure(sweep.drop(columns="inertia"))


def _legend_texts_ax(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_thumbnail_markdown_is_small_png(tmp_path, embedding):
    xy, labels, _ = embedding
    path = plots.scatter_labels(xy, labels, "UMAP", tmp_path / "big.png")
    md = plots.thumbnail_markdown(path, max_px=200)
    m = re.fullmatch(r"!\[big\.png\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert m and len(md) < THUMBNAIL_MAX_BYTES
    (tmp_path / "t.png").write_bytes(base64.b64decode(m.group(1)))
    assert max(_png_size(tmp_path / "t.png")) == 200
    assert len(plots.thumbnail_markdown(path, max_bytes=3000)) < 3000


def test_save_figure_accepts_upath_urls(embedding):
    xy, labels, _ = embedding
    target = UPath("memory://plots-test/scatter.png")
    out = plots.scatter_labels(xy, labels, "UMAP", target)
    assert out == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.thumbnail_markdown(target).startswith("![scatter.png](data:image/png;base64,")
