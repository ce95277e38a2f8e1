"""Batch throughput: the 15 real MNIST samples repeated to 120 inputs, 1 and 2 local workers, and Dask.

    .venv/bin/python benchmarks/bench_batch.py [--repeat 8] [--skip-dask]

mnist-net_256x2, pixel units, top-k 32, gamma 0.5, HiGHS (the `smug batch` defaults). Each run
starts from an empty results folder; prints inputs per second and the scaling over 1 worker.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from smugir.batch import BatchOptions, run_batch
from smugir.datasets import read_dataset
from smugir.model import load_model
from smugir.units import input_layout

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "mnist" / "mnist-net_256x2.onnx"
SAMPLES = ROOT / "tests" / "data" / "mnist" / "mnist_test_samples.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args()
    model = load_model(MODEL)
    base = read_dataset(SAMPLES, model.input_shape, input_layout(model.input_shape))
    items = [replace(item, id=f"{copy}-{item.id}") for copy in range(args.repeat) for item in base]
    runs = [("local", 1, None), ("local", 2, None)]
    if not args.skip_dask:
        runs.append(("dask", 2, "cluster"))
    rates = {}
    for kind, workers, scheduler in runs:
        with tempfile.TemporaryDirectory() as folder:
            if scheduler:
                from dask.distributed import LocalCluster

                with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
                    clock = time.perf_counter()
                    report = run_batch(MODEL, items, Path(folder) / "out", BatchOptions(), scheduler=cluster.scheduler_address)
            else:
                clock = time.perf_counter()
                report = run_batch(MODEL, items, Path(folder) / "out", BatchOptions(), workers=workers)
            wall = time.perf_counter() - clock
        rates[(kind, workers)] = len(items) / wall
        print(
            f"{kind:5s} workers={workers}: {len(items)} inputs in {wall:6.2f} s = {rates[(kind, workers)]:5.2f} inputs/s "
            f"(statuses {report.statuses}, verified {report.verified}, median solve {report.median_solve_seconds:.3f} s)"
        )
    print(f"scaling 2 local workers / 1: {rates[('local', 2)] / rates[('local', 1)]:.2f}x")


if __name__ == "__main__":
    main()
