"""``--shard i/n``: a deterministic split of a dataset's images for job arrays."""

from __future__ import annotations

import re
from dataclasses import dataclass

from carbench.core.errors import BenchError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def take(self, items: list) -> list:
        """Every ``count``-th item starting at ``index`` (items in a stable order)."""
        return items[self.index :: self.count]

    @property
    def tag(self) -> str:
        return "" if self.count == 1 else f"-shard{self.index}of{self.count}"


ALL = Shard(0, 1)


def parse_shard(text: str | None) -> Shard:
    if not text:
        return ALL
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not (0 <= int(m[1]) < int(m[2])):
        raise BenchError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return Shard(int(m[1]), int(m[2]))
