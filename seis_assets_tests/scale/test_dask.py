"""Feature extraction on a real Dask cluster: a ``LocalCluster`` with a scheduler and two worker processes on
127.0.0.1. The ingest materialized through it writes the same features, in the same order, as the local run."""

import os
import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from upath import UPath

from seis_assets.core.distributed import BackboneSpec, dask_shard_runner
from seis_assets.core.feature_table import BackboneMismatchError, feature_matrix, table_identity
from seis_assets.core.features import extract_features
from seis_assets.core.backbones import load_backbone
from seis_assets.core.mat_index import index_category
from seis_assets.core.storage import read_parquet
from seis_assets.definitions import ALL_ASSETS
from seis_assets.partitions import CATEGORY_PARTITIONS_NAME
from seis_assets.resources import DaskCluster
from seis_assets_tests.dagster_tests.helpers import INGEST_KEYS, resources_for

from .servers import FAKE_CREDENTIALS, dask_local_cluster

pytestmark = pytest.mark.slow
CATEGORIES = ["chaotic", "fault", "horizon", "salt dome"]


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory, moto_endpoint):
    """A ``LocalCluster`` (scheduler + two single-threaded worker processes, processes=True) on 127.0.0.1, run by
    a helper process in its own process group; afterwards that group (workers, multiprocessing's helpers) is
    gone. Its workers reach the module's S3 server the way a real cluster's would: through their environment."""
    env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": moto_endpoint}
    with dask_local_cluster(tmp_path_factory.mktemp("dask") / "cluster.log", n_workers=2, env=env) as address:
        yield address


def assert_same_features(a, b):
    """The same features up to float32 rounding: workers run the network on one thread, the local run on the
    machine's threads, and on some CPUs (AVX2 without AVX-512) the kernels then round the last bit differently.
    Another network or another patch differs by far more than this."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _ingest(root, instance, resources):
    for category in CATEGORIES:
        result = dg.materialize(ALL_ASSETS, selection=INGEST_KEYS, partition_key=category, resources=resources,
                                instance=instance)
        assert result.success
    return result


def _relative(features: pd.DataFrame, root) -> pd.DataFrame:
    out = features.drop(columns=["features"]).copy()
    out["path"] = out["path"].str.replace(str(root), "", regex=False)
    return out


def test_ingest_through_a_dask_cluster_equals_the_local_run(small_dataset, tmp_path, dask_scheduler):
    from distributed import Client, get_task_stream

    local_root, dask_root = small_dataset, tmp_path / "dask_data"
    shutil.copytree(small_dataset, dask_root)
    local_resources = resources_for(local_root)
    assert local_resources["dask"].shard_runner(None, key="img", batch_size=16) is None  # default: no cluster
    dask_resources = resources_for(dask_root)
    dask_resources["dask"] = DaskCluster(scheduler_address=dask_scheduler, shard_size=5)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(CATEGORY_PARTITIONS_NAME, CATEGORIES)
        _ingest(local_root, instance, local_resources)
        with Client(dask_scheduler, set_as_default=False) as client, get_task_stream(client) as stream:
            last = _ingest(dask_root, instance, dask_resources)
        [materialization] = [m for m in last.asset_materializations_for_node("resnet_features")]
        assert materialization.metadata["ran_on"].value == f"dask {dask_scheduler}"

    tasks = [t for t in stream.data if t["key"].startswith("embed_shard")]
    assert {t["worker"] for t in tasks} == set(client_workers(dask_scheduler))  # both workers did work
    assert len(tasks) == 4 * int(np.ceil((16 + 6) / 5))
    for category in CATEGORIES:
        local = read_parquet(local_root / "warehouse" / "resnet_features" / f"{category}.parquet")
        remote = read_parquet(dask_root / "warehouse" / "resnet_features" / f"{category}.parquet")
        assert len(local) == 16 + 6
        pd.testing.assert_frame_equal(_relative(local, local_root), _relative(remote, dask_root))
        assert_same_features(feature_matrix(local), feature_matrix(remote))


def client_workers(address) -> list[str]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        return list(client.scheduler_info()["workers"])


def test_a_worker_whose_backbone_differs_refuses_to_embed(small_dataset, tmp_path, dask_scheduler):
    from distributed import Client

    index, _ = index_category("fault", {"train": small_dataset / "train"})
    backbone = load_backbone("texture")
    spec = BackboneSpec.of(backbone, "IMAGENET1K_V1", None, "cpu")
    with Client(dask_scheduler, set_as_default=False) as client:
        runner = dask_shard_runner(client, spec, key="img", batch_size=16, shard_size=8)

        def other_weights(todo, identity):  # the run expects features of another network than the workers have
            return runner(todo, {**identity, "weights_sha256": "0123456789ab"})

        with pytest.raises(BackboneMismatchError, match="weights_sha256"):
            extract_features(index, tmp_path / "features.parquet", backbone, shard_runner=other_weights)
        assert not (tmp_path / "features.parquet").exists()  # nothing half-written

        report = extract_features(index, tmp_path / "features.parquet", backbone, shard_runner=runner)
    assert report.n_extracted == 16 and report.identity == table_identity(backbone)
    local = extract_features(index, tmp_path / "local.parquet", backbone)
    assert_same_features(feature_matrix(tmp_path / "features.parquet"), feature_matrix(tmp_path / "local.parquet"))
    assert local.n_extracted == 16


def test_workers_read_the_patches_from_a_bucket(s3, small_dataset, tmp_path, dask_scheduler):
    """The usual deployment: patches in a bucket, the table written to the bucket, workers reading the files
    themselves (s3fs on the workers, endpoint and credentials from their environment)."""
    from distributed import Client

    fs, root = s3
    fs.put(f"{small_dataset}/train/fault/", f"{root}/train/fault/", recursive=True)
    index, _ = index_category("fault", {"train": UPath(f"{root}/train")})
    assert len(index) == 16 and index["path"].str.startswith("s3://").all()
    backbone = load_backbone("texture")
    with Client(dask_scheduler, set_as_default=False) as client:
        runner = dask_shard_runner(client, BackboneSpec.of(backbone, "IMAGENET1K_V1", None, "cpu"), key="img",
                                   batch_size=16, shard_size=4)
        report = extract_features(index, f"{root}/warehouse/fault.parquet", backbone, shard_runner=runner)
    assert report.n_extracted == 16 and len(report.failures) == 0
    local_index, _ = index_category("fault", {"train": small_dataset / "train"})
    extract_features(local_index, tmp_path / "local.parquet", backbone)
    assert_same_features(feature_matrix(f"{root}/warehouse/fault.parquet"), feature_matrix(tmp_path / "local.parquet"))


def test_scheduler_address_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SEIS_DASK_SCHEDULER", raising=False)
    assert DaskCluster.from_env().scheduler_address is None
    monkeypatch.setenv("SEIS_DASK_SCHEDULER", "tcp://10.0.0.5:8786")
    assert DaskCluster.from_env().scheduler_address == "tcp://10.0.0.5:8786"
