"""Where a sweep's runs execute: in this process, in local worker processes, or on a Dask cluster.

Each backend takes the runs' tasks and yields each run's result as it completes. Workers only
compute; this process writes every file, so a Dask cluster needs no shared file system, and a
run's result depends on nothing but its parameters and seed, whatever the backend.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

from market_abm.batch.runs import execute_run
from market_abm.core.validation import check_int

BACKENDS = ("serial", "processes", "dask")
MAX_WORKERS_PER_CORE = 4  # more worker processes than this per core only compete for it


def choose_backend(backend=None, workers=1, scheduler=None):
    """The backend for the options given: serial for one worker, local processes for more, Dask
    with a scheduler address (or when asked, with `workers` in a LocalCluster)."""
    workers = check_int("workers", workers, low=1, high=MAX_WORKERS_PER_CORE * (os.cpu_count() or 1))
    if backend is None:
        backend = "dask" if scheduler else ("serial" if workers == 1 else "processes")
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {list(BACKENDS)}, got {backend!r}")
    if scheduler and backend != "dask":
        raise ValueError(f"scheduler: only the dask backend uses a scheduler, not {backend!r}")
    if backend == "serial" and workers != 1:
        raise ValueError(f"workers: the serial backend runs one at a time, got {workers}")
    if backend == "dask":
        dask_distributed()
    return backend, workers


def dask_distributed():
    try:
        import dask.distributed
    except ImportError:
        raise ValueError("backend: dask needs the distributed extra (pip install 'market-abm[distributed]')") from None
    return dask.distributed


@contextlib.contextmanager
def open_backend(backend="serial", workers=1, scheduler=None):
    """Start the backend; yields `results(tasks)`, an iterator of results as the runs complete."""
    if backend == "serial":
        yield lambda tasks: (execute_run(task) for task in tasks)
    elif backend == "processes":
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            yield lambda tasks: pool_results(pool, tasks)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        with dask_client(workers, scheduler) as client:
            yield lambda tasks: dask_results(client, tasks)


def pool_results(pool, tasks):
    futures = [pool.submit(execute_run, task) for task in tasks]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


@contextlib.contextmanager
def dask_client(workers, scheduler):
    """A client of the cluster at `scheduler`, or of a new LocalCluster of `workers` one-thread processes."""
    distributed = dask_distributed()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ValueError(f"scheduler: cannot connect to {scheduler!r}: {err}") from None
        with client:
            yield client
        return
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


def dask_results(client, tasks):
    distributed = dask_distributed()
    keys = [f"market-abm-run-{task['run_id']}" for task in tasks]
    futures = client.map(execute_run, tasks, key=keys) if tasks else []
    try:
        for future in distributed.as_completed(futures):
            yield future.result()
    finally:
        client.cancel(futures)
