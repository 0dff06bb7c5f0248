"""The metric runner: load scorers once, score image pairs, never compute a value twice.

Values are cached by (metric variant, implementation, sha256 of the test pixels, sha256 of the
reference pixels) in an append-only journal under ``WORKSPACE/cache/metrics``, so re-scoring
the same output - after a crash, for another method that produced identical pixels, or in a new
run - costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carbench.bench.metrics.registry import MetricSpec
from carbench.bench.metrics.scorers import Scorer, build_scorer
from carbench.core.errors import BenchError, WeightsMissingError
from carbench.core.journal import JournalWriter, read_journal

log = logging.getLogger(__name__)


@dataclass
class Score:
    spec: MetricSpec
    value: float
    implementation: str
    seconds: float
    cached: bool


class MetricRunner:
    def __init__(
        self,
        specs: list[MetricSpec],
        device: str = "cpu",
        lenient: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        """Build every scorer up front. A metric that cannot load stops here (before any work)
        unless ``lenient``; then it is skipped and the reason kept in ``skipped``."""
        self.device = device
        self.scorers: list[Scorer] = []
        self.skipped: dict[str, str] = {}
        for spec in specs:
            try:
                self.scorers.append(build_scorer(spec, device))
            except WeightsMissingError as e:
                if not lenient:
                    raise
                self.skipped[spec.id] = str(e)  # every missing file named
        self.cache_dir = cache_dir
        self._cache: dict[tuple[str, str, str, str], float] = {}
        if cache_dir is not None:
            for r in read_journal(cache_dir):
                self._cache[(r["variant"], r["implementation"], r["test"], r["ref"])] = r["value"]
        self._journal = JournalWriter(cache_dir) if cache_dir is not None else None
        self._lock = threading.Lock()  # scoring may run on several threads

    @property
    def specs(self) -> list[MetricSpec]:
        return [s.spec for s in self.scorers]

    def score(
        self,
        test: np.ndarray,
        ref: np.ndarray | None,
        test_sha: str,
        ref_sha: str,
        only: set[str] | None = None,
    ) -> list[Score]:
        """Scores of ``test`` against ``ref`` for every loaded metric (or those in ``only``)."""
        if ref is not None and test.shape != ref.shape:
            raise BenchError(
                f"output is {test.shape[1]}x{test.shape[0]} but the ground truth is "
                f"{ref.shape[1]}x{ref.shape[0]}"
            )
        out, new = [], []
        for sc in self.scorers:
            if only is not None and sc.spec.id not in only:
                continue
            rkey = ref_sha if sc.spec.kind == "FR" else ""
            key = (sc.spec.id, sc.implementation, test_sha, rkey)
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                out.append(Score(sc.spec, cached, sc.implementation, 0.0, True))
                continue
            t0 = time.perf_counter()
            value = sc(test, ref if sc.spec.kind == "FR" else None)
            dt = time.perf_counter() - t0
            with self._lock:
                self._cache[key] = value
            new.append(
                {
                    "variant": key[0],
                    "implementation": key[1],
                    "test": key[2],
                    "ref": key[3],
                    "value": value,
                }
            )
            out.append(Score(sc.spec, value, sc.implementation, dt, False))
        if new and self._journal is not None:
            with self._lock:
                self._journal.write(new)
        return out

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
