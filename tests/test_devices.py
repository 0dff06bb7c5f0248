"""``bench run --devices``: one worker process per device gives exactly the serial result."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from carbench.bench.store import KEY, ResultStore
from carbench.core.device_pool import parse_devices
from carbench.core.errors import BenchError
from conftest import run_cli
from fake_methods import run_api

ROOT = Path(__file__).resolve().parents[1]
SAME = [*KEY, "metric", "value", "output_path", "method_weights_sha256", "device", "dtype", "bpp"]


@pytest.fixture
def small_set(tmp_path, astronaut, coffee, camera) -> Path:
    """Three small images (two colour, one gray): quick for DnCNN-3 on CPU."""
    folder = tmp_path / "small"
    folder.mkdir()
    Image.fromarray(astronaut[40:136, 180:300]).save(folder / "a.png")
    Image.fromarray(coffee[100:180, 200:296]).save(folder / "b.png")
    Image.fromarray(camera[100:196, 50:146]).save(folder / "c.png")
    return folder


def _outputs(ws: Path) -> dict[str, bytes]:
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted((ws / "outputs").rglob("*.png"))}


def _rows(ws: Path) -> pd.DataFrame:
    df = ResultStore(ws / "results").load()
    return df.sort_values(KEY).reset_index(drop=True)


def _run(ws: Path, folder: Path, method: str, *extra: str) -> int:
    return run_cli(
        "run", "-w", ws, "--methods", method, "-d", folder, "-p", "fbcnn", "-g", "jpeg-q10",
        "--metrics", "psnr,ssim", "--no-progress", *extra,
    )  # fmt: skip


@pytest.mark.slow
def test_two_cpu_workers_equal_the_serial_run(
    tmp_path, small_set, dncnn3_weights, monkeypatch, capsys
):
    """dncnn3 on real weights: --devices cpu,cpu gives byte-identical outputs and the same rows
    as --device cpu, and both worker processes restored images."""
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(dncnn3_weights))
    serial, pooled = tmp_path / "serial", tmp_path / "pooled"
    assert _run(serial, small_set, "dncnn3", "--device", "cpu") == 0
    assert _run(pooled, small_set, "dncnn3", "--devices", "cpu,cpu") == 0
    out = capsys.readouterr().out
    assert "restoring on cpu, cpu (one worker process each)" in out
    assert "dncnn3 small/fbcnn/jpeg-q10: scored 3 image(s), 6 rows" in out
    assert _outputs(pooled) == _outputs(serial) and len(_outputs(serial)) == 3
    a, b = _rows(serial), _rows(pooled)
    pd.testing.assert_frame_equal(a[SAME], b[SAME])
    assert set(a.devices) == {"cpu"} and set(b.devices) == {"cpu,cpu"}
    assert set(a.worker_pid) == {os.getpid()}
    workers = set(b.worker_pid)
    assert len(workers) == 2 and os.getpid() not in workers, "both workers must restore"
    assert b.restore_seconds.notna().all()
    assert _run(pooled, small_set, "dncnn3", "--devices", "cpu,cpu") == 0  # resumable, no work
    assert "nothing to do (all in the store)" in capsys.readouterr().out


@pytest.mark.slow
def test_worker_crash_names_device_and_image_and_keeps_finished_rows(
    tmp_path, small_set, monkeypatch
):
    ws = tmp_path / "ws"
    monkeypatch.setenv("FLAKY_CRASH", "b")  # the second image: the second worker's first
    with pytest.raises(BenchError) as err:
        run_api(ws, small_set, ["cpu", "cpu"])
    msg = str(err.value)
    assert msg.startswith("the worker on cpu (pid ") and msg.endswith(
        ") died while restoring b (flaky, small/fbcnn/jpeg-q10); finished images are stored, "
        "re-run to resume"
    )
    assert sorted(set(_rows(ws).image)) == ["a", "c"]  # the other worker's images were stored
    monkeypatch.delenv("FLAKY_CRASH")
    run_api(ws, small_set, ["cpu", "cpu"])  # resumes: only b is left
    raw = pd.concat([pd.read_parquet(p) for p in ResultStore(ws / "results").parts()])
    assert sorted(raw.image) == ["a", "b", "c"] and set(raw.method_weights_sha256) == {
        "flaky-weights"
    }


@pytest.mark.slow
def test_worker_exception_names_device_and_image(tmp_path, small_set, monkeypatch):
    monkeypatch.setenv("FLAKY_RAISE", "c")
    with pytest.raises(
        BenchError,
        match=r"^the worker on cpu \(pid \d+\) failed on c \(flaky, "
        r"small/fbcnn/jpeg-q10\): RuntimeError: CUDA out of memory \(stand-in\)$",
    ):
        run_api(tmp_path / "ws", small_set, ["cpu", "cpu"])
    assert sorted(set(_rows(tmp_path / "ws").image)) == ["a", "b"]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _alive_children(pid: int) -> list[int]:
    pids = (int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit())
    return [c for c in pids if (st := _stat(c)) is not None and st[1] == pid and st[0] != "Z"]


@pytest.mark.slow
def test_killed_run_leaves_no_workers_and_resumes_to_the_serial_result(tmp_path, small_set):
    """SIGKILL the parent mid-run: its workers exit, and a re-run completes to the serial
    result with no row stored twice."""
    ws = tmp_path / "ws"
    code = f"import fake_methods as f; f.run_api({str(ws)!r}, {str(small_set)!r}, ['cpu'] * 2)"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}", "FLAKY_SLEEP": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    while not list(ws.glob("outputs/**/*.png")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers = _alive_children(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while [w for w in workers if (st := _stat(w)) is not None and st[0] != "Z"]:
        assert time.monotonic() < deadline, "a worker outlived its killed parent"
        time.sleep(0.1)
    run_api(ws, small_set, ["cpu", "cpu"])
    run_api(tmp_path / "serial", small_set, None)
    raw = pd.concat([pd.read_parquet(p) for p in ResultStore(ws / "results").parts()])
    assert not raw.duplicated(KEY).any()
    cols = [c for c in SAME if c != "device"]
    pd.testing.assert_frame_equal(_rows(ws)[cols], _rows(tmp_path / "serial")[cols])
    assert _outputs(ws) == _outputs(tmp_path / "serial")


@pytest.mark.slow
def test_missing_weights_stop_before_any_work(tmp_path, small_set, capsys):
    assert _run(tmp_path / "ws", small_set, "dncnn3", "--devices", "cpu,cpu") == 1
    err = capsys.readouterr().err
    assert "error: method dncnn3 cannot run, weight file(s) missing" in err
    assert not (tmp_path / "ws" / "sets").exists()


def test_parse_devices():
    assert parse_devices(None, "cuda") == ["cuda"]
    assert parse_devices("auto", "cpu", gpu_count=lambda: 0) == ["cpu"]
    assert parse_devices("auto", "cuda", gpu_count=lambda: 1) == ["cuda"]
    assert parse_devices("auto", "cuda", gpu_count=lambda: 3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert parse_devices(" cuda:1, cuda:01 ", "cpu", gpu_count=lambda: 2) == ["cuda:1", "cuda:1"]
    assert parse_devices("cpu,cpu", "cuda", gpu_count=lambda: 0) == ["cpu", "cpu"]
    usage = "give auto, or a comma-separated list of cpu and cuda:N (e.g. cuda:0,cuda:1)"
    for text, msg in [
        ("", f"--devices is empty; {usage}"),
        ("cuda:x", f"--devices 'cuda:x': 'cuda:x' is not a device; {usage}"),
        ("gpu", f"--devices 'gpu': 'gpu' is not a device; {usage}"),
        ("cpu,,cpu", f"--devices 'cpu,,cpu': '' is not a device; {usage}"),
        (
            "cuda:0,cuda:2",
            "--devices 'cuda:0,cuda:2': cuda:2 is not visible (2 CUDA GPU(s) visible)",
        ),
    ]:
        with pytest.raises(BenchError) as err:
            parse_devices(text, "cpu", gpu_count=lambda: 2)
        assert str(err.value) == msg


def test_auto_without_gpus_is_the_single_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert parse_devices("auto", "cpu") == ["cpu"]


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", ""])
def test_bad_devices_stop_the_cli(tmp_path, bad, capsys):
    assert run_cli("run", "-w", tmp_path / "ws", "--devices", bad, "--no-progress") == 1
    assert "error: --devices " in capsys.readouterr().err
    assert not (tmp_path / "ws" / "sets").exists()
