"""A stand-in torch method for the device-pool tests, importable by spawned workers and by a
``bench run`` in a subprocess (``run_api``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from carbench.methods.base import Method, Sample


class Flaky(Method):
    """Returns the decoded input after ``FLAKY_SLEEP`` seconds; in a worker process, dies
    (``FLAKY_CRASH=<image>``) or raises (``FLAKY_RAISE=<image>``) on the named image."""

    name = "flaky"
    uses_torch = True

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        super().load(device, dtype)
        self._weights_sha = "flaky-weights"

    def restore(self, sample: Sample) -> np.ndarray:
        time.sleep(float(os.environ.get("FLAKY_SLEEP", "0")))
        if sample.image == os.environ.get("FLAKY_CRASH"):
            os._exit(3)
        if sample.image == os.environ.get("FLAKY_RAISE"):
            raise RuntimeError("CUDA out of memory (stand-in)")
        return sample.decoded


def run_api(ws: Path, folder: Path, devices: list[str] | None):
    """``bench run`` of Flaky on ``folder`` (fbcnn, jpeg-q10, psnr) through the run() API."""
    from carbench.bench.datasets import resolve
    from carbench.bench.metrics.registry import parse_metrics
    from carbench.bench.metrics.runner import MetricRunner
    from carbench.bench.protocols import get_protocol
    from carbench.bench.run import run
    from carbench.core.workspace import Workspace
    from carbench.degradations import expand_all

    ws = Path(ws)
    specs, _ = parse_metrics("psnr")
    runner = MetricRunner(specs, "cpu", cache_dir=ws / "cache" / "metrics")
    try:
        return run(
            Workspace(ws),
            [resolve(str(folder), ws)],
            get_protocol("fbcnn"),
            expand_all(["jpeg-q10"]),
            [Flaky()],
            runner,
            progress=False,
            devices=devices,
        )
    finally:
        runner.close()
