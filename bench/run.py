"""``bench run``: generate what is missing, restore with each method, score, store.

Per (dataset, protocol, degradation, method) the manifest lists the images; images whose every
requested metric is already in the store are skipped without being read. Restored images are
saved as PNG (atomic) under ``outputs/`` for methods that make new pixels, metric values are
cached by content hash, and store parts are flushed every ``flush_every`` images, so a killed
run loses at most the rows of the last few images and recomputes nothing on resume.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.datasets import Dataset, pixel_sha256
from bench.errors import BenchError, ImageError
from bench.generate import generate, read_manifest
from bench.imageio import read_image, write_png_atomic
from bench.metrics.runner import MetricRunner
from bench.protocols import Protocol
from bench.provenance import carbench_version, git_sha
from bench.store import ResultStore
from bench.workspace import Workspace
from degradations import Degradation
from degradations.jpeg import decode_jpeg
from methods.base import Method, Sample

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    scored: int = 0  # images scored now
    skipped: int = 0  # images already complete in the store
    rows: int = 0
    failed: list[str] = field(default_factory=list)
    parts: list[Path] = field(default_factory=list)


def output_path(
    ws: Workspace, method: Method, dataset: str, protocol: str, deg: str, image: str
) -> Path:
    safe = method.id.replace(":", "_").replace("=", "-").replace(",", "_").replace("/", "_")
    return ws.root / "outputs" / safe / dataset / protocol / deg / f"{image}.png"


def _decoded(ws: Workspace, rec) -> np.ndarray:
    if rec.get("decoded_path"):
        return read_image(ws.resolve(rec["decoded_path"])).pixels
    path = ws.resolve(rec["bitstream_path"])
    try:
        return decode_jpeg(path.read_bytes())
    except OSError as e:
        raise ImageError(path, f"cannot decode the stored bitstream ({e})") from None


def _params(rec) -> dict:
    return {k[len("param_") :]: v for k, v in rec.items() if k.startswith("param_") and v == v}


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
) -> RunSummary:
    from tqdm import tqdm

    summary = RunSummary()
    manifest = read_manifest(ws, ds.name, protocol.name, deg.id)
    wanted = {s.id for s in runner.specs}
    done = store.done_keys(
        dataset=ds.name, protocol=protocol.name, degradation=deg.id, method=method.id
    )
    rows: list[dict] = []

    def flush() -> None:
        part = store.append(rows)
        if part is not None:
            summary.parts.append(part)
            summary.rows += len(rows)
        rows.clear()

    have: dict[str, set[str]] = {}
    for image, variant in done:
        have.setdefault(image, set()).add(variant)
    records = manifest.to_dict("records")
    todo = [r for r in records if not wanted <= have.get(r["image"], set())]
    summary.skipped = len(records) - len(todo)
    bar = tqdm(
        todo,
        desc=f"{method.id} {ds.name}/{deg.id}",
        unit="img",
        leave=False,
        disable=not progress or not todo,
    )
    try:
        for rec in bar:
            image = rec["image"]
            try:
                gt = read_image(ws.resolve(rec["gt_path"])).pixels
                out_path = output_path(ws, method, ds.name, protocol.name, deg.id, image)
                restore_s = peak_mb = float("nan")
                sample = Sample(
                    image, None, ws.resolve(rec["bitstream_path"]), deg.id, _params(rec)
                )
                if method.saves_outputs and out_path.exists():
                    out = read_image(out_path).pixels
                else:
                    sample.decoded = _decoded(ws, rec)
                    t0 = time.perf_counter()
                    _reset_peak(method.device)
                    out = method.restore(sample)
                    restore_s = time.perf_counter() - t0
                    peak_mb = _peak_mb(method.device)
                    if method.saves_outputs:
                        write_png_atomic(out_path, out)
                src = out_path if method.saves_outputs else method.output_source(sample)
                src_rel = ws.rel(src) if src is not None else None
                missing = wanted - have.get(image, set())
                scores = runner.score(out, gt, pixel_sha256(out), rec["gt_sha256"], only=missing)
            except (ImageError, BenchError, ValueError) as e:
                msg = f"{image} ({method.id}, {ds.name}/{protocol.name}/{deg.id}): {e}"
                summary.failed.append(msg)
                if on_error == "fail":
                    raise BenchError(msg) from None
                continue
            created = time.time()
            for s in scores:
                rows.append(
                    {
                        "dataset": ds.name,
                        "protocol": protocol.name,
                        "degradation": deg.id,
                        "method": method.id,
                        "image": image,
                        "metric": s.spec.name,
                        "variant": s.spec.id,
                        "value": s.value,
                        "higher_better": s.spec.higher_better,
                        "kind": s.spec.kind,
                        "implementation": s.implementation,
                        "metric_seconds": s.seconds,
                        "restore_seconds": restore_s,
                        "peak_mem_mb": peak_mb,
                        "output_path": src_rel,
                        "bpp": rec.get("bpp"),
                        "gt_sha256": rec["gt_sha256"],
                        "method_weights_sha256": method.weights_sha256(),
                        "created": created,
                        **run_info,
                    }
                )
            summary.scored += 1
            if summary.scored % flush_every == 0:
                flush()
    finally:
        flush()
        bar.close()
    return summary


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
            kinds.add("gray" if read_image(p).image.mode == "L" else "rgb")
        except ImageError:
            continue
    return kinds or {"rgb"}


def run_info(device: str, dtype: str, seed: int | None = None) -> dict:
    """Provenance shared by every row of one ``bench run``."""
    return {
        "run_id": uuid.uuid4().hex[:12],
        "carbench": carbench_version(),
        "git_sha": git_sha(),
        "device": device,
        "dtype": dtype,
        "seed": seed,
        "host": platform.node(),
        "pid": os.getpid(),
    }


def run(
    ws: Workspace,
    datasets: list[Dataset],
    protocol: Protocol,
    degradations: list[Degradation],
    methods: list[Method],
    runner: MetricRunner,
    device: str = "cpu",
    dtype: str = "fp32",
    jobs: int = 1,
    on_error: str = "skip",
    progress: bool = True,
) -> list[tuple[str, RunSummary]]:
    """Generate missing sets, then restore and score every (method, dataset, degradation)."""
    store = ResultStore(ws.root / "results")
    info = run_info(device, dtype)
    kinds = set().union(*(expected_kinds(ds, protocol) for ds in datasets))
    for method in methods:  # every missing weight file is reported before any work
        method.load(device, dtype, kinds=tuple(sorted(kinds)))
    results = []
    for ds in datasets:
        gen = generate(
            ws, ds, protocol, degradations, jobs=jobs, on_error=on_error, progress=progress
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
                )
                results.append((f"{method.id} {ds.name}/{protocol.name}/{deg.id}", s))
    return results
