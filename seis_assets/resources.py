"""Settings of the pipeline as Dagster resources: one home per setting.

Three small resources, each with the defaults that run the demo:

- :class:`SeisPaths`: where patches come from and where results go.
- :class:`FeatureSettings`: how features are made (backbone, weights, input size, precision).
- :class:`AnalysisSettings`: embedding, clustering, quality gates.

Environment variables override the folder defaults when the definitions load (``SEIS_TRAIN_DIR``,
``SEIS_TEST_DIR`` (default: the ``test`` folder beside the train folder), ``SEIS_OUTPUT_DIR``, ``SEIS_DATA_DIR``, ``SEIS_INCOMING_DIR``, ``SEIS_BACKBONE``,
``SEIS_WEIGHTS_PATH``, ``SEIS_ENGINE``); in the Dagster UI every field can also be changed in the launchpad.
Relative paths are resolved against the working directory (the repository root under ``make``).
"""

from __future__ import annotations

import os
from typing import Optional

import uuid

import dagster as dg
import pydantic
from pydantic import PrivateAttr
from upath import UPath

from seis_assets.io_managers import table_path

DEFAULT_DATA_DIR = "data"


def _resolve(path: str) -> str:
    """Absolute local path, or the URL untouched (s3://..., memory://...)."""
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


class SeisPaths(dg.ConfigurableResource):
    """Folders of the pipeline.

    ``train_dir`` holds one sub-folder per category (LANDMASS layout); ``test_dir`` is optional (real LANDMASS has
    no split): when it does not exist, test predictions are simply empty. ``data_dir`` is the storage root:
    ``warehouse/`` (Parquet tables), ``models/`` (fitted reducers, KMeans, mapping); ``output_dir`` receives the
    seed script's artifacts and the plots. ``incoming_dir`` is watched by the sensor for new files to predict.
    """

    train_dir: str = os.path.join(DEFAULT_DATA_DIR, "train")
    test_dir: str = os.path.join(DEFAULT_DATA_DIR, "test")
    output_dir: str = os.path.join(DEFAULT_DATA_DIR, "outputs")
    data_dir: str = DEFAULT_DATA_DIR
    incoming_dir: str = os.path.join(DEFAULT_DATA_DIR, "incoming")
    mat_key: Optional[str] = "img"
    # ``folders``: sub-folders are categories (labels); ``none``: a flat folder or folders that are not categories
    labels: str = "folders"
    # a folder with more .mat files than this is split into shards (independent ingest runs); 0 = never
    shard_size: int = 2000
    # seconds a dropped file's size and mtime must stay unchanged before it is predicted (0: the sensor interval)
    incoming_stable_s: float = 0.0

    # the model generation this run writes into (its run id); see seis_assets/core/generations.py
    _staging_generation: Optional[str] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        self._staging_generation = run.run_id if run is not None else None

    @classmethod
    def from_env(cls, **overrides) -> "SeisPaths":
        data_dir = os.environ.get("SEIS_DATA_DIR", DEFAULT_DATA_DIR)
        train_dir = os.environ.get("SEIS_TRAIN_DIR", os.path.join(data_dir, "train"))
        values = dict(
            train_dir=train_dir,
            # the `test` folder beside the train folder: data/test for data/train; for a real survey pointed to by
            # SEIS_TRAIN_DIR, its own sibling (usually absent), never the demo's generated test set
            test_dir=os.environ.get("SEIS_TEST_DIR", os.path.join(os.path.dirname(_resolve(train_dir)), "test")),
            output_dir=os.environ.get("SEIS_OUTPUT_DIR", os.path.join(data_dir, "outputs")),
            data_dir=data_dir,
            incoming_dir=os.environ.get("SEIS_INCOMING_DIR", os.path.join(data_dir, "incoming")),
        )
        if os.environ.get("SEIS_INCOMING_STABLE_S"):
            values["incoming_stable_s"] = float(os.environ["SEIS_INCOMING_STABLE_S"])
        if os.environ.get("SEIS_LABELS"):
            values["labels"] = os.environ["SEIS_LABELS"]
        if os.environ.get("SEIS_SHARD_SIZE"):
            values["shard_size"] = int(os.environ["SEIS_SHARD_SIZE"])
        values.update(overrides)
        unresolved = {"mat_key", "labels"}
        return cls(**{k: _resolve(v) if isinstance(v, str) and k not in unresolved else v for k, v in values.items()})

    @pydantic.field_validator("labels")
    @classmethod
    def _known_labels(cls, value):
        if value not in ("folders", "none"):
            raise ValueError(f"labels must be 'folders' (sub-folders are categories) or 'none', got {value!r}")
        return value

    # -- derived locations (not settings) ----------------------------------------------------------
    @property
    def warehouse(self) -> UPath:
        return UPath(_resolve(self.data_dir)) / "warehouse"

    @property
    def models(self) -> UPath:
        return UPath(_resolve(self.data_dir)) / "models"

    @property
    def outputs(self) -> UPath:
        return UPath(_resolve(self.output_dir))

    @property
    def train(self) -> UPath:
        return UPath(_resolve(self.train_dir))

    @property
    def test(self) -> UPath:
        return UPath(_resolve(self.test_dir))

    @property
    def incoming(self) -> UPath:
        return UPath(_resolve(self.incoming_dir))

    def table(self, asset: str, partition: Optional[str] = None) -> UPath:
        """Where the Parquet IO manager keeps ``asset`` (and ``partition``): ``warehouse/<asset>/<partition>.parquet``."""
        return table_path(self.warehouse, asset, partition)

    @property
    def staging_generation(self) -> str:
        """Id of the model generation this run writes (the run id; outside a run, one fresh id per resource)."""
        if self._staging_generation is None:
            self._staging_generation = f"local-{uuid.uuid4().hex[:12]}"
        return self._staging_generation

    def model(self, name: str) -> UPath:
        """``name`` in this run's own model generation (copied from the serving one on first use).

        Writers and readers inside a re-clustering use it; nothing a prediction reads changes until the
        ``model_generation`` asset switches ``models/CURRENT`` (seis_assets/core/generations.py).
        """
        from seis_assets.core.generations import staged_file

        return staged_file(self.models, self.staging_generation, name)

    def output(self, name: str) -> UPath:
        # the folder exists for every writer (the seed copies moved to model_generation, which runs last)
        self.outputs.mkdir(parents=True, exist_ok=True)
        return self.outputs / name


#: The backbone ``FeatureSettings.from_env`` picks when ``SEIS_SEGY`` is set and ``SEIS_BACKBONE`` is not: models
#: fitted on patches map a survey of other processing far better with per-image instance normalisation (inline 362:
#: continuous layers -> ``other`` 0.108 -> 0.840 at the default stride 11, the three other regions >= 0.8; 7 of 10
#: shifted or mirrored window grids meet the goal), while on patches alone plain
#: ``auto`` scores higher (demo ARI 0.789 vs 0.724, anomaly AUC 0.966 vs 0.872): benchmarks/README.md, facies map.
SURVEY_MAPPING_BACKBONE = "auto+instnorm"


class FeatureSettings(dg.ConfigurableResource):
    """How ``resnet_features`` turns patches into vectors.

    backbone: ``auto`` (ResNet50 if its ImageNet weights resolve, else the packaged EfficientNet-Lite0, logged and
    recorded), ``resnet50``, ``efficientnet_lite0`` or ``texture`` (hand-crafted seismic attributes); a CNN may take
    ``+instnorm`` and then ``+texture`` (``seis_assets.core.backbones``). From the environment: ``SEIS_BACKBONE``,
    else :data:`SURVEY_MAPPING_BACKBONE` when ``SEIS_SEGY`` names surveys to map, else ``auto``.
    weights: torchvision weights name for ResNet50 (``IMAGENET1K_V1`` as the seed used, or ``IMAGENET1K_V2``).
    weights_path: a ResNet50 state-dict file to use instead of the torch cache / a download.
    input_size: ``224`` (the seed's choice) or ``native`` (the patch's own size, ~1/5 of the compute at 99x99).
    resize: how a patch reaches the square input, antialiased: ``stretch`` (each axis on its own), ``pad`` (aspect
    ratio and dips kept, zero-amplitude fill) or ``crop`` (aspect kept, centre cut); recorded in the features' identity.
    precision: ``auto`` (bf16 autocast where the CPU supports it), ``fp32`` or ``bf16``.
    device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    engine: inference runtime of the forward pass: ``auto`` (torch bf16 on CPUs with AMX/AVX512-BF16 and on CUDA,
    ONNX Runtime fp32 on other CPUs), ``torch``, ``onnxruntime`` or ``openvino`` (``seis_assets.core.engines``).
    engine_cache_dir: where exported ONNX models are cached (default ``<data_dir>/cache/engines``).
    """

    backbone: str = "auto"
    weights: str = "IMAGENET1K_V1"
    weights_path: Optional[str] = None
    input_size: str = "224"
    resize: str = "stretch"  # benchmarks/README.md "Clustering quality": chosen from measured ARI
    precision: str = "auto"
    # patches per forward pass; unset: the engine's measured default (16 for torch on a CPU, 64 for ONNX Runtime and
    # OpenVINO, 256 on a CUDA GPU: seis_assets/core/engines.py)
    batch_size: Optional[int] = None
    device: str = "auto"
    engine: str = "auto"
    engine_cache_dir: Optional[str] = None

    @classmethod
    def from_env(cls, **overrides) -> "FeatureSettings":
        values = {}
        if os.environ.get("SEIS_BACKBONE"):
            values["backbone"] = os.environ["SEIS_BACKBONE"]
        elif os.environ.get("SEIS_SEGY"):
            values["backbone"] = SURVEY_MAPPING_BACKBONE
        if os.environ.get("SEIS_WEIGHTS_PATH"):
            values["weights_path"] = _resolve(os.environ["SEIS_WEIGHTS_PATH"])
        if os.environ.get("SEIS_INPUT_SIZE"):
            values["input_size"] = os.environ["SEIS_INPUT_SIZE"]
        if os.environ.get("SEIS_ENGINE"):
            values["engine"] = os.environ["SEIS_ENGINE"]
        if os.environ.get("SEIS_RESIZE"):
            values["resize"] = os.environ["SEIS_RESIZE"]
        values.update(overrides)
        return cls(**values)

    def input_size_value(self) -> str:
        """The input label features are made and recorded with: ``native`` or ``<side>:<resize>`` (e.g. ``224:pad``)."""
        from seis_assets.core.preprocess import input_spec

        return input_spec(self.input_size, self.resize)


class AnalysisSettings(dg.ConfigurableResource):
    """Embedding, clustering and quality gates.

    k: number of KMeans clusters: a number, ``auto`` (chosen from the k sweep, see
    :func:`seis_assets.core.cluster.choose_k`) or ``default`` (= ``0``): the number of categories on labelled
    data, ``auto`` on unlabelled data.
    stability_runs: KMeans runs (different seeds, 80 % subsamples) whose pairwise ARI is the stability of a k.
    k_sweep_max: the k sweep runs 2..k_sweep_max.
    pca_components: optional PCA before UMAP (e.g. 100; faster on large sets), 0 = none.
    umap_parallel: UMAP on all cores without a seed (faster, not reproducible; recorded in the metadata).
    umap_large_n: above this many training patches UMAP goes PCA-first (100) and parallel by itself (recorded in
    the metadata); 0 keeps the seeded single-threaded path at every size.
    ari_floor: the ``ari_above_floor`` check fails below it (a regression guard).
    max_quarantine_share: the quarantine check fails when more than this share of files is rejected.
    anomaly_neighbors: k of the k-nearest-neighbour anomaly score.
    """

    umap_n_neighbors: int = 15
    umap_min_dist: float = 0.1
    pca_components: int = 0
    umap_parallel: bool = False
    umap_large_n: int = 5000
    seed: int = 42
    k: str = "default"
    stability_runs: int = 5
    k_sweep_max: int = 10
    ari_floor: float = 0.3
    max_quarantine_share: float = 0.05
    anomaly_neighbors: int = 10
    n_top_anomalies: int = 24

    @pydantic.field_validator("k", mode="before")
    @classmethod
    def _k_as_text(cls, value):
        # k=4 from Python (and the old integer setting, 0 = default) stays valid
        return str(value) if isinstance(value, int) else value

    @classmethod
    def from_env(cls, **overrides) -> "AnalysisSettings":
        values = {"k": os.environ["SEIS_K"]} if os.environ.get("SEIS_K") else {}
        values.update(overrides)
        return cls(**values)


class DaskCluster(dg.ConfigurableResource):
    """Where ``resnet_features`` reads and embeds the files: here (default), or on a Dask cluster.

    scheduler_address: unset (default) = in the run's own process, nothing else starts. ``tcp://host:8786``
    (env ``SEIS_DASK_SCHEDULER``) = shards of ``shard_size`` files go to that cluster's workers (a
    ``dask-scheduler`` you started, dask-kubernetes, a cloud provider's Dask); the table is still written by the
    run. Workers need this package (same version) and read access to the files: a bucket (``s3://``) or a shared
    folder mounted at the same path. Why a client and not dagster-dask's executor: ``seis_assets.core.distributed``.
    shard_size: files per Dask task.
    """

    scheduler_address: Optional[str] = None
    shard_size: int = 256

    @classmethod
    def from_env(cls, **overrides) -> "DaskCluster":
        values = {}
        if os.environ.get("SEIS_DASK_SCHEDULER"):
            values["scheduler_address"] = os.environ["SEIS_DASK_SCHEDULER"]
        values.update(overrides)
        return cls(**values)

    def shard_runner(self, spec, *, key: Optional[str], batch_size: int):
        """A ``shard_runner`` for ``extract_features`` on this cluster, or None when no scheduler is set. The
        client connects when extraction starts and closes when it ends; the cluster keeps running."""
        if not self.scheduler_address:
            return None
        try:
            from distributed import Client
        except ImportError as e:
            raise ImportError(
                f"scheduler_address={self.scheduler_address!r} needs dask.distributed: pip install 'seis_assets[dask]'"
            ) from e
        from seis_assets.core.distributed import dask_shard_runner

        def run(todo, identity):
            with Client(self.scheduler_address, set_as_default=False, timeout="30s") as client:
                runner = dask_shard_runner(client, spec, key=key, batch_size=batch_size, shard_size=self.shard_size)
                yield from runner(todo, identity)

        return run
class SegySettings(dg.ConfigurableResource):
    """SEG-Y surveys to map, and how windows are cut from them (``seis_assets.core.segy``).

    segy: SEG-Y files and/or folders, separated by ``:`` (env ``SEIS_SEGY``); each file is one ``survey`` partition.
    iline_byte, xline_byte: trace-header byte positions of the inline and crossline numbers (SEG-Y rev 1: 189, 193).
    window_traces, window_samples, stride: window size (traces x samples) and step; windows cover every sample.
    scaling: ``per_window`` (min-max, as the patches; the default) or ``survey`` (robust survey-wide: bright stays bright).
    directions: ``inline`` or ``inline,xline`` (windows along crosslines too, 3-D cubes only).
    map_xlines: the facies map PDF gets one page per crossline too (3-D cubes).
    models: ``patches`` (classify with the models the recluster job fitted on the patches: clusters and categories)
    or ``survey`` (fit UMAP + KMeans on this survey's windows alone: clusters, no categories).
    k: clusters for ``models=survey`` (0: the k of the fitted patch models, else 4).
    """

    segy: str = ""
    iline_byte: int = 189
    xline_byte: int = 193
    window_traces: int = 99
    window_samples: int = 99
    stride: int = 11  # segy.DEFAULT_STRIDE (why 11: there)
    scaling: str = "per_window"
    directions: str = "inline"
    map_xlines: bool = False
    models: str = "patches"
    k: int = 0

    @classmethod
    def from_env(cls, **overrides) -> "SegySettings":
        values = {}
        if os.environ.get("SEIS_SEGY"):
            values["segy"] = ":".join(_resolve(p) for p in os.environ["SEIS_SEGY"].split(":") if p.strip())
        values.update(overrides)
        return cls(**values)

    def direction_list(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.directions.split(",") if d.strip())
