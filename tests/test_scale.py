"""Scale-out: a real local Dask cluster, a real local Ray instance, and --shard job arrays must
all give exactly what the serial run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from carbench.bench.store import ResultStore
from conftest import run_cli

GEN = [
    "generate",
    "-p",
    "fbcnn",
    "-g",
    "jpeg:q=10,50",
    "-g",
    "jpeg2:q1=10,q2=30,shift=4",
    "--no-progress",
]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and ".journal" not in p.parts
        and p.suffix not in (".parquet", ".lock")
        and "locks" not in p.parts
    }


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("serial") / "ws"
    assert run_cli(*GEN, "-w", ws) == 0
    return ws


@pytest.mark.slow
def test_dask_local_cluster_equals_serial(serial, tmp_path, monkeypatch):
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0", processes=True
    ) as cluster:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert run_cli(*GEN, "-w", tmp_path / "ws", "--backend", "dask", "-j", "2") == 0
    assert _tree(tmp_path / "ws") == _tree(serial)


@pytest.mark.slow
def test_ray_local_instance_equals_serial(serial, tmp_path, monkeypatch):
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        assert run_cli(*GEN, "-w", tmp_path / "ws", "--backend", "ray", "-j", "2") == 0
    finally:
        ray.shutdown()
    assert _tree(tmp_path / "ws") == _tree(serial)


def test_shards_merge_to_the_serial_result(serial, tmp_path, capsys):
    """generate + run as a 2-job array in two workspaces; copying the result parts together
    gives the serial store, and each shard did only its images."""
    run = [
        "run",
        "-p",
        "fbcnn",
        "-g",
        "jpeg:q=10,50",
        "-g",
        "jpeg2:q1=10,q2=30,shift=4",
        "--metrics",
        "psnr,ssim",
        "--no-progress",
    ]
    assert run_cli(*run, "-w", tmp_path / "full") == 0
    for i in (0, 1):
        assert run_cli(*run, "-w", tmp_path / f"s{i}", "--shard", f"{i}/2") == 0
    out = capsys.readouterr().out
    assert "jpeg sample/fbcnn/jpeg-q10-shard0of2: scored 2 image(s)" in out
    merged = tmp_path / "merged" / "results"
    merged.mkdir(parents=True)
    for i in (0, 1):
        for part in (tmp_path / f"s{i}" / "results").glob("part-*.parquet"):
            shutil.copy(part, merged)
    key = ["dataset", "degradation", "method", "image", "variant"]
    a = ResultStore(merged).load().sort_values(key)[[*key, "value"]].reset_index(drop=True)
    b = ResultStore(tmp_path / "full" / "results").load().sort_values(key)[[*key, "value"]]
    pd.testing.assert_frame_equal(a, b.reset_index(drop=True))
    assert (
        run_cli(
            "generate",
            "-w",
            tmp_path / "s0",
            "-p",
            "fbcnn",
            "-g",
            "jpeg-q10",
            "--shard",
            "0/2",
            "--no-progress",
        )
        == 0
    )
    assert "nothing to do" in capsys.readouterr().out
    assert run_cli("generate", "-w", tmp_path / "x", "--shard", "2/2") == 1
    assert "--shard must be i/n with 0 <= i < n" in capsys.readouterr().err
