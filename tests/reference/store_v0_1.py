"""Re-create tests/data/store_v0.1 (a result store and baseline written by carbench 0.1.0, read by
tests/test_metric_ids.py) with that release's own code.

Usage: python tests/reference/store_v0_1.py /path/to/carbench-0.1-checkout OUT_DIR
(carbench's .venv; the checkout is ``git archive 289930d`` of this repository, commit
289930dd3a98ec1490f3b023fbfbf8a4c4a5c0d6, carbench 0.1.0).

Runs, with the checkout first on ``PYTHONPATH`` and a fresh workspace: ``bench run --methods
jpeg --degradation jpeg:q=10 --metrics psnr,psnrb,psnrb:swinir`` (the embedded ``sample`` set,
protocol ``codiff``), then ``bench check --update --baseline OUT_DIR/baseline.csv``, and copies
the store's part file into OUT_DIR. The part file's name holds the write time and a random id,
and the rows hold timings, host and pid, so a rebuild gives the same metric rows under another
name, not the same bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = ["run", "--methods", "jpeg", "--degradation", "jpeg:q=10"]
RUN += ["--metrics", "psnr,psnrb,psnrb:swinir", "--no-progress"]


def bench(checkout: Path, ws: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout), "BENCH_WORKSPACE": str(ws)}
    code = "import sys; from bench.cli import main; sys.exit(main(sys.argv[1:]))  # 0.1.0 layout"
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, cwd=checkout)


def main(checkout: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        bench(checkout, ws, *RUN)
        bench(checkout, ws, "check", "--update", "--baseline", str(out / "baseline.csv"))
        for part in ws.rglob("part-*.parquet"):
            shutil.copyfile(part, out / part.name)
            print(out / part.name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
