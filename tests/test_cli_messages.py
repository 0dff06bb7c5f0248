"""CLI error messages are complete (issue 22): the main job without metric weights names, for
each skipped metric, every file it lacks, its source and where it goes (the message used to be
cut after its first line)."""

from __future__ import annotations

import pytest

from carbench.bench.metrics.registry import METRICS, default_spec, weights_of
from carbench.core.weights import sources
from conftest import run_cli


@pytest.mark.slow  # builds every pyiqa scorer it can: ~8 s idle
def test_main_job_without_metric_weights_names_every_file(ws, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "empty-cache"))
    args = ("run", "-w", ws, "--methods", "jpeg", "--metrics", "available", "-g", "jpeg-q10")
    assert run_cli(*args, "--no-progress") == 0
    err = capsys.readouterr().err
    with_weights = {m.name for m in METRICS if m.weights and m.in_all}
    assert with_weights, "pyiqa metrics carry weight files"
    for name in sorted(with_weights):
        head = f"skipped metric {default_spec(name).id}:"
        block = err.split(head, 1)[1].split("skipped metric")[0]
        files = weights_of(name)
        assert files, name
        for wf in files:
            assert wf.name in block, (name, wf.name, block)
            assert str(tmp_path / "empty-cache") in block  # where it goes
            assert any(url in block for _, url in sources(wf)) or wf.source() in block
