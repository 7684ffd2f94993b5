"""Feature extraction here vs on a Dask LocalCluster (same machine), same files, same backbone.

    python benchmarks/bench_dask.py --n-per-class 500 --workers 2 --threads 1

Local: ``extract_features`` in this process on the engine ``auto`` picks, ``--workers * --threads`` threads. Dask:
the same call with ``shard_runner=dask_shard_runner(...)`` on a LocalCluster of ``--workers`` processes with
``--threads`` each;
"cold" includes each worker's first import of torch and build of the network, "warm" is a second run. The features
are compared for equality. Last line: ``dask n= local_s= dask_cold_s= dask_warm_s= workers= threads= equal=``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-class", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--input-size", default="native")
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from seis_assets.core.backbones import load_backbone
    from seis_assets.core.distributed import BackboneSpec, dask_shard_runner
    from seis_assets.core.feature_table import feature_matrix
    from seis_assets.core.features import extract_features
    from seis_assets.core.listing import list_categories
    from seis_assets.core.mat_index import index_category
    from seis_assets.core.synthetic import write_dataset

    size = args.input_size if args.input_size == "native" else int(args.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root, n_train=args.n_per_class, n_test=0, seed=3)
        index = pd.concat([index_category(c, {"train": root / "train"})[0] for c in list_categories(root / "train")],
                          ignore_index=True)
        backbone = load_backbone(args.backbone)
        print(f"cpu cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}, n={len(index)}, "
              f"backbone {backbone.name}, input {args.input_size}")
        t = time.perf_counter()
        extract_features(index, root / "local.parquet", backbone, input_size=size,
                         num_threads=args.workers * args.threads)
        local_s = time.perf_counter() - t
        spec = BackboneSpec.of(backbone, "IMAGENET1K_V1", None, "cpu")
        with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            runner = dask_shard_runner(client, spec, key="img", batch_size=16, shard_size=args.shard_size)
            times = []
            for name in ("cold", "warm"):
                t = time.perf_counter()
                extract_features(index, root / f"dask_{name}.parquet", backbone, input_size=size,
                                 shard_runner=runner)
                times.append(time.perf_counter() - t)
        equal = bool(np.array_equal(feature_matrix(root / "local.parquet"), feature_matrix(root / "dask_warm.parquet")))
        print(f"local {local_s:.1f} s ({len(index) / local_s:.0f} img/s); dask cold {times[0]:.1f} s, warm "
              f"{times[1]:.1f} s ({len(index) / times[1]:.0f} img/s); load average after: {os.getloadavg()[0]:.1f}")
        print(f"dask n={len(index)} local_s={local_s:.1f} dask_cold_s={times[0]:.1f} dask_warm_s={times[1]:.1f} "
              f"workers={args.workers} threads={args.threads} equal={equal}")


if __name__ == "__main__":
    main()
