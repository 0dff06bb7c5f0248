"""Bjøntegaard deltas between rate-distortion curves, through the ``bjontegaard`` package.

Pure functions on numbers. BD-rate is the mean difference of log10(rate) over the overlap of
the two curves' metric ranges, as a percentage (negative: the test curve needs fewer bits for
the same metric); BD-metric is the mean metric difference (test - anchor) over the overlap of
their log10-rate ranges (BD-PSNR in dB for PSNR; for a lower-is-better metric such as LPIPS a
negative value is a gain). Interpolation (``INTERPS``): ``cubic`` = one cubic polynomial fitted
to all points (VCEG-M33), ``pchip`` = piecewise cubic Hermite (the JCT-VC/JVET CTC sheets),
``akima`` = Akima splines. A curve whose metric is not strictly monotonic in rate, with fewer
points than its interpolation needs, or that does not overlap the other, is refused with a
:class:`CurveError` naming it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from carbench.core.errors import BenchError
from carbench.core.options import Option

INTERPS = ("cubic", "pchip", "akima")
#: the points each interpolation needs (cubic fits 4 coefficients)
MIN_POINTS = {"cubic": 4, "pchip": 2, "akima": 2}

INTERP = Option(
    "interp",
    "choice",
    "pchip",
    choices=INTERPS,
    help="BD interpolation: cubic (VCEG-M33 polynomial), pchip (JVET CTC), akima",
)


class CurveError(BenchError, ValueError):
    """A curve cannot enter a Bjøntegaard delta (not monotonic, too short, no overlap)."""


@dataclass(frozen=True)
class Curve:
    """One rate-distortion curve: bits per pixel and a metric at each rung."""

    name: str
    rate: tuple[float, ...]
    metric: tuple[float, ...]

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """(rate, metric) in increasing rate."""
        r, m = np.asarray(self.rate, float), np.asarray(self.metric, float)
        order = np.argsort(r, kind="stable")
        return r[order], m[order]


def check_curve(curve: Curve, higher_better: bool, interp: str) -> None:
    """Refuse a curve that is too short, has a non-positive or repeated rate, non-finite
    values, or a metric that does not improve strictly with every extra bit."""
    r, m = curve.sorted()
    need = MIN_POINTS[interp]
    if len(r) < need:
        raise CurveError(f"curve {curve.name}: {len(r)} point(s); {interp} needs {need}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(m))):
        raise CurveError(f"curve {curve.name}: non-finite rate or metric")
    if np.any(r <= 0):
        raise CurveError(f"curve {curve.name}: a rate <= 0 bpp (log rate undefined)")
    if np.any(np.diff(r) <= 0):
        raise CurveError(f"curve {curve.name}: two points at the same rate")
    step = np.diff(m) if higher_better else -np.diff(m)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0])
        better = "higher" if higher_better else "lower"
        raise CurveError(
            f"curve {curve.name} is not monotonic: the metric goes from {m[i]:.6g} at "
            f"{r[i]:.4g} bpp to {m[i + 1]:.6g} at {r[i + 1]:.4g} bpp ({better} is better)"
        )


def _overlap(a: np.ndarray, b: np.ndarray, what: str, na: str, nb: str) -> float:
    """Fraction of the union of the two ranges they share; refused when they share none."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise CurveError(
            f"curves {na} and {nb} do not overlap in {what}: [{a.min():.6g}, {a.max():.6g}] "
            f"vs [{b.min():.6g}, {b.max():.6g}]"
        )
    return float((hi - lo) / (max(a.max(), b.max()) - min(a.min(), b.min())))


@dataclass(frozen=True)
class Delta:
    """BD-rate (%) and BD-metric of a test curve against an anchor, and how they were made."""

    bd_rate_pct: float
    bd_metric: float
    interp: str
    overlap_metric: float  # fraction of the metric ranges' union shared (BD-rate's interval)
    overlap_rate: float  # fraction of the log-rate ranges' union shared (BD-metric's interval)


def bd(anchor: Curve, test: Curve, higher_better: bool = True, interp: str = "pchip") -> Delta:
    """BD-rate and BD-metric of ``test`` against ``anchor`` (both checked first)."""
    import bjontegaard

    interp = INTERP.parse(interp, "BD")
    for c in (anchor, test):
        check_curve(c, higher_better, interp)
    ra, ma = anchor.sorted()
    rt, mt = test.sorted()
    ov_m = _overlap(ma, mt, "metric", anchor.name, test.name)
    ov_r = _overlap(np.log10(ra), np.log10(rt), "rate", anchor.name, test.name)
    # the package sorts nothing: rates by metric for BD-rate, increasing metric
    ia, it = np.argsort(ma), np.argsort(mt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # partial overlap is reported in the Delta instead
        rate = bjontegaard.bd_rate(
            ra[ia], ma[ia], rt[it], mt[it], interp, require_matching_points=False, min_overlap=0
        )
        metric = bjontegaard.bd_psnr(
            ra, ma, rt, mt, interp, require_matching_points=False, min_overlap=0
        )
    return Delta(float(rate), float(metric), interp, ov_m, ov_r)


def mean_curve(name: str, rate: np.ndarray, metric: np.ndarray, idx: np.ndarray) -> Curve:
    """The set curve of images ``idx``: per rung, the mean rate and the mean metric
    (``rate`` and ``metric`` are images x rungs)."""
    return Curve(name, tuple(rate[idx].mean(axis=0)), tuple(metric[idx].mean(axis=0)))


def bootstrap_bd(
    anchor: tuple[str, np.ndarray, np.ndarray],
    test: tuple[str, np.ndarray, np.ndarray],
    higher_better: bool,
    interp: str,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile intervals of BD-rate and BD-metric from resampling images (the same images
    for both curves; each curve is (name, rate, metric) with images x rungs arrays), and the
    number of resamples refused (a resampled curve not monotonic)."""
    n = anchor[1].shape[0]
    rng = np.random.default_rng(seed)
    rates, metrics, refused = [], [], 0
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        try:
            d = bd(
                mean_curve(anchor[0], *anchor[1:], idx),
                mean_curve(test[0], *test[1:], idx),
                higher_better,
                interp,
            )
        except CurveError:
            refused += 1
            continue
        rates.append(d.bd_rate_pct)
        metrics.append(d.bd_metric)
    if not rates:
        nan = (float("nan"), float("nan"))
        return nan, nan, refused
    a = (1 - level) / 2
    q = (a, 1 - a)
    return (
        tuple(float(v) for v in np.quantile(rates, q)),
        tuple(float(v) for v in np.quantile(metrics, q)),
        refused,
    )
