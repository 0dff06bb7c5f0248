"""The result store: append-only parquet parts under ``WORKSPACE/results``.

One row per (dataset, protocol, degradation, method, image, metric variant) with its value and
provenance. Parts are written atomically and never rewritten, so a crash loses at most the rows
in flight, stores from several machines merge by copying the part files, and the latest row
per key wins when loading.
"""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pandas as pd

from carbench.bench.metrics.registry import canonical_variant_id
from carbench.core.errors import BenchError
from carbench.core.imageio import write_bytes_atomic

KEY = ["dataset", "protocol", "degradation", "method", "image", "variant"]


def _read_part(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        raise BenchError(
            f"{path}: unreadable result-store part ({type(e).__name__}: {e}); "
            "move it aside and re-run `bench run` to recompute its rows"
        ) from None
    if "method" in df and len(df):
        df["method"] = df["method"].map(_canonical_methods(path, df["method"].unique()))
    return df


def _canonical_methods(path: Path, ids) -> dict[str, str]:
    """Each stored method id -> today's canonical id (rows written before an option's default
    was dropped from the id load as one method); an id today's declarations refuse stops the
    load, naming the part file."""
    from carbench import methods

    out = {}
    for mid in ids:
        try:
            out[mid] = methods.canonical(str(mid))
        except BenchError as e:
            raise BenchError(
                f"{path}: rows of method {mid!r} cannot be read with today's options ({e}); "
                "move the part aside or re-run that method"
            ) from None
    return out


class ResultStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._parts: dict[Path, pd.DataFrame] = {}  # parts are never rewritten: read once
        self._merged: tuple[tuple[Path, ...], pd.DataFrame] | None = None

    def _part(self, path: Path) -> pd.DataFrame:
        if path not in self._parts:
            self._parts[path] = _read_part(path)
        return self._parts[path]

    def parts(self) -> list[Path]:
        return sorted(self.root.glob("part-*.parquet")) if self.root.is_dir() else []

    def append(self, rows: list[dict]) -> Path | None:
        """Write rows as a new part; returns its path (None when there is nothing to write)."""
        if not rows:
            return None
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:10]}.parquet"
        buf = io.BytesIO()
        pd.DataFrame.from_records(rows).to_parquet(buf, index=False)
        path = self.root / name
        write_bytes_atomic(path, buf.getvalue())
        return path

    def _all(self) -> pd.DataFrame:
        """Every row, latest per key; recomputed only when a part was added."""
        parts = tuple(self.parts())
        if self._merged is None or self._merged[0] != parts:
            if not parts:
                df = pd.DataFrame(columns=[*KEY, "metric", "value"])
            else:
                df = pd.concat([self._part(p) for p in parts], ignore_index=True)
                if "variant" in df:  # stores written before a metric id was renamed still load
                    df["variant"] = df["variant"].map(canonical_variant_id)
                if "created" in df:
                    df = df.sort_values("created", kind="stable")
                df = df.drop_duplicates(KEY, keep="last").reset_index(drop=True)
            self._merged = (parts, df)
        return self._merged[1]

    def load(self, **filters: str | list[str]) -> pd.DataFrame:
        """All rows (latest per key), optionally filtered by column values."""
        df = self._all()
        for col, want in filters.items():
            if want is None:
                continue
            df = df[df[col].isin([want] if isinstance(want, str) else list(want))]
        return df.reset_index(drop=True).copy()

    def done_keys(self, **filters) -> set[tuple[str, str]]:
        """(image, variant) pairs already stored for the filtered slice."""
        df = self.load(**filters)
        return set(zip(df["image"], df["variant"], strict=True))
