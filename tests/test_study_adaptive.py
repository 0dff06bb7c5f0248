"""Adaptive pair selection: the Laplace posterior against a direct optimisation, the gain by
hand, and the simulation with a known ranking: adaptive needs fewer comparisons than random."""

from __future__ import annotations

import numpy as np
import pytest

from carbench.study.adaptive import (
    comparisons_to_reach,
    expected_gain,
    laplace_bt,
    next_pair,
    simulate,
)


def test_laplace_map_is_the_posterior_maximum():
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    wins = [tuple(rng.choice(4, 2, replace=False)) for _ in range(30)]
    alpha = 0.3
    mean, cov = laplace_bt(4, wins, alpha)

    def neg_log_post(s):
        d = np.array([s[w] - s[lo] for w, lo in wins])
        return np.log1p(np.exp(-d)).sum() + alpha * (s**2).sum() / 2

    best = minimize(neg_log_post, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    assert mean == pytest.approx(best, abs=1e-5)
    assert np.allclose(cov, cov.T) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_gain_by_hand_and_the_uncertain_pair_is_chosen():
    """Two items, means 0 and 0 (p = 1/2), variances 1 and 2, covariance 0.5: var of the
    difference 2, gain 0.5 log(1 + 0.25 * 2) = 0.5 log 1.5."""
    gain = expected_gain(np.zeros(2), np.array([[1.0, 0.5], [0.5, 2.0]]))
    assert gain[0, 1] == pytest.approx(0.5 * np.log(1.5)) and gain[1, 0] == 0
    # items 0-1 compared 20 times, item 2 never: the next pair involves item 2
    wins = [(0, 1)] * 10 + [(1, 0)] * 10
    (i, j), _ = next_pair(3, wins, np.random.default_rng(0))
    assert 2 in (i, j)


@pytest.mark.slow
def test_adaptive_reaches_the_rank_correlation_with_fewer_comparisons():
    """Ten conditions with known, evenly spaced scores (-2..2); over 8 seeded simulations the
    adaptive design reaches and keeps SRCC >= 0.9 after fewer comparisons than random pairs
    (mean over runs, at most 80% of random's)."""
    truth = np.linspace(-2, 2, 10)
    need = {True: [], False: []}
    for seed in range(8):
        for adaptive in (True, False):
            curve = simulate(truth, 300, adaptive, seed)
            need[adaptive].append(comparisons_to_reach(curve, 0.9) or 301)
    assert np.mean(need[True]) <= 0.8 * np.mean(need[False]), need


def test_comparisons_to_reach_counts_from_the_last_dip():
    assert comparisons_to_reach(np.array([0.5, 0.95, 0.8, 0.92, 0.97]), 0.9) == 4
    assert comparisons_to_reach(np.array([0.95, 0.96]), 0.9) == 1
    assert comparisons_to_reach(np.array([0.5, 0.6]), 0.9) is None


def test_choose_item_asks_where_the_answers_say_least():
    """Two images with the same three outputs: image A's three pairs were each answered ten
    times, image B's never; the next item is one of B's. Once this rater saw all of B's, an
    A item (not yet seen by it) comes next."""
    from carbench.study.adaptive import choose_item

    pairs = {}
    for g in "AB":
        for k, (x, y) in enumerate(((0, 1), (0, 2), (1, 2))):
            pairs[f"{g}{k}"] = (g, f"{g}s{x}", f"{g}s{y}")
    answers = [(f"A{k}", r % 2) for k in range(3) for r in range(10)]
    rng = np.random.default_rng(0)
    assert choose_item(pairs, answers, set(), rng).startswith("B")
    assert choose_item(pairs, answers, {"B0", "B1", "B2"}, rng).startswith("A")
    everything = set(pairs)  # all seen: any item may come again
    assert choose_item(pairs, answers, everything, rng) in pairs
