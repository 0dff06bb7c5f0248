"""Study statistics on simulated raters with known preferences."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bench.study.stats import bradley_terry, consistency, mos, two_way_bootstrap

TRUE = {"a": 3.0, "b": 5.0, "c": 7.0}


def _ratings(rng, raters=12, images=6, reverse: int | None = None) -> pd.DataFrame:
    rows = []
    bias = rng.normal(0, 0.5, raters)
    ease = rng.normal(0, 0.5, images)
    for r, i, (m, mu) in itertools.product(range(raters), range(images), TRUE.items()):
        v = mu + bias[r] + ease[i] + rng.normal(0, 1)
        if r == reverse:
            v = 10 - v
        rows.append((f"r{r}", f"{m}{i}", int(np.clip(round(v), 1, 10)), 0, m, f"im{i}"))
    df = pd.DataFrame(rows, columns=["rater", "item", "value", "is_repeat", "method", "image"])
    return df.assign(dataset="d", protocol="p", degradation="jpeg-q10")


def test_mos_recovers_the_known_order_and_flags_a_reversed_rater():
    df = _ratings(np.random.default_rng(1), reverse=3)
    table = mos(df, n_boot=300).set_index("method")
    assert list(table.sort_values("mos").index) == ["a", "b", "c"]
    assert (table.lo < table.mos).all() and (table.mos < table.hi).all()
    flags = consistency(df).set_index("rater")
    assert flags.outlier["r3"] and not flags.outlier.drop("r3").any()


@pytest.mark.slow
def test_two_way_interval_coverage_near_nominal():
    rng = np.random.default_rng(0)
    hits = 0
    sims = 200
    for s in range(sims):
        grid = (
            5 + rng.normal(0, 0.5, (8, 1)) + rng.normal(0, 0.5, (1, 6)) + rng.normal(0, 1, (8, 6))
        )
        _, lo, hi = two_way_bootstrap(grid, 200, s)
        hits += lo <= 5 <= hi
    assert 0.85 <= hits / sims <= 0.995, hits / sims


@pytest.mark.slow
def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(2)
    strength = {"a": 0.0, "b": 1.0, "c": 2.0}
    rows = []
    for r in range(15):
        for (x, y), k in itertools.product(itertools.combinations(strength, 2), range(8)):
            p = 1 / (1 + np.exp(strength[y] - strength[x]))
            rows.append((f"r{r}", f"{x}{y}{k}", int(rng.random() >= p), 0, x, y))
    df = pd.DataFrame(rows, columns=["rater", "item", "value", "is_repeat", "method", "method_b"])
    df = df.assign(dataset="d", protocol="p", degradation="jpeg-q10", image="im")
    bt = bradley_terry(df, n_boot=50).set_index("method")
    assert list(bt.sort_values("bt").index) == ["a", "b", "c"]
    centred = {m: s - 1.0 for m, s in strength.items()}
    for m in strength:
        assert bt.lo[m] <= centred[m] <= bt.hi[m]
