"""The wheel (issue 22): built from the checkout, installed into a fresh virtual environment
outside it, it puts one package, ``carbench``, at the top of site-packages and runs ``bench
--version`` and the main job on the sample set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_one_namespace_and_runs_the_main_job(tmp_path):
    dist = tmp_path / "dist"
    # built from a copy: setuptools writes build/ into the tree it builds, and a stale
    # build/lib left in the checkout would carry deleted modules into later wheels
    src = tmp_path / "src"
    junk = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "bench-workspace")
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*junk))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(src)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("carbench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the dependencies come from the project's environment, read as plain folders: its .pth
    # files (the checkout's editable install among them) are not processed
    deps = [p for p in sys.path if p.endswith("site-packages")]
    deps = deps or [sysconfig.get_paths()["purelib"]]
    (site / "deps.pth").write_text("\n".join(deps) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", str(wheel)], check=True)
    files = subprocess.run(
        [*pip, "show", "-f", "carbench"], capture_output=True, text=True, check=True
    ).stdout
    listed = [ln.strip() for ln in files.split("Files:", 1)[1].splitlines() if ln.strip()]
    tops = {Path(f).parts[0] for f in listed if not f.startswith("..")}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"carbench"}, tops
    for generic in ("bench", "methods", "reports", "degradations", "core", "study"):
        assert not (site / generic).exists(), f"{generic} installed at the top of site-packages"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BENCH_WORKSPACE": str(tmp_path / "ws"),
        "HF_HUB_OFFLINE": "1",
    }
    work = tmp_path / "elsewhere"
    work.mkdir()
    bench = str(venv / "bin" / "bench")
    out = subprocess.run([bench, "--version"], capture_output=True, text=True, env=env, cwd=work)
    assert out.returncode == 0 and out.stdout.startswith("carbench 0.1.0"), out.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import carbench.core, carbench; "
         "print(carbench.core.__file__)"],
        capture_output=True, text=True, env=env, cwd=work, check=True,
    ).stdout.strip()
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    run = subprocess.run(
        [bench, "run", "--methods", "jpeg", "--metrics", "psnr,ssim", "--no-progress"],
        capture_output=True, text=True, env=env, cwd=work,
    )
    assert run.returncode == 0, run.stderr
    assert "jpeg sample/codiff/jpeg-q10: scored 4 image(s), 8 rows" in run.stdout
    rep = subprocess.run(
        [bench, "report", "--format", "csv"], capture_output=True, text=True, env=env, cwd=work
    )
    assert rep.returncode == 0 and "psnr:rgb" in rep.stdout
    assert os.path.isdir(tmp_path / "ws" / "results")


def test_every_package_folder_is_in_the_wheel_list():
    """pyproject's explicit package list (needed by the package-dir mapping) names every
    folder of the mapped packages, so a new subpackage cannot be left out of the wheel."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    for name, folder in cfg["package-dir"].items():
        for d in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            if d.is_dir() and d.name != "__pycache__" and any(d.iterdir()):
                rel = d.relative_to(ROOT / folder).parts
                assert ".".join([name, *rel]) in listed, d
