"""Running one function over many tasks in parallel: a local process pool or a Dask cluster.

`smug batch` (one input per task) and `smug eval` (one photo per task) share this. The function
must be a module-level (picklable) callable that never raises for a bad task; the coordinating
process gets every result through `finished`, in completion order, and alone writes files. A task
whose worker is lost (a dead process, a cluster failure) goes to `lost(task, reason)` instead.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from smugir.errors import InputError, MissingDependencyError

Task = tuple  # the positional arguments of one call
Finished = Callable[[Any], None]
Lost = Callable[[Task, str], None]


def run_tasks(function: Callable[..., Any], tasks: Sequence[Task], finished: Finished, lost: Lost,
              workers: int = 1, scheduler: str | None = None) -> None:
    """`finished(function(*task))` for every task: serially (workers 1), in a pool, or on Dask."""
    if scheduler:
        run_dask(scheduler, function, tasks, finished, lost)
    elif workers == 1:
        for task in tasks:
            finished(function(*task))
    else:
        run_pool(workers, function, tasks, finished, lost)


def run_pool(workers: int, function: Callable[..., Any], tasks: Sequence[Task], finished: Finished, lost: Lost) -> None:
    """A spawn-started pool (onnxruntime and fork do not mix)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: dict[Future, Task] = {pool.submit(function, *task): task for task in tasks}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost(task, "a worker process died while this input was in the pool; rerun to retry")
                        continue
                    finished(result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_dask(scheduler: str, function: Callable[..., Any], tasks: Sequence[Task], finished: Finished, lost: Lost) -> None:
    """The same work on a Dask cluster; files the tasks name must be readable on the workers."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise MissingDependencyError("--scheduler needs dask.distributed: pip install 'smugir[dist]'") from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
    with client:
        futures = {client.submit(function, *task, pure=False): task for task in tasks}
        try:
            for future in as_completed(futures):
                task = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 (a lost worker, a cancelled task)
                    lost(task, f"the cluster lost this input: {type(exc).__name__}: {exc}")
                    continue
                finished(result)
        except BaseException:
            client.cancel(list(futures))
            raise
