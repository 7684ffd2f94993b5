"""The feature cache: rows of a previous feature table reused by content hash.

A row of the previous table is reused when its ``sha256`` is in the index and the previous table's identity
(backbone, weights, weights fingerprint, dim, input_size, precision, engine: ``feature_table.CACHE_KEYS``) equals
the current one (so every row of a table comes from one engine); otherwise the whole previous table is ignored
and the reason is given. Files gone from the index are dropped. Reused rows are copied batch by batch, never
read whole, so an all-cached run never builds the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from seis_assets.core.feature_table import CACHE_KEYS, open_parquet, read_identity
from seis_assets.core.storage import to_upath

__all__ = ["PreviousTable"]

#: Rows of the previous table read per batch while looking up hashes / copying features.
_HASH_BATCH_ROWS = 65536
_COPY_BATCH_ROWS = 1024


def _usable_previous(previous_path, identity: dict) -> tuple[bool, str | None]:
    if previous_path is None:
        return False, None
    if not to_upath(previous_path).exists():
        return False, None  # first run
    try:
        old = read_identity(previous_path)
    except Exception as e:  # unreadable old table: recompute everything
        return False, f"previous table {previous_path} is unreadable ({type(e).__name__}: {e}); recomputing all"
    if old is None:
        return False, f"previous table {previous_path} has no identity metadata; recomputing all"
    diffs = [f"{k} {old.get(k)!r} -> {identity.get(k)!r}" for k in CACHE_KEYS if str(old.get(k)) != str(identity.get(k))]
    if diffs:
        return False, "cache invalidated: " + ", ".join(diffs)
    return True, None


def _row_count(previous_path) -> int:
    """Rows of the previous table (0 when there is none or it cannot be read)."""
    if previous_path is None or not to_upath(previous_path).exists():
        return 0
    with contextlib.suppress(Exception), open_parquet(previous_path) as pf:
        return pf.metadata.num_rows
    return 0


@dataclass
class PreviousTable:
    """What a previous feature table can give the current run.

    Attributes
    ----------
    path : path-like or None
    note : str or None
        Why the previous table is not used, when it was given but ignored.
    n_rows : int
        Its rows (all of them, used or not).
    hashes : set of str
        The index's hashes whose features it holds (empty when it is not used); after :meth:`copy_rows`, only
        those actually copied.
    rows_used : int
        Its rows copied by :meth:`copy_rows` (a hash listed by several index rows counts once).
    """

    path: str | os.PathLike | None
    note: str | None
    n_rows: int
    hashes: set[str] = field(default_factory=set)
    rows_used: int = 0

    @classmethod
    def open(cls, previous_path, identity: dict, wanted: Iterable[str], log: logging.Logger) -> PreviousTable:
        """The previous table at ``previous_path`` (may be None or missing) as a cache for the hashes ``wanted``;
        logs why it is ignored, when it is."""
        usable, note = _usable_previous(previous_path, identity)
        if note:
            log.info("%s", note)
        table = cls(previous_path, note, _row_count(previous_path))
        if usable:
            wanted = set(wanted)
            with open_parquet(previous_path) as pf:
                for batch in pf.iter_batches(batch_size=_HASH_BATCH_ROWS, columns=["sha256"]):
                    table.hashes.update(s for s in batch.column(0).to_pylist() if s in wanted)
        return table

    def copy_rows(self, index_sha: Iterable[str], write: Callable[[list[int], pa.Array], None]) -> int:
        """Copy the cached features of the index rows whose hash (``index_sha``, in index order) it holds.

        ``write(positions, features)`` receives the index positions and their feature vectors, batch by batch, in
        the previous table's order (the first row of a hash wins). Returns the number of index rows written.
        """
        if not self.hashes:
            return 0
        by_sha: dict[str, list[int]] = {}
        for i, s in enumerate(index_sha):
            if s in self.hashes:
                by_sha.setdefault(s, []).append(i)
        n_written = 0
        with open_parquet(self.path) as pf:
            for batch in pf.iter_batches(batch_size=_COPY_BATCH_ROWS, columns=["sha256", "features"]):
                src, dst = [], []
                for j, s in enumerate(batch.column(0).to_pylist()):
                    targets = by_sha.pop(s, None)  # first occurrence of a hash wins
                    if targets:
                        self.rows_used += 1
                        src.extend([j] * len(targets))
                        dst.extend(targets)
                if src:
                    write(dst, batch.column(1).take(pa.array(src, pa.int64())))
                    n_written += len(dst)
        self.hashes -= set(by_sha)  # hashes that were not found after all
        return n_written
