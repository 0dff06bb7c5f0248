"""Running independent tasks on threads, processes or a cluster, with a progress bar.

Backends: ``threading`` (default; the codecs release the GIL), ``loky`` / ``multiprocessing``
(joblib processes), ``dask`` (joblib's Dask backend on a ``distributed`` client: the scheduler
at ``DASK_SCHEDULER_ADDRESS``, else a local cluster), ``ray`` (joblib's Ray backend:
``RAY_ADDRESS``, else a local instance), ``sequential``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from carbench.core.errors import BenchError

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("threading", "loky", "multiprocessing", "dask", "ray", "sequential")


def _cluster_backend(backend: str, stack: contextlib.ExitStack) -> None:
    """Connect joblib to Dask or Ray."""
    if backend == "dask":
        try:
            from dask.distributed import Client, get_client
        except ImportError:
            raise BenchError(
                "--backend dask needs dask[distributed] (pip install 'dask[distributed]')"
            ) from None
        try:
            get_client()
        except ValueError:  # no client yet: the configured scheduler, or a local cluster
            stack.enter_context(Client())
    elif backend == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            raise BenchError("--backend ray needs ray (pip install ray)") from None
        register_ray()
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
            stack.callback(ray.shutdown)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    jobs: int = 1,
    backend: str = "threading",
    desc: str = "",
    progress: bool = True,
) -> Iterator[R]:
    """Yield ``fn(task)`` for each task as they finish (order not kept when ``jobs > 1``)."""
    if backend not in BACKENDS:
        raise BenchError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc=desc, unit="img", leave=False)
    else:  # no bar: tqdm is not even imported
        bar = _NoBar()
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if (
            backend == "sequential"
            or not tasks
            or (jobs == 1 and backend in ("threading", "loky", "multiprocessing"))
        ):
            results: Iterator[R] = map(fn, tasks)
        elif backend == "threading":  # a plain pool: less per-task overhead than joblib's
            from concurrent.futures import ThreadPoolExecutor, as_completed

            pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs))
            stack.callback(pool.shutdown, cancel_futures=True)
            results = (f.result() for f in as_completed([pool.submit(fn, t) for t in tasks]))
        else:
            from joblib import Parallel, delayed, parallel_config

            if backend in ("dask", "ray"):
                _cluster_backend(backend, stack)
            stack.enter_context(parallel_config(backend=backend, n_jobs=jobs if jobs > 1 else -1))
            order = "list" if backend == "ray" else "generator_unordered"  # ray: lists only
            results = Parallel(return_as=order)(delayed(fn)(t) for t in tasks)
        for r in results:
            bar.update(1)
            yield r
