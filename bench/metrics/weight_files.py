"""Fetching and checking the weight files of the metrics (the files are listed on each row of
``bench.metrics.registry``), in the layouts the libraries expect.

Everything lives in carbench's cache (``BENCH_CACHE``): ``torch/hub/checkpoints`` (torchvision),
``torch/hub/pyiqa`` (pyiqa), ``torch/hub/clip`` (CLIP), ``huggingface/hub`` (timm via the
Hugging Face cache). Runs point TORCH_HOME / HF_HOME there and set the Hugging Face offline
flags, so no metric touches the network mid-run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from carbench.bench.metrics import registry
from carbench.core.download import sha256_file
from carbench.core.errors import BenchError
from carbench.core.weights import WeightFile, cache_root, fetch_file, file_problem, present


def metric_weights() -> dict[str, tuple[WeightFile, ...]]:
    """Every metric with weight files, from the metric table (``registry.METRICS``)."""
    return {n: registry.weights_of(n) for n in registry.names() if registry.weights_of(n)}


def missing_files(metric: str, root: Path | None = None) -> list[str]:
    """One line per missing file: what it is and where it goes."""
    root = root or cache_root()
    return [
        f"{wf.name}: fetch {wf.source()} -> {root / wf.relpath}"
        for wf in registry.weights_of(metric)
        if present(wf, root) is None
    ]


def verify(metric: str, root: Path | None = None) -> list[str]:
    """Problems with a metric's files: missing, or a sha256 that does not match."""
    root = root or cache_root()
    problems = missing_files(metric, root)
    for wf in registry.weights_of(metric):
        p = present(wf, root)
        problem = None if p is None else file_problem(wf, p)
        if problem:
            problems.append(f"{p}: {problem}; delete it and fetch again")
    return problems


def fetch(metric: str, root: Path | None = None, mirror: str | None = None) -> list[Path]:
    """Put every file of ``metric`` into the cache and write the cache manifest."""
    root = root or cache_root()
    mirror = mirror or os.environ.get("BENCH_WEIGHTS_MIRROR")
    files = registry.weights_of(metric)
    if not files:
        raise BenchError(
            f"metric {metric!r} needs no weights or is unknown; with weights: "
            + ", ".join(metric_weights())
        )
    paths = [fetch_file(wf, root, mirror) for wf in files]
    write_manifest(root)
    return paths


def write_manifest(root: Path | None = None) -> Path:
    """``manifest.json`` in the cache: every present metric file with size and sha256."""
    root = root or cache_root()
    entries = []
    for metric, files in metric_weights().items():
        for wf in files:
            p = present(wf, root)
            if p is not None:
                entries.append(
                    {
                        "metric": metric,
                        "file": str(p.relative_to(root)),
                        "bytes": p.stat().st_size,
                        "sha256": sha256_file(p),
                        "expected_sha256": wf.sha256,
                        "source": wf.source(),
                    }
                )
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest.json"
    path.write_text(json.dumps(entries, indent=1))
    return path
