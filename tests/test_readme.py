"""The README is the front door (issue 22): under 10k characters, its covered table generated
from the registries, and every command in it run here as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BENCH = [sys.executable, "-m", "carbench"]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    """The ``bench ...`` commands of the README's "Four commands" block, comments dropped."""
    four = README.split("## Four commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", four, flags=re.S)[1]
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


def test_readme_is_short_and_its_covered_table_is_generated():
    from carbench.cli.docgen import covered_table

    assert len(README) < 10_000, len(README)
    start, end = "<!-- covered:start", "<!-- covered:end -->"
    inner = README.split(start, 1)[1].split("-->", 1)[1].split(end, 1)[0]
    assert inner.strip() == covered_table().strip(), "regenerate the README's covered table"


def test_main_job_as_written(tmp_path):
    """The set-up line's main job (set-up itself is what .ci/run runs first)."""
    line = blocks("bash")[0].strip()
    setup, *jobs = [part.strip() for part in line.split("&&")]
    assert setup == "bash scripts/setup.sh"
    env = {**os.environ, "BENCH_WORKSPACE": str(tmp_path / "ws")}
    for job in jobs:
        args = shlex.split(job)
        assert args[0] == ".venv/bin/bench"
        out = subprocess.run([*BENCH, *args[1:]], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
    assert "psnr:rgb" in out.stdout and "sample" in out.stdout  # the CSV table


@pytest.mark.slow
def test_four_commands_as_written(tmp_path, data_root):
    env = {**os.environ, "BENCH_WORKSPACE": str(tmp_path / "ws"), "BENCH_DATA_ROOT": str(data_root)}
    env["BENCH_WEIGHTS_DIR"] = str(tmp_path / "no-weights")

    def bench(args, code=0):
        out = subprocess.run([*BENCH, *args], capture_output=True, text=True, env=env,
                             cwd=tmp_path)
        assert out.returncode == code, (args, out.stdout[-2000:], out.stderr[-2000:])
        return out

    generate, run, report, check = commands()
    assert generate[:2] == ["bench", "generate"] and run[:2] == ["bench", "run"]
    bench(generate[1:])
    # without weights: stops before any work, naming every file, its source and destination
    err = bench(run[1:], code=1).stderr
    wanted = ("codiff.pkl", "cave.pth", "diffusion_pytorch_model.safetensors", "fbcnn_color.pth")
    for name in wanted:
        assert name in err, err
    assert str(tmp_path / "no-weights") in err
    # the same run with the method that needs no weights, then the table and the check
    bench(["run", "--methods", "jpeg", *run[4:]])
    bench(report[1:])
    assert "\\begin{tabular}" in (tmp_path / "table.tex").read_text()
    baseline = check[check.index("--baseline") + 1]
    bench([*check[1:], "--update"])
    assert (tmp_path / baseline).is_file()
    bench(check[1:])


def test_python_snippet_as_written(tmp_path):
    code = blocks("python")[0].replace("my_torch_module", "torch.nn.Identity()")
    env = {**os.environ, "BENCH_WORKSPACE": str(tmp_path / "ws")}
    script = "import torch\n" + code
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "mine" in out.stdout  # the identity module's row in the Markdown table
