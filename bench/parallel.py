"""Running independent tasks on threads or processes (joblib), with a progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("threading", "loky", "multiprocessing", "sequential")


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    jobs: int = 1,
    backend: str = "threading",
    desc: str = "",
    progress: bool = True,
) -> Iterator[R]:
    """Yield ``fn(task)`` for each task as they finish (order not kept when ``jobs > 1``)."""
    from tqdm import tqdm

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    bar = tqdm(
        total=len(tasks), desc=desc, unit="img", disable=not progress or not tasks, leave=False
    )
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        if jobs == 1 or backend == "sequential" or len(tasks) <= 1:
            results: Iterator[R] = map(fn, tasks)
        elif backend == "threading":  # a plain pool: less per-task overhead than joblib's
            from concurrent.futures import ThreadPoolExecutor, as_completed

            pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs))
            stack.callback(pool.shutdown, cancel_futures=True)
            results = (f.result() for f in as_completed([pool.submit(fn, t) for t in tasks]))
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=jobs, backend=backend, return_as="generator_unordered")(
                delayed(fn)(t) for t in tasks
            )
        for r in results:
            bar.update(1)
            yield r
