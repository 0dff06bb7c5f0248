"""Crash safety and concurrency: SIGKILL at random points, two processes at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbench.bench.store import KEY, ResultStore
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
DEGS = ["-g", "jpeg:q=5,15,25,35,45,55,65,75,85,95", "-p", "fbcnn"]
METRICS = ["--metrics", "psnr,ssim,psnrb"]


def _bench(args: list[str], ws: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "carbench.cli", *args, "-w", str(ws), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _raw_rows(ws: Path) -> pd.DataFrame:
    parts = sorted((ws / "results").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def _files(ws: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(ws)): p.read_bytes()
        for p in sorted(ws.rglob("*"))
        if p.is_file() and p.suffix in (".jpg", ".png")
    }


def _journal_keys(ws: Path) -> list[tuple[str, str]]:
    keys = []
    for j in (ws / "sets").rglob(".journal/*.jsonl"):
        for line in j.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n"):
                r = json.loads(line)
                keys.append((r["degradation"], r["image"]))
    return keys


def _written(ws: Path) -> int:
    return sum(1 for p in ws.rglob("*") if p.is_file()) if ws.exists() else 0


@pytest.mark.slow
def test_random_kills_never_lose_or_duplicate(tmp_path):
    """Kill `bench run` (which generates first) at random moments, 8 times; finish; compare
    with an uninterrupted run: the same files, the same rows, no duplicates, no temp files.
    A kill lands a random number (1-6) of new files into a run's work, so it always falls in
    the middle of work however fast the machine (a finished run's re-run takes under 1 s)."""
    rng = np.random.default_rng(7)
    args = ["run", *DEGS, *METRICS, "--methods", "jpeg"]
    killed = tmp_path / "killed"
    kills = 0
    for _ in range(8):
        before, wait_for = _written(killed), int(rng.integers(1, 7))
        proc = _bench(args, killed)
        while proc.poll() is None and _written(killed) - before < wait_for:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "the kills should land while work is in progress"
    assert run_cli(*args, "-w", killed) == 0
    assert run_cli(*args, "-w", tmp_path / "clean") == 0
    assert _files(killed) == _files(tmp_path / "clean")
    raw = _raw_rows(killed)
    assert not raw.duplicated(KEY).any(), "a row was stored twice"
    a = raw.sort_values(KEY)[[*KEY, "value"]].reset_index(drop=True)
    b = ResultStore(tmp_path / "clean" / "results").load().sort_values(KEY)[[*KEY, "value"]]
    pd.testing.assert_frame_equal(a, b.reset_index(drop=True))
    assert len(a) == 4 * 10 * 3
    assert not list(killed.rglob("*.tmp"))


@pytest.mark.slow
def test_kills_during_generate(tmp_path):
    rng = np.random.default_rng(3)
    args = ["generate", *DEGS, "-g", "jpeg2:q1=10,30,q2=50,70,shift=0,4"]
    killed = tmp_path / "killed"
    for _ in range(6):
        proc = _bench(args, killed)
        time.sleep(float(rng.uniform(0.3, 1.5)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert run_cli(*args, "-w", killed) == 0
    assert run_cli(*args, "-w", tmp_path / "clean") == 0
    assert _files(killed) == _files(tmp_path / "clean")
    keys = _journal_keys(killed)
    assert len(set(keys)) == 4 * (10 + 8)
    for deg in ("jpeg-q5", "jpeg2-q30-q70-s4x4"):
        m = pd.read_parquet(killed / "sets/sample/fbcnn" / deg / "manifest.parquet")
        assert len(m) == 4 and m.image.is_unique


@pytest.mark.slow
def test_two_processes_on_one_workspace(tmp_path):
    """Two `bench run` at once: both finish, nothing is generated or scored twice."""
    ws = tmp_path / "ws"
    args = ["run", *DEGS, *METRICS, "--methods", "jpeg"]
    a, b = _bench(args, ws), _bench(args, ws)
    assert a.wait(timeout=300) == 0 and b.wait(timeout=300) == 0, (a.stderr.read(), b.stderr.read())
    raw = _raw_rows(ws)
    assert len(raw) == 4 * 10 * 3 and not raw.duplicated(KEY).any()
    keys = _journal_keys(ws)
    assert len(keys) == len(set(keys)) == 40, "an image was generated twice"
