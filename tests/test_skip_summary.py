"""A published-number check that skips (weights or data absent) is named at the end of the run
and in the file ``.ci/run`` prints (tests/conftest.py's summary hook)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

CASES = """
import pytest

def test_method_reproduces_published_table():
    pytest.skip("X weights not found: run `bench weights fetch x`")

def test_unrelated_skip():
    pytest.skip("not a published-number check")

def test_runs():
    pass
"""


def test_skipped_published_check_is_listed(tmp_path):
    (tmp_path / "test_cases.py").write_text(CASES)
    listing = tmp_path / "skipped.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(PYTHONPATH=str(TESTS), BENCH_SKIPPED_PUBLISHED=str(listing))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "test_cases.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "published-number checks NOT run (1)" in r.stdout
    line = (
        "test_cases.py::test_method_reproduces_published_table: "
        "X weights not found: run `bench weights fetch x`"
    )
    assert line in r.stdout.splitlines()
    assert listing.read_text().splitlines() == [line]
    assert "test_unrelated_skip" not in listing.read_text()
