"""Adaptive pair selection for pairwise (2AFC) studies: the next pair is the one whose answer is
expected to tell the most about the scores.

Model: Bradley-Terry, P(i beats j) = sigmoid(s_i - s_j), with a Gaussian prior N(0, 1/alpha)
on each score; the posterior is approximated by a Gaussian at its maximum (Laplace: mean = MAP,
covariance = inverse Hessian, :func:`laplace_bt`). The expected information gain of comparing
i and j is the entropy reduction of that Gaussian by one Bernoulli observation of the
difference, linearised: ``0.5 * log(1 + p (1 - p) var(s_i - s_j))`` (:func:`expected_gain`).
This is the Gaussian-approximation form of the expected-information-gain criterion of ASAP
(Mikhailiuk, Wilmot, Perez-Ortiz, Yue, Mantiuk, "Active Sampling for Pairwise Comparisons via
Approximate Message Passing and Information Gain Maximization", ICPR 2020) and of the
Kullback-Leibler design of Glickman & Jensen ("Adaptive paired comparison design", J. Stat.
Plan. Inference 127, 2005), without ASAP's message passing or batch selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def laplace_bt(
    n: int, wins: Sequence[tuple[int, int]], alpha: float = 0.1, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(MAP scores, posterior covariance) of Bradley-Terry with prior precision ``alpha``, by
    Newton's method from ``start`` (warm start between answers)."""
    from scipy.special import expit

    counts = np.zeros((n, n))
    for w, loser in wins:
        counts[w, loser] += 1
    total = counts + counts.T
    s = np.zeros(n) if start is None else np.array(start, float)
    for _ in range(50):
        p = expit(s[:, None] - s[None, :])  # P(i beats j)
        grad = (counts - total * p).sum(1) - alpha * s
        w = total * p * (1 - p)
        hess = np.diag(w.sum(1) + alpha) - w
        step = np.linalg.solve(hess, grad)
        step *= min(1.0, 2.0 / max(np.abs(step).max(), 1e-300))  # damped: at most 2 per step
        s = s + step
        if np.abs(step).max() < 1e-8:
            break
    p = expit(s[:, None] - s[None, :])
    w = total * p * (1 - p)
    return s, np.linalg.inv(np.diag(w.sum(1) + alpha) - w)


def expected_gain(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n x n matrix of the expected information gain (nats) of comparing i with j (upper
    triangle; the rest 0)."""
    n = len(mean)
    d = mean[:, None] - mean[None, :]
    p = 1 / (1 + np.exp(-d))
    var = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov
    gain = 0.5 * np.log1p(p * (1 - p) * np.maximum(var, 0))
    return np.triu(gain, 1) * (np.ones((n, n)) - np.eye(n))


def next_pair(
    n: int,
    wins: Sequence[tuple[int, int]],
    rng: np.random.Generator,
    alpha: float = 0.1,
    start: np.ndarray | None = None,
) -> tuple[tuple[int, int], np.ndarray]:
    """The pair (i < j) of largest expected gain after the answers ``wins`` (ties broken at
    random), and the posterior mean (to warm-start the next call)."""
    mean, cov = laplace_bt(n, wins, alpha, start)
    gain = expected_gain(mean, cov)
    best = np.flatnonzero(gain >= gain.max() - 1e-12)
    i, j = divmod(int(rng.choice(best)), n)
    return (i, j), mean


def random_pair(n: int, rng: np.random.Generator) -> tuple[int, int]:
    """A pair drawn uniformly from all n(n-1)/2 (the non-adaptive design)."""
    i, j = rng.choice(n, 2, replace=False)
    return (int(min(i, j)), int(max(i, j)))


def simulate(
    truth: np.ndarray,
    budget: int,
    adaptive: bool,
    seed: int,
    alpha: float = 0.1,
) -> np.ndarray:
    """Rank correlation (Spearman) of the estimated with the ``truth`` scores after each of
    ``budget`` simulated comparisons by a Bradley-Terry observer on ``truth``; pairs chosen by
    :func:`next_pair` (adaptive) or :func:`random_pair`."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(seed)
    n = len(truth)
    wins: list[tuple[int, int]] = []
    mean = np.zeros(n)
    out = np.empty(budget)
    for k in range(budget):
        if adaptive:
            (i, j), _ = next_pair(n, wins, rng, alpha, mean)
        else:
            i, j = random_pair(n, rng)
        p = 1 / (1 + np.exp(-(truth[i] - truth[j])))
        wins.append((i, j) if rng.random() < p else (j, i))
        mean, _ = laplace_bt(n, wins, alpha, mean)
        out[k] = spearmanr(mean, truth).statistic if np.ptp(mean) > 0 else 0.0
    return out


def comparisons_to_reach(curve: np.ndarray, target: float) -> int | None:
    """The first comparison count after which the curve stays at or above ``target``."""
    below = np.flatnonzero(curve < target)
    k = 0 if not len(below) else int(below[-1]) + 1
    return k + 1 if k < len(curve) else None


def choose_item(
    pairs: dict[str, tuple[str, str, str]],
    answers: Sequence[tuple[str, int]],
    seen: set[str],
    rng: np.random.Generator,
    alpha: float = 0.1,
) -> str:
    """The study item to show next: ``pairs`` maps item id -> (group, stimulus a, stimulus b)
    (a group is one image of one set: only its outputs are compared), ``answers`` are
    (item id, value: 0 = a preferred) of every rater so far, ``seen`` the items this rater was
    already shown (left out while others remain). Each group gets its own posterior; the item
    of largest expected gain wins, ties at random."""
    members: dict[str, list[str]] = {}
    for group, a, b in pairs.values():
        members.setdefault(group, [])
        for s in (a, b):
            if s not in members[group]:
                members[group].append(s)
    wins: dict[str, list[tuple[int, int]]] = {g: [] for g in members}
    for item, value in answers:
        if item not in pairs:
            continue
        group, a, b = pairs[item]
        ia, ib = members[group].index(a), members[group].index(b)
        wins[group].append((ia, ib) if value == 0 else (ib, ia))
    gains = {}
    for g, names in members.items():
        mean, cov = laplace_bt(len(names), wins[g], alpha)
        gains[g] = expected_gain(mean, cov)
    candidates = [i for i in sorted(pairs) if i not in seen] or sorted(pairs)
    score = []
    for i in candidates:
        group, a, b = pairs[i]
        ia, ib = sorted((members[group].index(a), members[group].index(b)))
        score.append(gains[group][ia, ib])
    score = np.array(score)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    return candidates[int(rng.choice(best))]
