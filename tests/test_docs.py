"""The docs: the extending page's code runs as written; the generated reference pages match
the registries; the README's covered table is generated."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_extending_page_runs(tmp_path):
    text = (ROOT / "docs" / "extending.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    script = tmp_path / "extending.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "BENCH_WORKSPACE": str(tmp_path / "ws")}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    import pandas as pd

    rows = pd.concat(pd.read_parquet(p) for p in (tmp_path / "ws" / "results").glob("*.parquet"))
    assert {"identity", "box", "box:size=5"} <= set(rows.method)
    mae = rows[(rows.metric == "mae")]
    assert len(mae) == 4 and (mae.value > 0).all()  # 4 sample images, quant-s16


def test_reference_pages_match_the_registries():
    from carbench import methods
    from carbench.bench.datasets import registry
    from carbench.bench.metrics.registry import METRICS
    from carbench.cli.docgen import PAGES, reference_page
    from carbench.degradations.base import KINDS

    pages = {name: reference_page(name) for name in PAGES}
    for name in methods.registry():
        assert f"| `{name}` |" in pages["methods.md"]
    for m in METRICS:
        assert f"`{m.id}`" in pages["metrics.md"]
    for kind, cls in KINDS.items():
        assert f"| `{kind}` |" in pages["degradations.md"] and cls.spec_example in pages[
            "degradations.md"
        ]
    for d in registry():
        assert f"| `{d}` |" in pages["datasets.md"]
    # a row worked out by hand from fbcnn's class
    assert "| `fbcnn` | FBCNN | cnn | https://arxiv.org/abs/2109.14573 | Apache-2.0 |" in (
        pages["methods.md"]
    )
