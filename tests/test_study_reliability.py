"""Rater screening and reliability: BT.500 screening on simulated raters, ICC and
Krippendorff's alpha on published worked examples, the BT.500 MOS interval by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from carbench.study.reliability import (
    bt500_screen,
    icc2,
    krippendorff_alpha,
    mos_intervals,
    raters_needed,
    reliability_note,
    reliability_summary,
)

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges. Transcribed from the R package psych,
# tests/testthat/test_ICC.R ("does it match the numbers from Shrout and Fleiss"), which expects
# ICC(2,1) = .29 and ICC(2,4) = .62 (rounded to 2 decimals), as the paper's Table 4 prints.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example reliability
# data matrix (4 observers x 12 units, page 8), as the `krippendorff` package's docstring
# reproduces it (krippendorff 0.9.0, alpha(): "extracted from ... fulltext.pdf, page 8"), with
# its published nominal alpha 0.743.
NAN = np.nan
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def test_icc_matches_shrout_and_fleiss():
    got = icc2(SHROUT_FLEISS)
    assert round(got["icc21"], 2) == 0.29 and round(got["icc2k"], 2) == 0.62
    assert (got["n"], got["k"]) == (6, 4)


def _alpha_by_hand(observers: np.ndarray, delta) -> float:
    """Krippendorff's alpha from its definition: 1 - D_o / D_e over pairable values, D_o from
    the pairs within units (each weighted 1/(m_u - 1)), D_e from all pairs of values."""
    units = [u[np.isfinite(u)] for u in observers.T]
    units = [u for u in units if len(u) >= 2]
    values = np.concatenate(units)
    n = len(values)
    d_o = (
        sum(sum(delta(a, b) for a, b in itertools.permutations(u, 2)) / (len(u) - 1) for u in units)
        / n
    )
    d_e = sum(delta(a, b) for a, b in itertools.permutations(values, 2)) / (n * (n - 1))
    return 1 - d_o / d_e


def test_krippendorff_alpha_matches_the_published_example_and_a_hand_calculation():
    nominal = _alpha_by_hand(KRIPPENDORFF_2011, lambda a, b: float(a != b))
    assert round(nominal, 3) == 0.743  # Krippendorff (2011)'s printed value
    grid = KRIPPENDORFF_2011.T  # units x raters, as the study grids are
    assert krippendorff_alpha(grid, "nominal") == pytest.approx(nominal, abs=1e-9)
    interval = _alpha_by_hand(KRIPPENDORFF_2011, lambda a, b: (a - b) ** 2)
    assert krippendorff_alpha(grid) == pytest.approx(interval, abs=1e-9)


def _simulated(rng, raters=15, presentations=60, bad: int | None = None) -> np.ndarray:
    truth = rng.uniform(3, 8, presentations)
    grid = truth[:, None] + rng.normal(0, 0.5, (presentations, raters))
    if bad is not None:  # off the others (3 of their SDs), as often above as below; much
        # further off would make each presentation heavy-tailed (beta2 > 4: the wider band)
        grid[:, bad] = truth + rng.permutation(np.repeat([-1.5, 1.5], presentations // 2))
    return grid


def test_bt500_flags_the_inconsistent_rater_and_not_the_consistent_ones():
    """In every one of 20 simulated panels the inconsistent rater is rejected; of the 280
    consistent raters (normal noise, where about 4.5% of ratings fall outside +-2 S by chance)
    at most 2% are, and none in the first panel."""
    false = 0
    for seed in range(20):
        screen = bt500_screen(_simulated(np.random.default_rng(seed), bad=4))
        assert screen.rejected[4] and screen.ratio[4] > 0.05 and screen.balance[4] < 0.3
        false += int(screen.rejected.drop(4).sum())
        if seed == 0:
            assert list(np.flatnonzero(screen.rejected)) == [4]
    assert false / (20 * 14) <= 0.02, false


def test_bt500_counts_by_hand():
    """Nine raters, two presentations. Presentation 0: 5 5 5 5 5 5 3 7 9: mean 49/9 = 5.444,
    m2 = 200/81, m4 = 22.40, beta2 = 3.67 (normal: band +- 2 S); S = sqrt(200/9 / 8) = 1.667,
    band [2.11, 8.78]: the 9 of rater 8 is above it (P = 1), nothing below. Presentation 1:
    all 5 (S = 0: no band)."""
    grid = np.array([[5, 5, 5, 5, 5, 5, 3, 7, 9], [5] * 9], float)
    screen = bt500_screen(grid)
    assert list(screen.P) == [0] * 8 + [1] and list(screen.Q) == [0] * 9
    assert screen.ratio[8] == 0.5 and screen.balance[8] == 1.0 and not screen.rejected.any()


def test_mos_interval_and_raters_needed_by_hand():
    iv = mos_intervals(np.array([[1.0, 2.0, 3.0], [4.0, 4.0, NAN]]))
    assert iv.mos[0] == 2 and iv.sd[0] == 1 and iv.delta[0] == pytest.approx(1.96 / 3**0.5, 1e-3)
    assert iv.n[1] == 2 and iv.delta[1] == 0
    assert raters_needed(1.0, 0.5) == 62  # (2 * 1.96 / 0.5)^2 = 61.5
    assert raters_needed(1.0, 4.0) == 2


def test_too_few_raters_warning_names_the_number_needed():
    rng = np.random.default_rng(2)
    grid = _simulated(rng, raters=5, presentations=20) + rng.normal(0, 1.0, (20, 5))
    s = reliability_summary(grid, width=0.5)
    assert s["too_few"] and s["needed"] == raters_needed(s["sd"], 0.5) and s["needed"] > 5
    note = reliability_note(s, 0.5)
    assert "too few raters for a reliable MOS" in note and f"about {s['needed']} raters" in note
    assert not reliability_summary(grid, width=10.0)["too_few"]
