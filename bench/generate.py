"""``bench generate``: degraded test sets with a manifest per (dataset, protocol, degradation).

Work is per image: the source is read and prepared once, then every pending degradation is
applied. Workers write bitstreams (and ground truths or decoded PNGs where needed) through
temp file + rename and return one record per (image, degradation); the calling process appends
the records to the set's journal. A killed run therefore resumes where it stopped, a re-run
does no work, and ``manifest.parquet`` is rebuilt from the journal at the end.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from carbench.bench.datasets import Dataset
from carbench.bench.protocols import Protocol
from carbench.core.errors import BenchError, ImageError
from carbench.core.imageio import read_image, write_bytes_atomic, write_png_atomic
from carbench.core.journal import JournalWriter, read_journal
from carbench.core.locks import exclusive
from carbench.core.parallel import run_tasks
from carbench.core.provenance import carbench_version
from carbench.core.shard import ALL, Shard
from carbench.core.workspace import Workspace
from carbench.degradations import Degradation, from_id
from carbench.degradations.base import as_array, image_shape

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class GenerateSummary:
    """What a generate call did."""

    done: int = 0  # (image, degradation) pairs produced now
    skipped: int = 0  # already present
    failed: list[str] = field(default_factory=list)  # one message per failed image
    notes: dict[str, list[str]] = field(default_factory=dict)  # conversion note -> images
    manifests: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _ImageTask:
    root: Path
    dataset: str
    protocol: Protocol
    source: Path
    degradations: tuple[Degradation, ...]


def _journal_dir(ws: Workspace, dataset: str, protocol: str) -> Path:
    return ws.set_dir(dataset, protocol) / ".journal"


def finished_records(ws: Workspace, dataset: str, protocol: str) -> dict[tuple[str, str], dict]:
    """Journal records of a set by (degradation, image); the last one wins."""
    return {
        (r["degradation"], r["image"]): r for r in read_journal(_journal_dir(ws, dataset, protocol))
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_and_hash(path: Path, data: bytes) -> str:
    write_bytes_atomic(path, data)
    return _sha256(data)


def _process_image(task: _ImageTask, ahead=None) -> tuple[list[dict], str | None]:
    """Produce every pending degradation of one image. Returns (records, error or None).

    The source's sha256 and each bitstream's write and sha256 run in a helper thread while
    the next codec call runs (hashing, file I/O and OpenCV's codecs release the GIL); the
    records are returned only after every file is written, so the journal never names a
    file that is not there."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="carbench-io") as io:
        records, pending, err = _degrade_image(task, io, ahead)
        for rec, written in pending:  # a failed write raises here, as it would inline
            rec["bitstream_sha256"] = written.result()
    return records, err


def _degrade_image(task: _ImageTask, io, ahead=None) -> tuple[list[dict], list, str | None]:
    ws = Workspace(task.root)
    image_id, proto = task.source.stem, task.protocol
    records: list[dict] = []
    pending: list = []
    try:
        # read ahead (one worker): the source was read and decoded while the previous image
        # encoded; its errors surface here, as an inline read's would
        loaded = ahead.result() if ahead is not None else read_image(task.source, hasher=io)
        try:
            gt, gt_changed = proto.prepare(loaded.decoded)
        except ValueError as e:
            raise ImageError(task.source, str(e)) from None
        # once, and read-only: every encoder takes the array, and one that cannot change lets
        # them reuse conversions (JPEG's BGR copy is made once for all QFs)
        gt = as_array(gt)
        if gt.base is not None:
            gt = gt.copy()
        gt.flags.writeable = False
        if gt_changed:
            gt_path = ws.gt_dir(task.dataset, proto.name) / f"{image_id}.png"
            gt_sha = _sha256(write_png_atomic(gt_path, gt))
        else:
            gt_path, gt_sha = task.source, loaded.file_sha256
        shape = image_shape(gt)
        gt_rel = ws.rel(gt_path)
        common = {
            "dataset": task.dataset,
            "protocol": proto.name,
            "image": image_id,
            "source_path": str(task.source),
            "source_sha256": loaded.file_sha256,
            "source_note": loaded.note,
            "carbench": carbench_version(),
        }
        for deg in task.degradations:
            try:
                deg.check_image(shape)
                out = deg.apply(gt)
            except ValueError as e:
                raise ImageError(task.source, f"{deg.id}: {e}") from None
            ddir = ws.degradation_dir(task.dataset, proto.name, deg.id)
            bitstream = ddir / f"{image_id}{deg.bitstream_ext}"
            written = io.submit(_write_and_hash, bitstream, out.bitstream)
            out_shape = image_shape(out.gt)
            h, w = out_shape[:2]
            rec = {
                **common,
                "degradation": deg.id,
                "kind": deg.kind,
                "width": w,
                "height": h,
                "channels": 1 if len(out_shape) == 2 else out_shape[2],
                "gt_path": gt_rel,
                "gt_sha256": gt_sha,
                "bitstream_path": ws.rel(bitstream),
                "bitstream_sha256": None,  # filled in when written (same column order)
                "bytes": len(out.bitstream),
                "bpp": len(out.bitstream) * 8 / (w * h),
                "decoded_path": None,
                "encoder": deg.encoder(),
                **{f"param_{k}": v for k, v in deg.params().items()},
                **{f"extra_{k}": v for k, v in (out.extra or {}).items()},
            }
            if out.gt_changed:
                dgt = ddir / "gt" / f"{image_id}.png"
                rec["gt_path"] = ws.rel(dgt)
                rec["gt_sha256"] = _sha256(write_png_atomic(dgt, as_array(out.gt)))
            if deg.stores_decoded:
                dec = ddir / "decoded" / f"{image_id}.png"
                write_png_atomic(dec, out.decoded)
                rec["decoded_path"] = ws.rel(dec)
            records.append(rec)
            pending.append((rec, written))
        return records, pending, None
    except (ImageError, RuntimeError) as e:
        return records, pending, str(e)


def write_manifest(ws: Workspace, degradation: str, records: list[dict]) -> Path | None:
    """Write ``manifest.parquet`` of one degraded set from its records."""
    if not records:
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    r0 = records[0]
    path = ws.manifest_path(r0["dataset"], r0["protocol"], degradation)
    rows = sorted(records, key=lambda r: r["image"])
    columns = list(dict.fromkeys(k for r in rows for k in r))  # union, first-seen order
    table = manifest_table_via_json(rows, columns)
    if table is None:
        table = manifest_table(rows, columns)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    write_bytes_atomic(path, buf.getvalue().to_pybytes())
    return path


def manifest_table(rows: list[dict], columns: list[str]):
    """The manifest as pyarrow infers it from the Python values (``pa.table``). pyarrow
    imports pandas on its first array from Python objects (0.15 s), which generating needs
    nowhere else: :func:`manifest_table_via_json` builds the same table without it."""
    import pyarrow as pa

    return pa.table({k: [r.get(k) for r in rows] for k in columns})


def _inferred_type(values: list):
    """The type ``pa.array`` infers for these Python scalars, or None where that takes
    more than this rule (numpy scalars, lists, mixed bool/int, non-finite floats, ints
    beyond int64)."""
    import math

    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if not kinds <= {bool, int, float, str}:
        return None
    if not kinds:
        return pa.null()
    if kinds == {int} and not all(-(2**63) <= v < 2**63 for v in values if v is not None):
        return None  # pyarrow makes these uint64 or refuses them
    if kinds in ({bool}, {int}, {str}):
        return {bool: pa.bool_(), int: pa.int64(), str: pa.string()}[kinds.pop()]
    if kinds <= {int, float}:
        finite = all(math.isfinite(v) and abs(v) < 2**53 for v in values if v is not None)
        return pa.float64() if finite else None
    return None


def manifest_table_via_json(rows: list[dict], columns: list[str]):
    """:func:`manifest_table`'s table, built by pyarrow's JSON reader with the inferred types
    given (no pandas import); None where a column's type is not plain (then use that)."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.json as pj

    fields = []
    for k in columns:
        kind = _inferred_type([r.get(k) for r in rows])
        if kind is None:
            return None
        fields.append(pa.field(k, kind))
    data = "".join(json.dumps({k: r.get(k) for k in columns}) + "\n" for r in rows).encode()
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=pj.ParseOptions(
            explicit_schema=pa.schema(fields), unexpected_field_behavior="error"
        ),
    ).combine_chunks()


def read_manifest(ws: Workspace, dataset: str, protocol: str, deg: str) -> pd.DataFrame:
    """A set's manifest as a data frame (pandas is imported here: generating needs none)."""
    import pandas as pd

    path = ws.manifest_path(dataset, protocol, deg)
    if not path.exists():
        raise BenchError(f"{path}: no manifest; run `bench generate` first")
    return pd.read_parquet(path)


def decoded_input(ws: Workspace, rec, deg: str) -> np.ndarray:
    """What a method sees for one manifest record: the stored decoded PNG where the set keeps
    one, else the kind's own decode of the stored bitstream (JPEG sets)."""
    decoded = rec.get("decoded_path")
    if isinstance(decoded, str) and decoded:
        return read_image(ws.resolve(decoded)).pixels
    path = ws.resolve(rec["bitstream_path"])
    try:
        return from_id(deg).decode(path.read_bytes())
    except OSError as e:
        raise ImageError(path, f"cannot decode the stored bitstream ({e})") from None


def generate(
    ws: Workspace,
    ds: Dataset,
    protocol: Protocol,
    degradations: Sequence[Degradation],
    jobs: int = 1,
    backend: str = "threading",
    on_error: str = "skip",
    progress: bool = True,
    shard: Shard = ALL,
) -> GenerateSummary:
    """Generate every missing (image, degradation) of a dataset (or one shard of it) under a
    protocol. Holds a lock per (set, shard), so a second process waits instead of redoing."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    ws.ensure_writable()
    for deg in degradations:
        try:
            deg.check_available()
        except RuntimeError as e:
            raise BenchError(str(e)) from None
    lock = ws.set_dir(ds.name, protocol.name) / f".lock{shard.tag}"
    with exclusive(lock, f"{ds.name}/{protocol.name}{shard.tag}"):
        return _generate(ws, ds, protocol, degradations, jobs, backend, on_error, progress, shard)


def _run_image_tasks(tasks, jobs, backend, ds, protocol, progress):
    """``_process_image`` over the tasks. With one worker in this process, the next source is
    read and decoded in a helper thread while the current one encodes (OpenCV and hashing
    release the GIL), as a pipeline; otherwise the back-end's workers share the tasks."""
    desc = f"{ds.name}/{protocol.name}"
    if jobs > 1 or backend not in ("threading", "sequential"):
        yield from run_tasks(_process_image, tasks, jobs=jobs, backend=backend, desc=desc,
                             progress=progress)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="carbench-read") as reader:
        futures = {}

        def step(i: int):
            if i + 1 < len(tasks):
                futures[i + 1] = reader.submit(read_image, tasks[i + 1].source)
            ahead = futures.pop(i, None)
            return _process_image(tasks[i], ahead)

        yield from run_tasks(step, list(range(len(tasks))), jobs=1, backend="sequential",
                             desc=desc, progress=progress)


def _generate(ws, ds, protocol, degradations, jobs, backend, on_error, progress, shard):
    summary = GenerateSummary()
    done = finished_records(ws, ds.name, protocol.name)
    tasks = []
    for src in shard.take(ds.images):
        todo = tuple(d for d in degradations if (d.id, src.stem) not in done)
        summary.skipped += len(degradations) - len(todo)
        if todo:
            tasks.append(_ImageTask(ws.root, ds.name, protocol, src, todo))
    if jobs > 1:  # largest first, so no worker is left with a big image at the end
        tasks.sort(key=lambda t: t.source.stat().st_size, reverse=True)
    manifests = [ws.manifest_path(ds.name, protocol.name, d.id) for d in degradations]
    if not tasks and all(m.exists() for m in manifests):
        summary.manifests = manifests
        return summary
    failure: BaseException | None = None
    try:
        with JournalWriter(_journal_dir(ws, ds.name, protocol.name)) as journal:
            for records, err in _run_image_tasks(tasks, jobs, backend, ds, protocol, progress):
                journal.write(records)
                for r in records:
                    done[(r["degradation"], r["image"])] = r
                    if r.get("source_note"):
                        imgs = summary.notes.setdefault(r["source_note"], [])
                        if r["image"] not in imgs:
                            imgs.append(r["image"])
                summary.done += len(records)
                if err is not None:
                    summary.failed.append(err)
                    log.debug("failed: %s", err)
                    if on_error == "fail":
                        raise BenchError(err)
    except BaseException as e:
        failure = e
        raise
    finally:
        try:
            for deg in degradations:
                recs = [r for (d, _), r in done.items() if d == deg.id]
                path = write_manifest(ws, deg.id, recs)
                if path is not None:
                    summary.manifests.append(path)
        except BenchError:
            if failure is None:
                raise  # otherwise keep the first error; the journal has every finished pair
    return summary
