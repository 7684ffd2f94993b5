"""The Parquet IO manager: documented paths, row counts, atomic writes, missing partitions."""

import dagster as dg
import pandas as pd
import pytest

from seis_assets.io_managers import ParquetIOManager, WrittenTable, table_path
from seis_assets.core.storage import read_parquet

parts = dg.StaticPartitionsDefinition(["salt dome", "fault"])


@dg.asset(partitions_def=parts, io_manager_key="parquet_io_manager")
def per_category(context) -> pd.DataFrame:
    return pd.DataFrame({"category": [context.partition_key] * 3, "x": [1.0, 2.0, 3.0]})


@dg.asset(io_manager_key="parquet_io_manager")
def combined(per_category: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(per_category.values(), ignore_index=True)


def test_partition_written_at_base_asset_partition_parquet_with_row_count(tmp_path):
    io = ParquetIOManager(base_path=str(tmp_path))
    result = dg.materialize([per_category], partition_key="salt dome", resources={"parquet_io_manager": io})
    [event] = result.get_asset_materialization_events()
    expected = tmp_path / "per_category" / "salt dome.parquet"
    assert event.materialization.metadata["path"].value == str(expected)
    assert event.materialization.metadata["row_count"].value == 3
    assert read_parquet(expected)["category"].tolist() == ["salt dome"] * 3
    assert table_path(tmp_path, "per_category", "salt dome") == expected
    assert not [p for p in expected.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_unpartitioned_downstream_receives_every_partition(tmp_path):
    io = {"parquet_io_manager": ParquetIOManager(base_path=str(tmp_path))}
    for key in parts.get_partition_keys():
        dg.materialize([per_category], partition_key=key, resources=io)
    dg.materialize([per_category, combined], selection=[combined], resources=io)
    assert sorted(read_parquet(tmp_path / "combined.parquet")["category"].unique()) == ["fault", "salt dome"]


def test_missing_partition_is_a_clear_error(tmp_path):
    io = {"parquet_io_manager": ParquetIOManager(base_path=str(tmp_path))}
    dg.materialize([per_category], partition_key="fault", resources=io)
    with pytest.raises(Exception, match="salt dome.parquet does not exist"):
        dg.materialize([per_category, combined], selection=[combined], resources=io)


def test_streamed_table_must_be_where_the_layout_says(tmp_path):
    @dg.asset(io_manager_key="parquet_io_manager")
    def streamed() -> WrittenTable:
        wrong = tmp_path / "elsewhere.parquet"
        pd.DataFrame({"x": [1]}).to_parquet(wrong)
        return WrittenTable(str(wrong), 1)

    with pytest.raises(Exception, match="warehouse layout puts it at"):
        dg.materialize([streamed], resources={"parquet_io_manager": ParquetIOManager(base_path=str(tmp_path))})


def test_pickles_are_written_atomically(tmp_path):
    from seis_assets.io_managers import AtomicPickleIOManager

    calls = {"n": 0}

    @dg.asset
    def model() -> dict:
        calls["n"] += 1
        if calls["n"] == 1:
            return {"k": 4}
        return {"k": lambda: None}  # cannot be pickled: the write fails half-way

    io = {"io_manager": AtomicPickleIOManager(base_dir=str(tmp_path))}
    dg.materialize([model], resources=io)
    assert (tmp_path / "model").read_bytes()
    with pytest.raises(Exception, match="not picklable"):
        dg.materialize([model], resources=io)
    import pickle

    assert pickle.loads((tmp_path / "model").read_bytes()) == {"k": 4}  # the previous pickle, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary file left
