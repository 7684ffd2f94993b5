"""Settings of the pipeline as Dagster resources: one home per setting.

Small resources, each with the defaults that run the demo; every field carries a description the launchpad shows:

- :class:`SeisPaths`: where patches come from and where results go.
- :class:`FeatureSettings`: how features are made (backbone, weights, input size, precision, engine).
- :class:`AnalysisSettings`: embedding, clustering, quality gates.
- :class:`DaskCluster`: where features are made (here, or on a Dask cluster).
- :class:`SegySettings`: SEG-Y surveys to map and how they are cut into windows.

When the definitions load, the ``SEIS_`` environment variables override the defaults of the fields they set
(:meth:`EnvResource.from_env`; ``seis_assets/environment.py`` lists which variable sets which ``resource.field``);
in the Dagster UI every field can also be changed in the launchpad. Relative paths are resolved against the working
directory (the repository root under ``make``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from typing import ClassVar, Optional, TypeVar

import dagster as dg
import pydantic
from pydantic import Field, PrivateAttr
from upath import UPath

from seis_assets.core.backbones import Backbone, load_backbone
from seis_assets.core.distributed import dask_client, dask_line_runner, dask_shard_runner, local_cluster_workers
from seis_assets.core.generations import staged_file
from seis_assets.core.preprocess import input_spec
from seis_assets.core.section_grid import (
    DEFAULT_PATCH_SAMPLE_INTERVAL_MS,
    DEFAULT_PATCH_TRACE_SPACING_M,
    at_patch_scale,
)
from seis_assets.core.mdio_survey import open_any_survey
from seis_assets.core.segy import DEFAULT_ILINE_BYTE, DEFAULT_XLINE_BYTE
from seis_assets.core.facies import DEFAULT_PAGE_LINES, DEFAULT_TIE_LINES
from seis_assets.core.segy_windows import (
    DEFAULT_STRIDE, DEFAULT_WINDOW_SAMPLES, DEFAULT_WINDOW_TRACES, SCALINGS, survey_scale,
)
from seis_assets.core.survey_models import MODEL_SOURCES
from seis_assets.core.window_features import WindowSpec
from seis_assets.core.sources import previous_keys
from seis_assets.core.still_writing import MAX_CHANGING_S, RECHECK_S
from seis_assets.environment import env, variables_of
from seis_assets.io_managers import table_path

DEFAULT_DATA_DIR = "data"


def _resolve(path: str) -> str:
    """Absolute local path, or the URL untouched (s3://..., memory://...)."""
    if "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def _resolve_each(paths: str) -> str:
    """``:``-separated paths, each resolved; empty entries dropped."""
    return ":".join(_resolve(p) for p in paths.split(":") if p.strip())


#: How a variable's text becomes a field value, by its kind (``environment.KINDS``): numbers are parsed from the
#: environment, paths are resolved whatever their source (environment, derived default or override).
_PARSE = {"int": int, "float": float, "floats": lambda text: [float(t) for t in text.split(",") if t.strip()]}
_RESOLVE = {"path": _resolve, "paths": _resolve_each}


_R = TypeVar("_R", bound="EnvResource")


class EnvResource(dg.ConfigurableResource):
    """A resource whose field defaults the ``SEIS_`` variables override (``seis_assets/environment.py``)."""

    #: the resource's key in the definitions, as the variables table names it (``paths`` in ``paths.train_dir``)
    resource_key: ClassVar[str] = ""

    @classmethod
    def derived_defaults(cls, values: dict) -> dict:
        """``values`` (from the environment) completed with the defaults that follow from them; none here."""
        return values

    @classmethod
    def from_env(cls: type[_R], **overrides) -> _R:
        """The resource with the environment's values, the defaults they imply, then ``overrides``."""
        variables = variables_of(cls.resource_key)
        values = {}
        for field, variable in variables.items():
            text = env(variable.name)
            if text is not None:
                values[field] = _PARSE.get(variable.kind, str)(text)
        values = {**cls.derived_defaults(values), **overrides}
        for field, value in values.items():
            kind = variables[field].kind if field in variables else "text"
            if isinstance(value, str) and kind in _RESOLVE:
                values[field] = _RESOLVE[kind](value)
        return cls(**values)


class SeisPaths(EnvResource):
    """Folders of the pipeline: where patches come from, where tables, models and outputs go."""

    resource_key: ClassVar[str] = "paths"

    train_dir: str = Field(
        os.path.join(DEFAULT_DATA_DIR, "train"),
        description="The patches to cluster: one sub-folder per category (LANDMASS layout), or unlabelled folders "
        "(labels=none). A folder or a bucket URL.",
    )
    test_dir: str = Field(
        os.path.join(DEFAULT_DATA_DIR, "test"),
        description="Held-out patches, laid out as train_dir. Optional (real LANDMASS has no split): when it does not "
        "exist, test predictions are empty. From the environment: the test folder beside train_dir.",
    )
    output_dir: str = Field(
        os.path.join(DEFAULT_DATA_DIR, "outputs"),
        description="Receives the seed script's artifacts (joblib, npy, csv, pth), the plots and the facies maps.",
    )
    data_dir: str = Field(
        DEFAULT_DATA_DIR,
        description="Storage root: warehouse/ (Parquet tables), models/ (model generations of fitted reducers, "
        "KMeans, mapping), cache/engines/ (exported ONNX models).",
    )
    incoming_dir: str = Field(
        os.path.join(DEFAULT_DATA_DIR, "incoming"),
        description="Watched by incoming_files_sensor: .mat files dropped here are predicted, then moved to "
        "processed/ or rejected/.",
    )
    mat_key: Optional[str] = Field(
        "img",
        description="Variable holding the patch in each .mat file; when a file lacks it (or it is unset), the file's "
        "only image-like numeric array is read (and a missing key is logged).",
    )
    labels: str = Field(
        "folders",
        description="folders: the sub-folders of train_dir are categories (labels); none: a flat folder, or folders "
        "that are not categories (unlabelled: clusters without names, k chosen by the k sweep).",
    )
    shard_size: int = Field(
        2000,
        description="A folder with more .mat files than this is split into shards, each its own partition and ingest "
        "run; 0 = never split.",
    )
    incoming_stable_s: float = Field(
        0.0,
        description="Seconds a dropped file's size and mtime must stay unchanged before it is predicted (0: the "
        "sensor interval).",
    )
    incoming_recheck_s: float = Field(
        RECHECK_S,
        description="Seconds a prediction run watches a claimed file that does not read as a MAT-file before "
        "rejecting it; one that changed since its claim, or changes in this time, is still being written and goes "
        "back to incoming/ (a rejected one that changes later goes back too).",
    )
    incoming_max_changing_s: float = Field(
        MAX_CHANGING_S,
        description="Seconds after the sensor first saw a dropped file by which it must have stopped changing; one "
        "still being written then is rejected as never finishing.",
    )

    # the model generation this run writes into (its run id); see seis_assets/core/generations.py
    _staging_generation: Optional[str] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        self._staging_generation = run.run_id if run is not None else None

    @classmethod
    def derived_defaults(cls, values: dict) -> dict:
        """Folders under ``data_dir`` unless set; ``test_dir`` is the ``test`` folder beside ``train_dir``."""
        data_dir = values.get("data_dir", DEFAULT_DATA_DIR)
        train_dir = values.get("train_dir", os.path.join(data_dir, "train"))
        return {
            "data_dir": data_dir,
            "train_dir": train_dir,
            # data/test for data/train; for a real survey pointed to by SEIS_TRAIN_DIR, its own sibling (usually
            # absent), never the demo's generated test set
            "test_dir": os.path.join(os.path.dirname(_resolve(train_dir)), "test"),
            "output_dir": os.path.join(data_dir, "outputs"),
            "incoming_dir": os.path.join(data_dir, "incoming"),
            **values,
        }

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
    def window_cache(self) -> UPath:
        """Each survey line's windows and features (``core/window_features.WindowCache``)."""
        return UPath(_resolve(self.data_dir)) / "cache" / "windows"

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

    def previous_table(self, asset: str, partition: str) -> Optional[UPath]:
        """The table a partition's cache is read from: its own earlier one, else that of the shard it was split from
        or merged from (:func:`seis_assets.core.sources.previous_keys`); None when there is none."""
        return next((p for p in (self.table(asset, k) for k in previous_keys(partition)) if p.exists()), None)

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
        return staged_file(self.models, self.staging_generation, name)

    def output(self, name: str) -> UPath:
        # the folder exists for every writer (the seed copies moved to model_generation, which runs last)
        self.outputs.mkdir(parents=True, exist_ok=True)
        return self.outputs / name


#: The backbone ``FeatureSettings.from_env`` picks when ``SEIS_SEGY`` is set and ``SEIS_BACKBONE`` is not: models
#: fitted on patches map a survey of other processing far better with per-image instance normalisation, while on
#: patches alone plain ``auto`` scores higher (benchmarks/README.md, "Facies map of F3 inline 362", third round).
SURVEY_MAPPING_BACKBONE = "auto+instnorm"


class FeatureSettings(EnvResource):
    """How ``resnet_features`` (and ``survey_windows``) turn patches into vectors."""

    resource_key: ClassVar[str] = "feature_settings"

    backbone: str = Field(
        "auto",
        description="auto (ResNet50 if its ImageNet weights resolve, else the packaged EfficientNet-Lite0, logged and "
        "recorded), resnet50, efficientnet_lite0 or texture (hand-crafted seismic attributes); a CNN may take "
        "+instnorm and then +texture (seis_assets.core.backbones). From the environment: SEIS_BACKBONE, else "
        f"{SURVEY_MAPPING_BACKBONE} when SEIS_SEGY names surveys to map, else auto.",
    )
    weights: str = Field(
        "IMAGENET1K_V1",
        description="torchvision weights name for ResNet50 (IMAGENET1K_V1 as the seed used, or IMAGENET1K_V2).",
    )
    weights_path: Optional[str] = Field(
        None, description="A ResNet50 state-dict file to use instead of the torch cache (nothing is downloaded)."
    )
    input_size: str = Field(
        "224", description="224 (the seed's choice) or native (the patch's own size: nothing is resized)."
    )
    resize: str = Field(
        "stretch",
        description="How a patch reaches the square input, antialiased: stretch (each axis on its own), pad (aspect "
        "ratio and dips kept, zero-amplitude fill) or crop (aspect kept, centre cut); recorded in the features' "
        "identity. Chosen from measured ARI: benchmarks/README.md, Clustering quality.",
    )
    precision: str = Field("auto", description="auto (bf16 where the CPU supports it and the backbone's gate allows: "
                                               "docs/engines.md), fp32 or bf16.")
    batch_size: Optional[int] = Field(
        None,
        description="Patches per forward pass; unset: the engine's default (engines.batch_size_for, chosen in "
        "benchmarks/README.md, Feature engines).",
    )
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda.")
    engine: str = Field(
        "auto",
        description="Inference runtime of the forward pass: auto (torch bf16 on CPUs with AMX/AVX512-BF16 and on "
        "CUDA, ONNX Runtime fp32 on other CPUs), torch, onnxruntime or openvino (seis_assets.core.engines).",
    )
    engine_cache_dir: Optional[str] = Field(
        None, description="Where exported ONNX models are cached (unset: <data_dir>/cache/engines)."
    )

    @classmethod
    def derived_defaults(cls, values: dict) -> dict:
        """Surveys to map (``SEIS_SEGY``) and no explicit backbone: :data:`SURVEY_MAPPING_BACKBONE`."""
        if "backbone" not in values and env("SEIS_SEGY"):
            return {**values, "backbone": SURVEY_MAPPING_BACKBONE}
        return values

    def load_backbone(self, logger=None) -> Backbone:
        """The configured backbone (``auto`` resolved, a fallback logged and recorded in its identity)."""
        return load_backbone(
            self.backbone, weights=self.weights, weights_path=self.weights_path, device=self.device, logger=logger
        )

    def input_size_value(self) -> str:
        """The input label features are made and recorded with: ``native`` or ``<side>:<resize>`` (e.g. ``224:pad``)."""
        return input_spec(self.input_size, self.resize)


class AnalysisSettings(EnvResource):
    """Embedding, clustering and quality gates."""

    resource_key: ClassVar[str] = "analysis"

    umap_n_neighbors: int = Field(15, description="UMAP n_neighbors (both embeddings).")
    umap_min_dist: float = Field(0.1, description="UMAP min_dist (both embeddings).")
    pca_components: int = Field(
        0, description="Optional PCA before UMAP (e.g. 100; faster on large sets), 0 = none."
    )
    umap_parallel: bool = Field(
        False, description="UMAP on all cores without a seed (faster, not reproducible; recorded in the metadata)."
    )
    umap_large_n: int = Field(
        5000,
        description="Above this many training patches UMAP goes PCA-first (100) and parallel by itself (recorded in "
        "the metadata); 0 keeps the seeded single-threaded path at every size.",
    )
    seed: int = Field(42, description="Random state of UMAP, KMeans, the k sweep, the anomaly model and the plots.")
    k: str = Field(
        "default",
        description="Number of KMeans clusters: a number, auto (chosen from the k sweep, "
        "seis_assets.core.cluster.choose_k) or default (= 0): the number of categories on labelled data, auto on "
        "unlabelled data.",
    )
    stability_runs: int = Field(
        5, description="KMeans runs (different seeds, 80 % subsamples) whose pairwise ARI is the stability of a k."
    )
    k_sweep_max: int = Field(10, description="The k sweep runs k = 2..k_sweep_max.")
    ari_floor: float = Field(0.3, description="The ari_above_floor check fails below it (a regression guard).")
    max_quarantine_share: float = Field(
        0.05, description="The quarantine check fails when more than this share of files is rejected."
    )
    anomaly_neighbors: int = Field(10, description="k of the k-nearest-neighbour anomaly score.")
    n_top_anomalies: int = Field(24, description="Patches shown in the top_anomalies.png gallery.")

    @pydantic.field_validator("k", mode="before")
    @classmethod
    def _k_as_text(cls, value):
        # k=4 from Python (and the old integer setting, 0 = default) stays valid
        return str(value) if isinstance(value, int) else value


class DaskCluster(EnvResource):
    """Where ``resnet_features`` reads and embeds the files: here (default), or on a Dask cluster.

    Why a client and not dagster-dask's executor: ``seis_assets.core.distributed``.
    """

    resource_key: ClassVar[str] = "dask"

    scheduler_address: Optional[str] = Field(
        None,
        description="Unset: in the run's own process, nothing else starts. tcp://host:8786: shards of shard_size "
        "files (and a survey's lines) go to that cluster's workers (a dask-scheduler you started, dask-kubernetes, "
        "a cloud provider's Dask); the table is still written by the run. Workers need this package (same version) "
        "and read access to the files: a bucket (s3://) or a shared folder mounted at the same path. local or "
        "local:N: the run starts a Dask LocalCluster of N (default: one per core) one-thread worker processes on "
        "127.0.0.1 for its duration and stops it after.",
    )
    shard_size: int = Field(256, description="Files per Dask task.")

    def shard_runner(self, spec, *, key: Optional[str], batch_size: int):
        """A ``shard_runner`` for ``extract_features`` on this cluster, or None when no scheduler is set. The
        client connects when extraction starts and closes when it ends; the cluster keeps running."""
        if not self.scheduler_address:
            return None
        self._check_dask()

        def run(todo, identity):
            with dask_client(self.scheduler_address) as client:
                runner = dask_shard_runner(client, spec, key=key, batch_size=batch_size, shard_size=self.shard_size)
                yield from runner(todo, identity)

        return run

    def line_runner(self, spec, identity: dict, weights_path: Optional[str], device: str,
                    batch_size: Optional[int] = None):
        """A line runner for ``write_survey_windows`` on this cluster (lines travel with their samples: workers
        need no access to the survey file), or None when no scheduler is set."""
        if not self.scheduler_address:
            return None
        self._check_dask()

        def run(items):
            with dask_client(self.scheduler_address) as client:
                yield from dask_line_runner(client, spec, identity, weights_path, device,
                                            batch_size=batch_size)(items)

        return run

    def _check_dask(self) -> None:
        """A clear error for a scheduler address without the dask extra, or for ``local:0``."""
        if importlib.util.find_spec("distributed") is None:  # dask.distributed is optional (the dask extra)
            raise ImportError(
                f"scheduler_address={self.scheduler_address!r} needs dask.distributed: pip install 'seis_assets[dask]'"
            )
        local_cluster_workers(self.scheduler_address)


class SegySettings(EnvResource):
    """SEG-Y surveys to map, and how windows are cut from them (``seis_assets.core.segy``)."""

    resource_key: ClassVar[str] = "segy_settings"

    segy: str = Field(
        "", description="SEG-Y files and/or folders, separated by ':'; each file is one survey partition."
    )
    iline_byte: int = Field(
        DEFAULT_ILINE_BYTE, description="Trace-header byte position of the inline number (SEG-Y rev 1: 189)."
    )
    xline_byte: int = Field(
        DEFAULT_XLINE_BYTE, description="Trace-header byte position of the crossline number (SEG-Y rev 1: 193)."
    )
    window_traces: int = Field(DEFAULT_WINDOW_TRACES, description="Window width in traces.")
    window_samples: int = Field(DEFAULT_WINDOW_SAMPLES, description="Window height in samples.")
    stride: int = Field(
        DEFAULT_STRIDE,
        description="Step between windows, in traces and samples; windows cover every sample (why this default: "
        "seis_assets.core.segy_windows.DEFAULT_STRIDE).",
    )
    scaling: str = Field(
        "per_window",
        description="per_window (min-max, as the patches) or survey (robust survey-wide: bright stays bright).",
    )
    directions: str = Field(
        "inline", description="inline, or inline,xline (windows along crosslines too, 3-D cubes only). A file that "
        "holds one crossline is cut along it whatever this says."
    )
    line_step: int = Field(
        1,
        description="3-D cubes: cut windows on every n-th line (and the last) only; each line between takes the votes "
        "of its nearest cut line's windows, as if the windows were n lines thick (1: every line).",
    )
    map_xlines: bool = Field(False, description="The facies map PDF gets one page per crossline too (3-D cubes).")
    models: str = Field(
        "patches",
        description="patches: classify with the models the recluster job fitted on the patches (clusters and "
        "categories); survey: fit UMAP + KMeans on this survey's windows alone (clusters, no categories).",
    )
    k: int = Field(
        0, description="Clusters for models=survey (0: 4, or 16 with units); models=patches keeps the fitted models' k."
    )
    units: int = Field(
        0,
        description="models=survey only: 0 maps the window clusters; n > 0 maps n stratigraphic units per line "
        "(layers followed along the reflectors' dip, cut where their character and the clusters change), numbered "
        "from the top.",
    )
    tie_lines: int = Field(
        DEFAULT_TIE_LINES,
        description="3-D cubes with units: each inline is cut with the mean character profile of itself and this many "
        "inlines on each side, so a unit's boundaries do not step from one inline to the next (0: each line on its "
        "own).",
    )
    sample_interval_ms: float = Field(
        0.0,
        description="The surveys' sample interval in ms; 0: from the headers (the binary header's, else the trace "
        "headers'). Set it only for files whose headers lack it or are wrong.",
    )
    patch_sample_interval_ms: float = Field(
        DEFAULT_PATCH_SAMPLE_INTERVAL_MS,
        description="Sample interval of the patches the models were fitted on (F3 and LANDMASS: 4 ms); a survey at "
        "another rate is resampled to it before windows are cut, so a window covers the time a patch covers.",
    )
    patch_trace_spacing_m: float = Field(
        DEFAULT_PATCH_TRACE_SPACING_M,
        description="Trace spacing of the patches (F3 and LANDMASS: 25 m); a survey whose header coordinates say "
        "otherwise is logged (traces are not resampled along the line).",
    )

    map_times_ms: list[float] = Field(
        default_factory=list,
        description="3-D cubes: times (ms) of the map-view time slices written as time_slice_<t>ms.png (nearest "
        "sample; a time outside the cube is an error before anything is painted); empty: none.",
    )
    summary_bin_ms: float = Field(
        100.0, description="3-D cubes: time bin (ms) of facies_volume_summary.csv (each class's share per inline and bin)."
    )
    page_lines: int = Field(
        DEFAULT_PAGE_LINES,
        description="At most this many pages per direction in facies_map.pdf, evenly spaced lines with the first and "
        "last (0: every line); the labels SEG-Y, the summary and the shares always cover every line.",
    )

    def window_spec(self, survey) -> WindowSpec:
        """How this survey's windows are cut and scaled (the survey-wide scale measured here for ``scaling=survey``)."""
        if self.scaling not in SCALINGS:
            raise ValueError(f"segy_settings.scaling must be one of {SCALINGS}, got {self.scaling!r}")
        scale = survey_scale(survey) if self.scaling == "survey" else None
        return WindowSpec(self.window_traces, self.window_samples, self.stride, self.scaling, scale)

    def check_map_settings(self) -> None:
        """Raise ValueError naming the setting when models / units / page_lines / summary_bin_ms cannot go together."""
        if self.models not in MODEL_SOURCES:
            raise ValueError(f"segy_settings.models must be one of {MODEL_SOURCES}, got {self.models!r}")
        if self.units < 0:
            raise ValueError(f"segy_settings.units must be 0 (clusters) or a number of units, got {self.units}")
        if self.units and self.models != "survey":
            raise ValueError(f"segy_settings.units={self.units} needs models=survey (units are cut from the "
                             f"survey's own clusters), got models={self.models!r}")
        self.check_line_step()
        if self.tie_lines < 0:
            raise ValueError(f"segy_settings.tie_lines must be >= 0 (0: each line on its own), got {self.tie_lines}")
        if self.page_lines < 0 or not self.summary_bin_ms > 0:
            raise ValueError(f"segy_settings.page_lines must be >= 0 and summary_bin_ms > 0, got {self.page_lines} "
                             f"and {self.summary_bin_ms}")

    def check_line_step(self) -> None:
        """Raise ValueError naming the setting when ``line_step`` is below 1."""
        if self.line_step < 1:
            raise ValueError(f"segy_settings.line_step must be >= 1 (1: every line), got {self.line_step}")

    def direction_list(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.directions.split(",") if d.strip())

    @contextlib.contextmanager
    def survey_at_patch_scale(self, path: str, logger=None):
        """The SEG-Y file opened with these byte positions and interval, at the patches' sample interval
        (:func:`seis_assets.core.section_grid.at_patch_scale`)."""
        with open_any_survey(path, self.iline_byte, self.xline_byte, self.sample_interval_ms) as survey:
            yield at_patch_scale(survey, self.patch_sample_interval_ms, self.patch_trace_spacing_m, logger)
