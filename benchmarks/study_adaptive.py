"""Adaptive vs random pair selection for pairwise studies, on simulated observers with a known
ranking (``carbench.study.adaptive``).

For N conditions with evenly spaced true Bradley-Terry scores (-2..2), each run simulates
``--budget`` comparisons by a Bradley-Terry observer, refitting the scores after each answer,
with pairs chosen by expected information gain (adaptive) or uniformly at random. Prints, per
design, the comparisons needed to reach and keep SRCC >= 0.8 / 0.9 / 0.95 with the true
ranking (mean and median over ``--runs`` seeded runs; runs that never get there count as the
budget, marked >) and draws the mean SRCC against the comparison count.

    python benchmarks/study_adaptive.py [--n 10] [--runs 30] [--budget 400] [--figure PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from carbench.study.adaptive import comparisons_to_reach, simulate

TARGETS = (0.8, 0.9, 0.95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="conditions (default 10)")
    ap.add_argument("--runs", type=int, default=30, help="seeded runs per design (default 30)")
    ap.add_argument("--budget", type=int, default=400, help="comparisons per run (default 400)")
    ap.add_argument(
        "--figure",
        type=Path,
        default=Path(__file__).parents[1] / "docs" / "study-adaptive.png",
        help="where the figure goes (default docs/study-adaptive.png)",
    )
    args = ap.parse_args()
    truth = np.linspace(-2, 2, args.n)
    curves: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for name, adaptive in (("adaptive (EIG)", True), ("random", False)):
        curves[name] = np.array(
            [simulate(truth, args.budget, adaptive, seed) for seed in range(args.runs)]
        )
    print(
        f"{args.n} conditions, true scores -2..2, {args.runs} runs x {args.budget} comparisons "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'design':16s}" + "".join(f"  SRCC>={t:<4g} mean / median" for t in TARGETS))
    for name, runs in curves.items():
        cells = []
        for t in TARGETS:
            need = [comparisons_to_reach(c, t) for c in runs]
            vals = np.array([args.budget if k is None else k for k in need], float)
            mark = ">" if any(k is None for k in need) else ""
            cells.append(f"  {mark}{vals.mean():11.1f} / {np.median(vals):6.0f}")
        print(f"{name:16s}" + "".join(cells))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    x = np.arange(1, args.budget + 1)
    for name, runs in curves.items():
        ax.plot(x, runs.mean(0), label=name)
        lo, hi = np.quantile(runs, [0.25, 0.75], axis=0)
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel("comparisons")
    ax.set_ylabel("SRCC with the true ranking")
    ax.set_title(f"{args.n} conditions: mean and interquartile range of {args.runs} runs")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
