"""``bench run``: generate what is missing, restore with each method, score, store.

Per (dataset, protocol, degradation, method) the manifest lists the images; images whose every
requested metric is already in the store are skipped without being read. Restored images are
saved as PNG (atomic) under ``outputs/`` for methods that make new pixels, metric values are
cached by content hash, and store parts are flushed every ``flush_every`` images, so a killed
run loses at most the rows of the last few images and recomputes nothing on resume. A lock per
(method, set, shard) keeps two processes from doing the same work. With several ``devices``,
torch methods restore in a ``DevicePool`` (one worker process per device) while this process
scores, stores and holds the locks, exactly as in the serial path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from carbench.bench.datasets import Dataset, pixel_sha256
from carbench.bench.generate import decoded_input, generate, read_manifest
from carbench.bench.metrics.runner import MetricRunner
from carbench.bench.protocols import Protocol
from carbench.bench.store import ResultStore
from carbench.core.device_pool import DevicePool, Worker
from carbench.core.errors import BenchError, ImageError, WeightsMissingError
from carbench.core.imageio import read_image, write_png_atomic
from carbench.core.locks import exclusive
from carbench.core.parallel import run_tasks
from carbench.core.provenance import carbench_version, git_sha
from carbench.core.shard import ALL, Shard
from carbench.core.workspace import Workspace
from carbench.degradations import Degradation
from carbench.methods.base import Method, Sample

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass
class RunSummary:
    scored: int = 0  # images scored now
    skipped: int = 0  # images already complete in the store
    rows: int = 0
    failed: list[str] = field(default_factory=list)
    parts: list[Path] = field(default_factory=list)


def _safe(text: str) -> str:
    return text.replace(":", "_").replace("=", "-").replace(",", "_").replace("/", "_")


def output_path(
    ws: Workspace, method: Method, dataset: str, protocol: str, deg: str, image: str
) -> Path:
    return ws.root / "outputs" / _safe(method.id) / dataset / protocol / deg / f"{image}.png"


def _params(rec) -> dict:
    return {k[len("param_") :]: v for k, v in rec.items() if k.startswith("param_") and v == v}


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float:
    """Peak memory of the restore: CUDA allocator peak, or the process's max RSS on CPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scoring_view(method: Method, out: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, str]:
    """The output as scored: resized to the ground truth (PIL bicubic) when the method keeps
    its official output geometry (``resize_for_scoring``); else unchanged. Returns (pixels,
    "WxH" of the original output when resized, else "")."""
    if not method.resize_for_scoring or out.shape[:2] == gt.shape[:2]:
        return out, ""
    from PIL import Image

    h, w = gt.shape[:2]
    resized = np.asarray(Image.fromarray(out).resize((w, h), Image.BICUBIC)).copy()
    return resized, f"{out.shape[1]}x{out.shape[0]}"


def _sample(ws: Workspace, rec: dict, deg: str) -> Sample:
    return Sample(rec["image"], None, ws.resolve(rec["bitstream_path"]), deg, _params(rec))


@dataclass
class Restored:
    """A restored image, what restoring it cost, and where it ran (the device and pid)."""

    pixels: np.ndarray
    seconds: float
    peak_mb: float
    device: str
    pid: int


def restore_record(method: Method, ws: Workspace, rec: dict, deg: str, out_path: Path) -> Restored:
    """Run a loaded method on one manifest record and save the PNG if it makes new pixels."""
    sample = _sample(ws, rec, deg)
    sample.decoded = decoded_input(ws, rec, deg)
    t0 = time.perf_counter()
    _reset_peak(method.device)
    out = method.restore_sample(sample)
    seconds = time.perf_counter() - t0
    peak_mb = _peak_mb(method.device)
    if method.saves_outputs:
        write_png_atomic(out_path, out)
    return Restored(out, seconds, peak_mb, method.device, os.getpid())


@dataclass(frozen=True)
class _RestoreTask:
    """What a device worker needs to restore one image (picklable)."""

    ws: Workspace
    rec: dict
    deg: str
    out_path: Path
    label: str


def _restore_in_worker(method: Method, task: _RestoreTask) -> tuple[Restored | None, str | None]:
    """Runs in a DevicePool worker; bad inputs come back as the serial path's error text."""
    try:
        return restore_record(method, task.ws, task.rec, task.deg, task.out_path), None
    except (ImageError, BenchError, ValueError) as e:
        return None, f"{task.rec['image']} ({task.label}): {e}"


@dataclass
class _SetJob:
    """Everything one (method, dataset, protocol, degradation) needs, shared by its images."""

    ws: Workspace
    runner: MetricRunner
    method: Method
    ds: Dataset
    protocol: Protocol
    deg: Degradation
    info: dict
    wanted: set[str]
    have: dict[str, set[str]]
    pool: DevicePool | None = None  # restores in worker processes when set

    @property
    def label(self) -> str:
        return f"{self.method.id}, {self.ds.name}/{self.protocol.name}/{self.deg.id}"

    def out_path(self, image: str) -> Path:
        return output_path(
            self.ws, self.method, self.ds.name, self.protocol.name, self.deg.id, image
        )

    def weights_sha(self) -> str:
        if self.pool is not None and self.method.id in self.pool.weights_sha:
            return self.pool.weights_sha[self.method.id]  # loaded in the workers only
        return self.method.weights_sha256()

    def score_image(
        self, rec: dict, restored: Restored | None = None
    ) -> tuple[list[dict], str | None]:
        """Restore (or take ``restored``, or reuse the saved output) and score one image; rows
        or an error."""
        image = rec["image"]
        try:
            ws, method = self.ws, self.method
            gt = read_image(ws.resolve(rec["gt_path"])).pixels
            out_path = self.out_path(image)
            if restored is None and method.saves_outputs and out_path.exists():
                restored = Restored(
                    read_image(out_path).pixels,
                    float("nan"),
                    float("nan"),
                    self.info["device"],
                    os.getpid(),
                )
            elif restored is None:
                restored = restore_record(method, ws, rec, self.deg.id, out_path)
            out = restored.pixels
            sample = _sample(ws, rec, self.deg.id)
            src = out_path if method.saves_outputs else method.output_source(sample)
            src_rel = ws.rel(src) if src is not None else None
            missing = self.wanted - self.have.get(image, set())
            out, scored_from = scoring_view(method, out, gt)
            scores = self.runner.score(out, gt, pixel_sha256(out), rec["gt_sha256"], only=missing)
        except (ImageError, BenchError, ValueError) as e:
            return [], f"{image} ({self.label}): {e}"
        created = time.time()
        weights_sha = self.weights_sha()
        return [
            {
                "dataset": self.ds.name,
                "protocol": self.protocol.name,
                "degradation": self.deg.id,
                "method": method.id,
                "image": image,
                "metric": s.spec.name,
                "variant": s.spec.id,
                "value": s.value,
                "higher_better": s.spec.higher_better,
                "kind": s.spec.kind,
                "implementation": s.implementation,
                "metric_seconds": s.seconds,
                "restore_seconds": restored.seconds,
                "peak_mem_mb": restored.peak_mb,
                "output_path": src_rel,
                "bpp": rec.get("bpp"),
                "scored_resized_from": scored_from,  # "WxH" when resized to the GT to score
                "gt_sha256": rec["gt_sha256"],
                "method_weights_sha256": weights_sha,
                "method_source": method.method_source(),
                "created": created,
                **self.info,
                # the precision it ran in (--dtype auto resolved for the method and device)
                "dtype": method.resolve_dtype(restored.device, self.info["dtype"]),
                "device": restored.device,  # where this image was restored
                "worker_pid": restored.pid,  # the process that restored it
            }
            for s in scores
        ], None

    def score_on_devices(self, todo: list[dict]) -> Iterator[tuple[list[dict], str | None]]:
        """Score ``todo``, the restoring done by the device pool's workers; saved outputs are
        scored here first (nothing to restore)."""
        assert self.pool is not None
        saved = self.method.saves_outputs
        fresh = [r for r in todo if not (saved and self.out_path(r["image"]).exists())]
        fresh_ids = {r["image"] for r in fresh}
        for rec in todo:
            if rec["image"] not in fresh_ids:
                yield self.score_image(rec)
        tasks = [
            _RestoreTask(self.ws, rec, self.deg.id, self.out_path(rec["image"]), self.label)
            for rec in fresh
        ]
        worker: Worker
        for task, (restored, err), worker in self.pool.imap(
            _restore_in_worker,
            self.method.id,
            tasks,
            label=lambda t: f"{t.rec['image']} ({t.label})",
        ):
            if err is not None:
                yield [], err
                continue
            restored.device = worker.device  # the worker's own name for its GPU is cuda
            yield self.score_image(task.rec, restored)


def run_method_on_set(
    ws: Workspace,
    store: ResultStore,
    runner: MetricRunner,
    method: Method,
    ds: Dataset,
    protocol: Protocol,
    deg: Degradation,
    run_info: dict,
    on_error: str = "skip",
    progress: bool = True,
    flush_every: int = 25,
    shard: Shard = ALL,
    jobs: int = 1,
    pool: DevicePool | None = None,
) -> RunSummary:
    """Restore and score one set (or one shard of it); ``jobs`` threads share the images, or,
    for torch methods when ``pool`` is given, the pool's device workers restore them."""
    lock = (
        ws.root / "locks" / f"{_safe(method.id)}--{ds.name}--{protocol.name}--{deg.id}"
        f"{shard.tag}.lock"
    )
    with exclusive(lock, f"{method.id} on {ds.name}/{protocol.name}/{deg.id}{shard.tag}"):
        return _run_set(
            _SetJob(
                ws,
                runner,
                method,
                ds,
                protocol,
                deg,
                run_info,
                set(),
                {},
                pool if method.uses_torch else None,
            ),
            store,
            on_error,
            progress,
            flush_every,
            shard,
            jobs,
        )


def _run_set(
    job: _SetJob,
    store: ResultStore,
    on_error: str,
    progress: bool,
    flush_every: int,
    shard: Shard,
    jobs: int,
) -> RunSummary:
    ws, runner, method, ds, protocol, deg = (
        job.ws,
        job.runner,
        job.method,
        job.ds,
        job.protocol,
        job.deg,
    )
    summary = RunSummary()
    wanted = {s.id for s in runner.specs}
    records, todo, wanted, have = _pending(ws, store, wanted, method, ds, protocol, deg, shard)
    summary.skipped = len(records) - len(todo)
    job.wanted, job.have = wanted, have
    rows: list[dict] = []
    pending = 0

    def flush() -> None:
        nonlocal pending
        part = store.append(rows)
        if part is not None:
            summary.parts.append(part)
            summary.rows += len(rows)
        rows.clear()
        pending = 0

    desc = f"{method.id} {ds.name}/{deg.id}"
    if job.pool is None:
        results = run_tasks(
            job.score_image, todo, jobs=jobs, backend="threading", desc=desc, progress=progress
        )
    else:
        results = _with_bar(job.score_on_devices(todo), len(todo), desc, progress)
    try:
        with contextlib.closing(results):
            for new_rows, err in results:
                if err is not None:
                    summary.failed.append(err)
                    if on_error == "fail":
                        raise BenchError(err)
                    continue
                rows.extend(new_rows)
                summary.scored += 1
                pending += 1
                if pending >= flush_every:
                    flush()
    finally:
        flush()
    return summary


def _with_bar(
    items: Generator[R, None, None], total: int, desc: str, progress: bool
) -> Iterator[R]:
    """``items`` with the same progress bar as ``run_tasks`` draws."""
    from tqdm import tqdm

    with (
        tqdm(
            total=total, desc=desc, unit="img", disable=not progress or not total, leave=False
        ) as bar,
        contextlib.closing(items),
    ):
        for item in items:
            bar.update(1)
            yield item


def expected_kinds(ds: Dataset, protocol: Protocol) -> set[str]:
    """Which image kinds (``rgb``/``gray``) a dataset yields under a protocol."""
    if protocol.color == "rgb":
        return {"rgb"}
    if protocol.color == "gray":
        return {"gray"}
    if ds.info is not None:
        return {ds.info.color}
    kinds = set()
    for p in ds.images[:50]:
        try:
            kinds.add("gray" if read_image(p).pixels.ndim == 2 else "rgb")
        except ImageError:
            continue
    return kinds or {"rgb"}


def run_info(
    device: str, dtype: str, seed: int | None = None, devices: list[str] | None = None
) -> dict:
    """Provenance shared by every row of one ``bench run`` (``devices``: the restoring ones)."""
    return {
        "run_id": uuid.uuid4().hex[:12],
        "carbench": carbench_version(),
        "git_sha": git_sha(),
        "device": device,
        "devices": ",".join(devices or [device]),
        "dtype": dtype,
        "seed": seed,
        "host": platform.node(),
        "pid": os.getpid(),
    }


def _pending(
    ws: Workspace,
    store: ResultStore,
    wanted: set[str],
    method: Method,
    ds: Dataset,
    protocol: Protocol,
    deg: Degradation,
    shard: Shard,
) -> tuple[list[dict], list[dict], set[str], dict[str, set[str]]]:
    """The set's records (of this shard), those still missing a wanted metric, the wanted
    variant ids and what the store has per image."""
    manifest = read_manifest(ws, ds.name, protocol.name, deg.id)
    mine = {p.stem for p in shard.take(ds.images)}
    done = store.done_keys(
        dataset=ds.name, protocol=protocol.name, degradation=deg.id, method=method.id
    )
    have: dict[str, set[str]] = {}
    for image, variant in done:
        have.setdefault(image, set()).add(variant)
    records = [r for r in manifest.to_dict("records") if r["image"] in mine]
    todo = [r for r in records if not wanted <= have.get(r["image"], set())]
    return records, todo, wanted, have


def _has_work(ws, store, wanted, method, datasets, protocol, degradations, shard) -> bool:
    """Whether ``method`` has anything left to restore or score for the metric variant ids
    ``wanted`` (a missing set counts)."""
    for ds in datasets:
        for deg in degradations:
            if not ws.manifest_path(ds.name, protocol.name, deg.id).exists():
                return True
            if _pending(ws, store, wanted, method, ds, protocol, deg, shard)[1]:
                return True
    return False


def finished(
    ws: Workspace,
    datasets: list[Dataset],
    protocol: Protocol,
    degradations: list[Degradation],
    methods: list[Method],
    wanted: set[str],
    shard: Shard = ALL,
) -> list[str] | None:
    """The run's labels when every (method, set) already has every ``wanted`` metric in the
    store (a finished re-run: no device, model or metric needs to be made ready), else None."""
    if not ws.root.is_dir():
        return None
    store = ResultStore(ws.root / "results")
    args = (datasets, protocol, degradations, shard)
    if any(_has_work(ws, store, wanted, m, *args) for m in methods):
        return None
    return [
        f"{m.id} {ds.name}/{protocol.name}/{deg.id}{shard.tag}"
        for m in methods
        for ds in datasets
        for deg in degradations
    ]


def check_before_work(
    methods: list[Method],
    datasets: list[Dataset],
    degradations: list[Degradation],
    set_kinds: dict[str, set[str]],
) -> None:
    """Stop before any work when a method cannot take a set (its declared capabilities) or a
    weight file of any method is missing: every problem of every method in one message."""
    problems = [
        f"{ds.name}/{deg.id}: {why}"
        for m in methods
        for ds in datasets
        for deg in degradations
        if (why := m.refusal(deg, set_kinds[ds.name]))
    ]
    kinds = tuple(sorted(set().union(*set_kinds.values())))
    missing = []
    for m in methods:
        try:
            m.check_weights(kinds)
        except WeightsMissingError as e:
            missing.append(str(e))
    if problems:
        missing.insert(0, "cannot run, nothing was done:\n  " + "\n  ".join(problems))
        raise BenchError("\n".join(missing))
    if missing:
        raise WeightsMissingError("\n".join(missing))


def run(
    ws: Workspace,
    datasets: list[Dataset],
    protocol: Protocol,
    degradations: list[Degradation],
    methods: list[Method],
    runner: MetricRunner,
    device: str = "cpu",
    dtype: str = "auto",
    jobs: int = 1,
    on_error: str = "skip",
    progress: bool = True,
    backend: str = "threading",
    shard: Shard = ALL,
    devices: list[str] | None = None,
) -> list[tuple[str, RunSummary]]:
    """Generate missing sets, then restore and score every (method, dataset, degradation).

    ``jobs``/``backend`` parallelise generation; scoring uses ``jobs`` threads per set. With two
    or more ``devices`` (``cpu,cpu``, ``cuda:0,cuda:1``), torch methods restore in one worker
    process per device (each loads them once) and ``device`` stays where metrics run.
    """
    ws.ensure_writable()
    store = ResultStore(ws.root / "results")
    devices = devices if devices and len(devices) > 1 else [device]
    pooled = [m for m in methods if m.uses_torch] if len(devices) > 1 else []
    info = run_info(device, dtype, devices=devices)
    set_kinds = {ds.name: expected_kinds(ds, protocol) for ds in datasets}
    kinds = tuple(sorted(set().union(*set_kinds.values())))
    # a finished re-run loads no model: methods with nothing left are never loaded
    wanted = {s.id for s in runner.specs}
    methods_with_work = [
        m
        for m in methods
        if _has_work(ws, store, wanted, m, datasets, protocol, degradations, shard)
    ]
    check_before_work(methods_with_work, datasets, degradations, set_kinds)
    pooled = [m for m in pooled if m in methods_with_work]
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(DevicePool(devices)) if pooled else None
        if pool is not None:
            pool.start(pooled, dtype, kinds)  # the workers load while this process goes on
        for method in methods_with_work:  # every missing weight file is named before any work
            if pool is None or not method.uses_torch:
                method.load(device, method.resolve_dtype(device, dtype), kinds=kinds)
        if pool is not None:
            pool.ready()
        results = []
        for ds in datasets:
            gen = generate(
                ws,
                ds,
                protocol,
                degradations,
                jobs=jobs,
                backend=backend,
                on_error=on_error,
                progress=progress,
                shard=shard,
            )
            for msg in gen.failed:
                results.append((f"generate {ds.name}", RunSummary(failed=[msg])))
        for method in methods:
            for ds in datasets:
                for deg in degradations:
                    s = run_method_on_set(
                        ws,
                        store,
                        runner,
                        method,
                        ds,
                        protocol,
                        deg,
                        info,
                        on_error=on_error,
                        progress=progress,
                        shard=shard,
                        jobs=jobs,
                        pool=pool,
                    )
                    label = f"{method.id} {ds.name}/{protocol.name}/{deg.id}{shard.tag}"
                    results.append((label, s))
    return results
