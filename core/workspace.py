"""The on-disk workspace layout (default ``./bench-workspace``, or ``BENCH_WORKSPACE``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_workspace() -> Path:
    return Path(os.environ.get("BENCH_WORKSPACE", "bench-workspace"))


@dataclass(frozen=True)
class Workspace:
    root: Path

    def ensure_writable(self) -> None:
        """Raise a clear error now, rather than mid-run, when the workspace cannot be written."""
        from carbench.core.errors import BenchError

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise BenchError(
                f"workspace {self.root} is not writable ({e.strerror}); choose "
                "another with --workspace or BENCH_WORKSPACE"
            ) from None

    def set_dir(self, dataset: str, protocol: str) -> Path:
        return self.root / "sets" / dataset / protocol

    def gt_dir(self, dataset: str, protocol: str) -> Path:
        """Ground truths changed by the protocol (resized, converted)."""
        return self.set_dir(dataset, protocol) / "gt"

    def degradation_dir(self, dataset: str, protocol: str, degradation: str) -> Path:
        return self.set_dir(dataset, protocol) / degradation

    def record_dir(self, dataset: str, protocol: str, degradation: str) -> Path:
        return self.degradation_dir(dataset, protocol, degradation) / ".records"

    def manifest_path(self, dataset: str, protocol: str, degradation: str) -> Path:
        return self.degradation_dir(dataset, protocol, degradation) / "manifest.parquet"

    def rel(self, path: Path) -> str:
        """Path relative to the workspace when inside it (portable), else absolute."""
        try:  # paths built from the root (the hot path): no filesystem access
            return str(Path(path).relative_to(self.root))
        except ValueError:
            pass
        return os.path.abspath(path)

    def resolve(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p
