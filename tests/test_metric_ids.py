"""Metric ids name the convention they follow; old ids still load and compare."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from carbench.bench.check import check, read_baseline
from carbench.bench.metrics.registry import (
    METRICS,
    canonical_variant_id,
    higher_is_better,
    parse_metric,
)
from carbench.bench.store import ResultStore
from conftest import run_cli

OLD = Path(__file__).parent / "data" / "store_v0.1"


def test_renamed_ids():
    assert parse_metric("psnrb").id == "psnrb:fbcnn"
    assert parse_metric("psnrb:kair").id == "psnrb:fbcnn"  # the old id is an alias
    assert parse_metric("niqe").id == "niqe:pyiqa" and parse_metric("niqe").pyiqa_name == "niqe"
    assert parse_metric("niqe:matlab").id == "niqe:pyiqa"
    assert canonical_variant_id("psnrb:kair@4") == "psnrb:fbcnn@4"
    assert canonical_variant_id("psnrb:swinir") == "psnrb:swinir"
    assert "kair" not in {m.variant for m in METRICS}


def test_store_of_the_previous_release_loads_with_new_ids():
    df = ResultStore(OLD).load()
    assert set(df.variant) == {"psnr:rgb", "psnrb:fbcnn", "psnrb:swinir"}
    assert len(df) == 12


def test_new_run_compares_with_a_baseline_of_the_previous_release(tmp_path):
    """A fresh run (new ids) checked against the old release's baseline (old ids): all ok."""
    ws = tmp_path / "ws"
    args = ["--methods", "jpeg", "--degradation", "jpeg:q=10"]
    args += ["--metrics", "psnr,psnrb,psnrb:swinir"]
    assert run_cli("run", *args, "-w", ws) == 0
    assert set(ResultStore(ws / "results").load().variant) == {
        "psnr:rgb",
        "psnrb:fbcnn",
        "psnrb:swinir",
    }
    assert run_cli("check", "--baseline", OLD / "baseline.csv", "-w", ws) == 0
    # and the old store itself, copied in as a workspace's results, passes too
    shutil.copytree(OLD, tmp_path / "old" / "results")
    assert run_cli("check", "--baseline", OLD / "baseline.csv", "-w", tmp_path / "old") == 0


def _summary(metric: str, variant: str, mean: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                dataset="d",
                protocol="p",
                degradation="g",
                method="m",
                metric=metric,
                variant=variant,
                mean=mean,
                n=3,
            )
        ]
    )


@pytest.mark.parametrize("spec", METRICS, ids=lambda s: s.id)
def test_allow_better_follows_each_metrics_direction(spec):
    """`--allow-better` accepts a move in the metric's own better direction only."""
    base = _summary(spec.name, spec.id, 10.0).assign(tolerance=0.01)
    up, down = _summary(spec.name, spec.id, 11.0), _summary(spec.name, spec.id, 9.0)
    better, worse = (up, down) if spec.higher_better else (down, up)
    assert check(better, base, allow_better=True).ok
    res = check(worse, base, allow_better=True)
    assert not res.ok and res.rows.status.iloc[0] == "regressed"
    assert higher_is_better(spec.id) is spec.higher_better


def test_direction_comes_from_the_registry_row(monkeypatch):
    """A new lower-is-better metric is judged by its row, not by a list kept elsewhere."""
    from dataclasses import replace

    import carbench.bench.metrics.registry as R

    new = replace(R.METRICS[0], name="newdist", variant="v1", higher_better=False)
    monkeypatch.setattr(R, "METRICS", [*R.METRICS, new])
    base = _summary("newdist", "newdist:v1", 1.0).assign(tolerance=0.01)
    assert check(_summary("newdist", "newdist:v1", 0.5), base, allow_better=True).ok
    assert not check(_summary("newdist", "newdist:v1", 1.5), base, allow_better=True).ok


def test_old_baseline_variant_ids_are_read_as_new(tmp_path):
    assert set(read_baseline(OLD / "baseline.csv").variant) == {
        "psnr:rgb",
        "psnrb:fbcnn",
        "psnrb:swinir",
    }
