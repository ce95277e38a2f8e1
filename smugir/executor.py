"""Running one function over many tasks in parallel: a local process pool or a Dask cluster.

`smug batch` (one input per task) and `smug eval` (one photo per task) share this. The function
must be a module-level (picklable) callable that never raises for a bad task; the coordinating
process gets every result through `finished`, in completion order, and alone writes files. A task
whose worker is lost (a dead process, a cluster failure) goes to `lost(task, reason)` instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import socket
import threading
import time
import urllib.parse
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

from smugir.errors import InputError, MissingDependencyError, printable
from smugir.isolation import safe_spawning

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
    """A spawn-started pool (onnxruntime and fork do not mix) whose workers die with the coordinator.

    At most `workers` tasks are in flight, so when a worker dies (the pool breaks) the suspects are
    those tasks only: each is retried alone in a fresh one-worker pool, where a second death names
    the task that kills workers (`lost`); every other task is finished normally.
    """
    with safe_spawning():  # no worker imports a pickle.py of the current directory
        for task in _pool_pass(workers, function, list(tasks), finished):
            if _pool_pass(1, function, [task], finished):
                lost(task, "the worker process explaining this input died (killed, out of memory?); rerun to retry")


def _pool_pass(workers: int, function: Callable[..., Any], tasks: list[Task], finished: Finished) -> list[Task]:
    """Run `tasks` in one pool until done or until the pool breaks; returns the tasks that were in
    flight when it broke (none if it did not). Tasks not yet started go on in a new pool."""
    waiting = list(reversed(tasks))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=die_with, initargs=(os.getpid(),))
    pending: dict[Future, Task] = {}
    try:
        while waiting or pending:
            try:
                while waiting and len(pending) < workers:
                    future = pool.submit(function, *waiting[-1])
                    pending[future] = waiting.pop()
            except BrokenProcessPool:  # it broke after the last wait: the task not submitted goes on in a new pool
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                break
            for future in done:
                finished(future.result())
                del pending[future]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True, cancel_futures=True)
    in_flight = []
    for future, task in pending.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            finished(future.result())
        else:
            in_flight.append(task)
    if waiting:
        in_flight += _pool_pass(workers, function, list(reversed(waiting)), finished)
    return in_flight


_PR_SET_PDEATHSIG = 1


def die_with(parent: int) -> None:
    """Worker initializer: be killed by the kernel when the coordinator dies (even by SIGKILL), so no
    worker (and then no resource tracker) outlives it; a watchdog thread where prctl is missing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl failed")
    except (OSError, AttributeError):
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the coordinator died before prctl took effect
        os._exit(1)


CONNECT_SECONDS = 10.0  # to reach a scheduler and get its answer (a port that accepts and stays silent ends here)


def parse_scheduler(text: str) -> str:
    """`tcp://HOST:PORT` (or HOST:PORT) of a Dask scheduler as `tcp://HOST:PORT`; anything else is refused
    before any work (other Dask transports need settings smugir does not pass)."""
    scheme, separator, rest = text.strip().rpartition("://")
    if separator and scheme.lower() != "tcp":
        raise InputError(f"--scheduler {text!r}: only tcp://HOST:PORT is accepted, not {scheme or 'an empty'}:// addresses")
    try:
        parts = urllib.parse.urlsplit(f"tcp://{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None or port == 0 or parts.username is not None or parts.path or parts.query or parts.fragment:
        raise InputError(f"--scheduler {text!r} is not tcp://HOST:PORT (a host name or address, a port in 1..65535)")
    return f"tcp://{f'[{host}]' if ':' in host else host}:{port}"


def connect(scheduler: str, seconds: float | None = None):
    """A Dask client of `scheduler`, or one InputError line within a few times `seconds` (default
    CONNECT_SECONDS): the scheduler is asked who it is first, each step under a time limit (Dask's own
    timeout does not cover a server that accepts and never answers, and garbage in answer raises
    anything, MemoryError included)."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise MissingDependencyError("--scheduler needs dask.distributed: pip install 'smugir[dist]'") from None
    address = parse_scheduler(scheduler)
    seconds = CONNECT_SECONDS if seconds is None else seconds
    parts = urllib.parse.urlsplit(address)
    try:  # first a plain TCP connection: refused or unreachable is said as such, at once
        socket.create_connection((parts.hostname, parts.port), timeout=seconds).close()
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address!r}: {printable(exc.strerror or exc) or type(exc).__name__}") from None
    outcome: dict[str, Any] = {}

    def ask() -> None:  # in a thread of its own: the caller may be inside an event loop (Jupyter)
        try:
            outcome["identity"] = asyncio.run(_identity(address, seconds))
        except BaseException as exc:  # noqa: BLE001 (reported below, in the caller's thread)
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="smug-dask-identity", daemon=True)
    thread.start()
    thread.join(3 * seconds + 2.0)
    error = outcome.get("error")
    if thread.is_alive() or isinstance(error, (TimeoutError, asyncio.TimeoutError)):
        raise InputError(f"{address!r} accepted a connection but did not answer within {seconds:g} s (is a Dask scheduler listening there?)")
    if isinstance(error, OSError):
        raise InputError(f"cannot reach the Dask scheduler at {address!r}: {printable(error) or type(error).__name__}")
    identity = outcome.get("identity")
    if error is not None or not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        what = f"{type(error).__name__}: {printable(error)[:200]}" if error is not None else "an answer that is not a scheduler's"
        raise InputError(f"{address!r} did not answer as a Dask scheduler ({what})")
    try:
        return Client(address, timeout=f"{seconds}s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address!r}: {printable(exc) or type(exc).__name__}") from None


async def _identity(address: str, seconds: float) -> Any:
    """The scheduler's answer to `identity`: connect (with Dask's handshake), ask, read, each within `seconds`."""
    from distributed.comm import connect as open_comm

    comm = await asyncio.wait_for(open_comm(address, timeout=seconds), seconds + 1.0)
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), seconds)
        return await asyncio.wait_for(comm.read(), seconds)
    finally:
        comm.abort()


def run_dask(scheduler: str, function: Callable[..., Any], tasks: Sequence[Task], finished: Finished, lost: Lost) -> None:
    """The same work on a Dask cluster; files the tasks name must be readable on the workers."""
    client = connect(scheduler)
    from dask.distributed import as_completed

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
