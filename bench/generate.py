"""``bench generate``: degraded test sets with a manifest per (dataset, protocol, degradation).

Work is per image: the source is read and prepared once, then every requested degradation is
applied. Each (image, degradation) ends with a small JSON record written after its files, all
through temp file + rename, so a killed run resumes where it stopped and a re-run does no work.
``manifest.parquet`` is rebuilt from the records at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.datasets import Dataset
from bench.errors import BenchError, DiskFullError, ImageError
from bench.imageio import read_image, write_bytes_atomic, write_png_atomic
from bench.parallel import run_tasks
from bench.protocols import Protocol
from bench.provenance import carbench_version
from bench.workspace import Workspace
from degradations import Degradation

log = logging.getLogger(__name__)


@dataclass
class GenerateSummary:
    """What a generate call did."""

    done: int = 0  # (image, degradation) pairs produced now
    skipped: int = 0  # already present
    failed: list[str] = field(default_factory=list)  # one message per failed image
    manifests: list[Path] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.done + self.skipped


@dataclass(frozen=True)
class _ImageTask:
    root: Path
    dataset: str
    protocol: Protocol
    source: Path
    degradations: tuple[Degradation, ...]


def _record_path(ws: Workspace, dataset: str, protocol: str, deg: str, image: str) -> Path:
    return ws.record_dir(dataset, protocol, deg) / f"{image}.json"


def pending(
    ws: Workspace, ds: Dataset, protocol: Protocol, degradations: Sequence[Degradation]
) -> dict[Path, list[Degradation]]:
    """Per source image, the degradations without a finished record."""
    todo: dict[Path, list[Degradation]] = {}
    for deg in degradations:
        rec_dir = ws.record_dir(ds.name, protocol.name, deg.id)
        present = {p.stem for p in rec_dir.glob("*.json")} if rec_dir.is_dir() else set()
        for src in ds.images:
            if src.stem not in present:
                todo.setdefault(src, []).append(deg)
    return todo


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _process_image(task: _ImageTask) -> tuple[int, str | None]:
    """Produce every pending degradation of one image. Returns (pairs done, error or None)."""
    ws = Workspace(task.root)
    image_id, proto = task.source.stem, task.protocol
    try:
        loaded = read_image(task.source)
        try:
            gt, gt_changed = proto.prepare(loaded.pixels)
        except ValueError as e:
            raise ImageError(task.source, str(e)) from None
        if gt_changed:
            gt_path = ws.gt_dir(task.dataset, proto.name) / f"{image_id}.png"
            if gt_path.exists():
                gt_sha = _sha256(gt_path.read_bytes())
            else:
                gt_sha = _sha256(write_png_atomic(gt_path, gt))
        else:
            gt_path, gt_sha = task.source, loaded.file_sha256
        done = 0
        for deg in task.degradations:
            try:
                deg.check_image(gt.shape)
                out = deg.apply(gt)
            except ValueError as e:
                raise ImageError(task.source, f"{deg.id}: {e}") from None
            ddir = ws.degradation_dir(task.dataset, proto.name, deg.id)
            bitstream = ddir / f"{image_id}{deg.bitstream_ext}"
            write_bytes_atomic(bitstream, out.bitstream)
            h, w = out.decoded.shape[:2]
            rec = {
                "dataset": task.dataset,
                "protocol": proto.name,
                "degradation": deg.id,
                "kind": deg.kind,
                "image": image_id,
                "width": w,
                "height": h,
                "channels": 1 if out.decoded.ndim == 2 else out.decoded.shape[2],
                "source_path": str(task.source),
                "source_sha256": loaded.file_sha256,
                "source_note": loaded.note,
                "gt_path": ws.rel(gt_path),
                "gt_sha256": gt_sha,
                "bitstream_path": ws.rel(bitstream),
                "bitstream_sha256": _sha256(out.bitstream),
                "bytes": len(out.bitstream),
                "bpp": len(out.bitstream) * 8 / (w * h),
                "decoded_path": None,
                "encoder": deg.encoder(),
                "carbench": carbench_version(),
                **{f"param_{k}": v for k, v in deg.params().items()},
                **{f"extra_{k}": v for k, v in (out.extra or {}).items()},
            }
            if out.gt_changed:
                dgt = ddir / "gt" / f"{image_id}.png"
                rec["gt_path"], rec["gt_sha256"] = (
                    ws.rel(dgt),
                    _sha256(write_png_atomic(dgt, out.gt)),
                )
            if deg.stores_decoded:
                dec = ddir / "decoded" / f"{image_id}.png"
                write_png_atomic(dec, out.decoded)
                rec["decoded_path"] = ws.rel(dec)
            write_bytes_atomic(
                _record_path(ws, task.dataset, proto.name, deg.id, image_id),
                json.dumps(rec, sort_keys=True).encode(),
            )
            done += 1
        return done, None
    except (ImageError, RuntimeError) as e:
        return 0, str(e)


def write_manifest(ws: Workspace, dataset: str, protocol: str, deg: str) -> Path | None:
    """Rebuild ``manifest.parquet`` of one degraded set from its records."""
    rec_dir = ws.record_dir(dataset, protocol, deg)
    records = [json.loads(p.read_text()) for p in sorted(rec_dir.glob("*.json"))]
    if not records:
        return None
    path = ws.manifest_path(dataset, protocol, deg)
    buf = io.BytesIO()
    pd.DataFrame.from_records(records).sort_values("image").to_parquet(buf, index=False)
    write_bytes_atomic(path, buf.getvalue())
    return path


def read_manifest(ws: Workspace, dataset: str, protocol: str, deg: str) -> pd.DataFrame:
    path = ws.manifest_path(dataset, protocol, deg)
    if not path.exists():
        raise BenchError(f"{path}: no manifest; run `bench generate` first")
    return pd.read_parquet(path)


def generate(
    ws: Workspace,
    ds: Dataset,
    protocol: Protocol,
    degradations: Sequence[Degradation],
    jobs: int = 1,
    backend: str = "threading",
    on_error: str = "skip",
    progress: bool = True,
) -> GenerateSummary:
    """Generate every missing (image, degradation) of a dataset under a protocol."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    summary = GenerateSummary()
    todo = pending(ws, ds, protocol, degradations)
    n_pairs = len(ds.images) * len(degradations)
    summary.skipped = n_pairs - sum(len(v) for v in todo.values())
    tasks = [_ImageTask(ws.root, ds.name, protocol, src, tuple(degs)) for src, degs in todo.items()]
    fail_fast = on_error == "fail"
    try:
        for done, err in run_tasks(
            _process_image,
            tasks,
            jobs=jobs,
            backend=backend,
            desc=f"{ds.name}/{protocol.name}",
            progress=progress,
        ):
            summary.done += done
            if err is not None:
                summary.failed.append(err)
                log.debug("failed: %s", err)
                if fail_fast:
                    raise BenchError(err)
    finally:
        if tasks or not all(
            ws.manifest_path(ds.name, protocol.name, d.id).exists() for d in degradations
        ):
            for deg in degradations:
                path = write_manifest(ws, ds.name, protocol.name, deg.id)
                if path is not None:
                    summary.manifests.append(path)
        else:
            summary.manifests = [
                ws.manifest_path(ds.name, protocol.name, d.id) for d in degradations
            ]
    return summary


__all__ = [
    "DiskFullError",
    "GenerateSummary",
    "generate",
    "pending",
    "read_manifest",
    "write_manifest",
]
