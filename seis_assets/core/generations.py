"""Model generations: every re-clustering writes its models into a new folder and switches one pointer at the end.

Layout under the models directory::

    models/generations/<generation id>/   umap_reducer.joblib, kmeans_model.joblib, anomaly_scorer.joblib, ...
    models/CURRENT                         the id of the generation that serves predictions (one line)

A run that fits models writes them into its own *staging* generation (its id is the run id). A file the run reads
before it rewrites it (e.g. ``metrics`` reading ``backbone.json`` in a run that did not refit ``umap_50d``) is first
copied from the serving generation, so a partial re-materialization stays consistent with what it did not refit.
:func:`promote` fills the files the run did not touch from the serving generation, checks that every file a
prediction needs is there and loads, and then replaces ``CURRENT`` in one atomic step. Until then predictions keep
reading the previous generation, whole; a failed re-clustering never switches.

No Dagster imports here.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from typing import Iterable

from upath import UPath

from seis_assets.core.storage import PathLike, atomic_path, atomic_write_bytes, is_local, path_str, to_upath

GENERATIONS_DIR = "generations"
CURRENT_FILE = "CURRENT"
#: What a prediction loads; a generation without one of these is never switched to.
REQUIRED_FILES = ("backbone.json", "umap_reducer.joblib", "kmeans_model.joblib", "anomaly_scorer.joblib",
                  "cluster_mapping.parquet")
#: Generation folders kept besides the serving and the previous one (the newest by modification time).
KEEP_GENERATIONS = 3
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")

log = logging.getLogger(__name__)


class NoServingGenerationError(FileNotFoundError):
    """No generation has been switched to yet (no re-clustering finished)."""


@dataclasses.dataclass(frozen=True)
class Generation:
    id: str
    path: UPath

    def file(self, name: str) -> UPath:
        return self.path / name


def _check_id(generation_id: str) -> str:
    if not _ID.match(generation_id) or generation_id in (".", ".."):
        raise ValueError(f"invalid model generation id {generation_id!r}")
    return generation_id


def generation(models_dir: PathLike, generation_id: str) -> Generation:
    """The folder of one generation (it may not exist yet)."""
    return Generation(_check_id(generation_id), to_upath(models_dir) / GENERATIONS_DIR / generation_id)


def serving_generation(models_dir: PathLike) -> Generation | None:
    """The generation ``CURRENT`` points to, or None when no re-clustering has finished yet."""
    pointer = to_upath(models_dir) / CURRENT_FILE
    if not pointer.exists():
        return None
    gen = generation(models_dir, pointer.read_text().strip())
    if not gen.path.exists():
        raise FileNotFoundError(f"{path_str(pointer)} names generation {gen.id}, but {path_str(gen.path)} is missing")
    return gen


def require_serving_generation(models_dir: PathLike) -> Generation:
    gen = serving_generation(models_dir)
    if gen is None:
        raise NoServingGenerationError(
            f"no model generation in {path_str(models_dir)} serves predictions yet "
            f"({CURRENT_FILE} is missing): materialize recluster_job first"
        )
    return gen


def copy_file(src: UPath, dst: UPath) -> None:
    """Copy one file atomically (temporary name, then rename)."""
    if is_local(src) and is_local(dst):
        with atomic_path(dst) as tmp:
            shutil.copyfile(path_str(src), str(tmp))
    else:
        atomic_write_bytes(dst, src.read_bytes())


def staged_file(models_dir: PathLike, staging_id: str, name: str) -> UPath:
    """Path of ``name`` in the staging generation ``staging_id``; copied from the serving generation on first use."""
    staging = generation(models_dir, staging_id)
    target = staging.file(name)
    if not target.exists():
        serving = serving_generation(models_dir)
        if serving is not None and serving.id != staging.id and serving.file(name).exists():
            copy_file(serving.file(name), target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
    return target


def promote(models_dir: PathLike, staging_id: str, required: Iterable[str] = REQUIRED_FILES,
            validate=None) -> tuple[Generation, Generation | None]:
    """Switch predictions to the staging generation, in one atomic step.

    Files the staging generation lacks are copied from the serving one first (a partial re-clustering keeps the
    models it did not refit). ``validate(generation)`` may raise to refuse the switch (e.g. load every model).

    Returns
    -------
    (new serving generation, previous serving generation or None)
    """
    staging = generation(models_dir, staging_id)
    previous = serving_generation(models_dir)
    if previous is not None and previous.id != staging.id and previous.path.exists():
        for src in previous.path.iterdir():
            if src.is_file() and not src.name.startswith(".") and not staging.file(src.name).exists():
                copy_file(src, staging.file(src.name))
    missing = [name for name in required if not staging.file(name).exists()]
    if missing:
        raise FileNotFoundError(
            f"model generation {staging.id} lacks {', '.join(missing)} in {path_str(staging.path)}: "
            "not switching; predictions keep using "
            + (f"generation {previous.id}" if previous else "no generation (none has been completed)")
        )
    if validate is not None:
        validate(staging)
    atomic_write_bytes(to_upath(models_dir) / CURRENT_FILE, (staging.id + "\n").encode())
    log.info("model generation %s now serves predictions (was %s)", staging.id, previous.id if previous else None)
    prune(models_dir, keep={staging.id} | ({previous.id} if previous else set()))
    return staging, previous


def prune(models_dir: PathLike, keep: set[str], n_newest: int = KEEP_GENERATIONS) -> list[str]:
    """Delete generation folders (local only) except ``keep`` and the ``n_newest`` most recently modified ones.

    The newest are kept because one of them may be a re-clustering still writing. Returns the removed ids.
    """
    root = to_upath(models_dir) / GENERATIONS_DIR
    if not is_local(root) or not root.exists():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for folder in folders[n_newest:]:
        if folder.name not in keep:
            shutil.rmtree(path_str(folder), ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info("removed %d old model generation(s): %s", len(removed), removed)
    return removed
