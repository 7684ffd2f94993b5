"""The pipeline's tables as arrays: combine per-category feature tables, carry embeddings, read known anomalies.

Feature tables (one per category) hold one row per patch with ``path, category, split, sha256, height, width,
backbone, weights, input_size, precision, features``. Embedding tables keep the first six columns and an
``embedding`` list column.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import pandas as pd
from upath import UPath

from seis_assets.core.attributes import ATTRIBUTE_DIM
from seis_assets.core.backbones import FUSION_SUFFIX

META_COLUMNS = ["path", "category", "split", "sha256", "height", "width"]
IDENTITY_COLUMNS = ["backbone", "weights", "input_size", "precision"]
ANOMALY_MANIFEST = "anomalies.csv"


@dataclasses.dataclass
class FeatureSet:
    """All categories' features in one place.

    meta : DataFrame (n_samples rows) with META_COLUMNS, sorted by split, category, path
    X : ndarray of shape (n_samples, dim), float32, rows aligned with ``meta``
    identity : dict with backbone, weights, input_size, precision (one value each)
    """

    meta: pd.DataFrame
    X: np.ndarray
    identity: dict

    @property
    def blocks(self) -> list | None:
        """CNN + texture features (a ``<cnn>+texture`` backbone): the CNN block and the attribute block, as
        ``reduce.BlockScaler`` takes them; None for any other backbone."""
        if not str(self.identity.get("backbone", "")).endswith(FUSION_SUFFIX):
            return None
        dim = int(self.X.shape[1])
        return [(0, dim - ATTRIBUTE_DIM, "rms"), (dim - ATTRIBUTE_DIM, dim, "zscore")]

    @property
    def standardize(self) -> bool | list:
        """How columns are scaled before UMAP (``reduce.fit_reducer``'s ``standardize``): hand-crafted attributes
        (``texture``) mix units (degrees, ratios, amplitudes) and are z-scored (True); CNN features share one scale
        and are left as they are (False); CNN + texture features are two blocks put on one footing (:attr:`blocks`)."""
        return self.blocks or self.identity.get("backbone") == "texture"

    def split(self, name: str) -> tuple[pd.DataFrame, np.ndarray]:
        mask = (self.meta["split"] == name).to_numpy()
        return self.meta[mask].reset_index(drop=True), self.X[mask]


def stack_vectors(column: pd.Series) -> np.ndarray:
    """A column of equal-length vectors (list / ndarray per row) as an (n, d) float32 matrix."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in column.to_numpy()])


def identities_by_category(tables: Mapping[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Which categories hold features of which identity.

    Returns ``{"<backbone> / <weights> / <input_size> / <precision>": [categories]}``; one key means the tables can
    be combined. Empty tables are ignored.
    """
    seen: dict[str, list[str]] = {}
    for category, table in sorted(tables.items()):
        for key in table[IDENTITY_COLUMNS].drop_duplicates().itertuples(index=False):
            seen.setdefault(" / ".join(map(str, key)), []).append(category)
    return seen


def combine_feature_tables(tables: Mapping[str, pd.DataFrame]) -> FeatureSet:
    """Concatenate per-category feature tables, refusing to mix backbones.

    Parameters
    ----------
    tables : mapping category -> feature DataFrame

    Returns
    -------
    FeatureSet

    Raises
    ------
    ValueError
        When no table has rows, or when the tables were made by different backbones / weights / input sizes /
        precisions (the message names the categories of each identity and what to re-materialize).
    """
    frames = [df for df in tables.values() if len(df)]
    if not frames:
        raise ValueError("no feature rows in any category: materialize raw_mat_index and resnet_features first")
    identities = identities_by_category(tables)
    if len(identities) > 1:
        described = "; ".join(f"{key} in {cats}" for key, cats in identities.items())
        raise ValueError(
            "features from different backbones cannot be mixed: "
            f"{described}. Re-materialize resnet_features for all categories with one feature setting."
        )
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["split", "category", "path"], kind="stable").reset_index(drop=True)
    first = df.iloc[0]
    identity = {k: (first[k].item() if hasattr(first[k], "item") else first[k]) for k in IDENTITY_COLUMNS}
    return FeatureSet(meta=df[META_COLUMNS].copy(), X=stack_vectors(df["features"]), identity=identity)


def features_for(features: FeatureSet, paths: pd.Series) -> np.ndarray:
    """The feature rows of ``paths``, in that order (e.g. to line features up with an embedding table).

    Raises ``ValueError`` naming a path that has no feature row (the tables changed in between: re-materialize).
    """
    position = pd.Series(np.arange(len(features.meta)), index=features.meta["path"].to_numpy())
    missing = paths[~paths.isin(position.index)]
    if len(missing):
        raise ValueError(
            f"{len(missing)} patch(es) of the embedding have no feature row, e.g. {missing.iloc[0]}: the features "
            "changed since umap_50d was fitted; re-run the recluster job"
        )
    return features.X[position.loc[paths.to_numpy()].to_numpy()]


def embedding_frame(meta: pd.DataFrame, Z: np.ndarray) -> pd.DataFrame:
    """``meta`` with an ``embedding`` column holding row ``i`` of ``Z`` (n, d)."""
    if len(meta) != len(Z):
        raise ValueError(f"{len(meta)} rows but {len(Z)} embedding vectors")
    out = meta[META_COLUMNS].reset_index(drop=True).copy()
    out["embedding"] = list(np.asarray(Z, dtype=np.float32))
    return out


def read_known_anomalies(test_dir: str | UPath) -> pd.DataFrame:
    """Injected / known anomalies listed in ``<test_dir>/anomalies.csv`` (columns ``file``, ``kind``).

    Returns a DataFrame with absolute ``path`` and ``kind``; empty when the file does not exist (real data sets
    have no such list). A file that exists but lacks the columns raises ``ValueError`` naming it.
    """
    root = UPath(test_dir)
    manifest = root / ANOMALY_MANIFEST
    if not manifest.exists():
        return pd.DataFrame({"path": pd.Series(dtype=str), "kind": pd.Series(dtype=str)})
    with manifest.open("r") as fh:
        table = pd.read_csv(fh)
    missing = {"file", "kind"} - set(table.columns)
    if missing:
        raise ValueError(f"{manifest}: missing column(s) {sorted(missing)}; expected 'file' and 'kind'")
    paths = [str(root.joinpath(*f.split("/"))) for f in table["file"].astype(str)]
    return pd.DataFrame({"path": paths, "kind": table["kind"].astype(str)})


def known_anomaly_kinds(meta: pd.DataFrame, known: pd.DataFrame) -> pd.Series:
    """Per row of ``meta``: the known anomaly kind, or "" for ordinary patches."""
    lookup = dict(zip(known["path"], known["kind"]))
    return meta["path"].map(lambda p: lookup.get(p, "")).astype(str)
