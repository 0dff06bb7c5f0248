"""``bench run --devices``: one worker process per device, each holding the methods loaded once.

Each worker is a single-process ``ProcessPoolExecutor`` of the ``spawn`` context (so a crash is
tied to one device and one image). A CUDA worker sees only its own GPU: its initializer sets
``CUDA_VISIBLE_DEVICES`` before torch initialises CUDA, then pins ``cuda`` to it. Tasks are
handed out as workers free up, at most ``WINDOW`` per worker; the caller (the parent process)
keeps scoring, the store, locks and journals, so workers only restore and write outputs.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from carbench.core.errors import BenchError

T = TypeVar("T")
R = TypeVar("R")

WINDOW = 2  # tasks queued per worker: one running, one ready (keeps a GPU busy)
_USAGE = "give auto, or a comma-separated list of cpu and cuda:N (e.g. cuda:0,cuda:1)"
_TOKEN = re.compile(r"cpu|cuda:(\d+)")
_END = object()


def cuda_device_count() -> int:
    """Visible CUDA GPUs (imports torch)."""
    import torch

    return torch.cuda.device_count()


def parse_devices(
    text: str | None, fallback: str, gpu_count: Callable[[], int] = cuda_device_count
) -> list[str]:
    """``--devices``: None -> ``[fallback]``; ``auto`` -> ``cuda:0 .. cuda:N-1`` for N visible
    GPUs (``[fallback]`` with 0 or 1); else a comma-separated list of ``cpu`` / ``cuda:N``."""
    if text is None:
        return [fallback]
    spec = text.strip()
    if not spec:
        raise BenchError(f"--devices is empty; {_USAGE}")
    if spec == "auto":
        n = gpu_count()
        return [f"cuda:{i}" for i in range(n)] if n > 1 else [fallback]
    devices, visible = [], None
    for tok in (t.strip() for t in spec.split(",")):
        m = _TOKEN.fullmatch(tok)
        if m is None:
            raise BenchError(f"--devices {text!r}: {tok!r} is not a device; {_USAGE}")
        if m[1] is not None:
            visible = gpu_count() if visible is None else visible
            if int(m[1]) >= visible:
                raise BenchError(
                    f"--devices {text!r}: {tok} is not visible ({visible} CUDA GPU(s) visible)"
                )
            tok = f"cuda:{int(m[1])}"
        devices.append(tok)
    return devices


@dataclass(frozen=True)
class Worker:
    """One worker process: the device it restores on and its pid."""

    device: str
    pid: int


# ---- inside a worker process ----------------------------------------------------------------

_state: dict[str, Any] = {}  # the worker's device (as torch sees it) and its loaded methods


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (e.g. SIGKILLed), instead of waiting on its queue forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(device: str, cuda_visible: str | None, threads: int, parent: int) -> None:
    """Pin the device before anything initialises CUDA; runs first in each worker."""
    if cuda_visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible
    _state["device"] = "cuda" if device.startswith("cuda") else device
    _state["threads"] = threads
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _load(methods: list, dtype: str, kinds: tuple[str, ...]) -> tuple[int, dict[str, str]]:
    """Load every method on the worker's device; its pid and the methods' weight hashes."""
    import torch

    device = _state["device"]
    if device == "cuda":
        torch.cuda.set_device(0)  # the only GPU this worker sees
    elif _state["threads"]:
        torch.set_num_threads(_state["threads"])
    try:
        for m in methods:
            m.load(device, m.resolve_dtype(device, dtype), kinds=kinds)
    except BenchError as e:  # re-raised as a plain BenchError: subclasses may not unpickle
        raise BenchError(str(e)) from None
    except Exception as e:
        raise RuntimeError(f"{type(e).__name__}: {e}") from None
    _state["methods"] = {m.id: m for m in methods}
    return os.getpid(), {m.id: m.weights_sha256() for m in methods}


def _call(fn: Callable[[Any, T], R], method_id: str, task: T) -> R:
    try:
        return fn(_state["methods"][method_id], task)
    except Exception as e:  # keep the exception picklable; the parent names device and task
        raise RuntimeError(f"{type(e).__name__}: {e}") from None


# ---- in the parent --------------------------------------------------------------------------


def _cuda_visible(device: str) -> str | None:
    """The CUDA_VISIBLE_DEVICES value that shows a worker only ``device``."""
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":")[1])
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in parent.split(",")] if parent else None
    return ids[index] if ids and index < len(ids) else str(index)


class DevicePool:
    """One worker process per entry of ``devices`` (duplicates allowed: ``cpu,cpu``)."""

    def __init__(self, devices: list[str]) -> None:
        if len(devices) < 2:
            raise ValueError("a device pool needs two or more devices")
        self.devices = list(devices)
        self.workers: list[Worker] = []
        self.weights_sha: dict[str, str] = {}
        self._pools: list[ProcessPoolExecutor] = []
        self._loading: list[Future] = []

    def start(self, methods: list, dtype: str, kinds: tuple[str, ...]) -> None:
        """Spawn the workers and have each load ``methods`` (returns at once; see ``ready``)."""
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        n_cpu = sum(d == "cpu" for d in self.devices)
        threads = max(1, (os.cpu_count() or 1) // max(1, n_cpu))
        for device in self.devices:
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(device, _cuda_visible(device), threads, os.getpid()),
            )
            self._pools.append(pool)
            self._loading.append(pool.submit(_load, methods, dtype, kinds))

    def ready(self) -> None:
        """Wait until every worker has loaded the methods; raise the first loading error."""
        if self.workers or not self._loading:
            return
        for device, fut in zip(self.devices, self._loading, strict=True):
            try:
                pid, shas = fut.result()
            except BenchError:
                raise
            except BrokenProcessPool:
                raise BenchError(f"the worker on {device} died while loading the methods") from None
            except Exception as e:
                raise BenchError(f"the worker on {device} could not load the methods: {e}") from e
            self.workers.append(Worker(device, pid))
            self.weights_sha = shas
        self._loading = []

    def imap(
        self,
        fn: Callable[[Any, T], R],
        method_id: str,
        tasks: Sequence[T],
        label: Callable[[T], str],
    ) -> Iterator[tuple[T, R, Worker]]:
        """Yield ``(task, fn(method, task), worker)`` as tasks finish, each run by one worker on
        its loaded method. A worker that raises or dies stops the hand-out: tasks already running
        elsewhere still finish and are yielded, then a BenchError names the device and task."""
        self.ready()
        todo = iter(tasks)
        pending: dict[Future, tuple[int, T]] = {}
        queued: list[deque[Future]] = [deque() for _ in self._pools]  # per worker, FIFO
        failure: BenchError | None = None

        def hand_out(w: int) -> None:
            task = next(todo, _END)
            if task is not _END:
                fut = self._pools[w].submit(_call, fn, method_id, task)
                pending[fut] = (w, task)
                queued[w].append(fut)

        for _ in range(WINDOW):  # round robin: every worker gets work when there is enough
            for w in range(len(self._pools)):
                hand_out(w)
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: queued[pending[f][0]].index(f)):
                    w, task = pending.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        queued[w].remove(fut)
                        if failure is None:
                            hand_out(w)
                        yield task, fut.result(), self.workers[w]
                        continue
                    if failure is None:
                        failure = self._failure(w, task, queued[w], pending, exc, label)
                    queued[w].remove(fut)
        finally:
            for fut in pending:
                fut.cancel()
        if failure is not None:
            raise failure

    def _failure(
        self,
        w: int,
        task: T,
        queued: deque[Future],
        pending: dict[Future, tuple[int, T]],
        exc: BaseException,
        label: Callable[[T], str],
    ) -> BenchError:
        worker = self.workers[w]
        if isinstance(exc, BrokenProcessPool):  # the oldest unfinished task was running
            running = pending.get(queued[0], (w, task))[1] if queued else task
            return BenchError(
                f"the worker on {worker.device} (pid {worker.pid}) died while restoring "
                f"{label(running)}; finished images are stored, re-run to resume"
            )
        return BenchError(
            f"the worker on {worker.device} (pid {worker.pid}) failed on {label(task)}: {exc}"
        )

    def close(self, wait_workers: bool = True) -> None:
        for pool in self._pools:
            pool.shutdown(wait=wait_workers, cancel_futures=True)
        self._pools = []

    def __enter__(self) -> DevicePool:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait_workers=exc_type is not KeyboardInterrupt)
