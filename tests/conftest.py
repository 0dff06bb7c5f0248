"""Shared fixtures. Real test sets come from BENCH_DATA_ROOT (``.ci/run`` sets it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data


def _data_root() -> Path | None:
    env = os.environ.get("BENCH_DATA_ROOT")
    return Path(env) if env and Path(env).is_dir() else None


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch, tmp_path):
    """Tests never touch the user's workspace or caches."""
    monkeypatch.setenv("BENCH_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("BENCH_DATASETS_YAML", raising=False)
    monkeypatch.delenv("BENCH_DATASETS_MIRROR", raising=False)


@pytest.fixture
def data_root() -> Path:
    root = _data_root()
    if root is None:
        pytest.skip("BENCH_DATA_ROOT not set (real test sets unavailable)")
    return root


@pytest.fixture
def live1(data_root) -> Path:
    return data_root / "LIVE1"


@pytest.fixture
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture
def coffee() -> np.ndarray:
    return skimage.data.coffee()


@pytest.fixture
def camera() -> np.ndarray:
    return skimage.data.camera()


@pytest.fixture
def ws(tmp_path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def ffmpeg():
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not on PATH: install Debian's ffmpeg (the project's setup does)")
    return shutil.which("ffmpeg")


def run_cli(*args: str) -> int:
    from bench.cli import main

    return main([str(a) for a in args])
