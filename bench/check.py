"""``bench check``: compare the store's per-set means with a committed baseline.

Baseline file: CSV with columns dataset, protocol, degradation, method, metric, variant, mean,
n, tolerance. A cell fails when it is missing from the store, its variant id changed, its image
count changed, or its mean moved by more than the tolerance (in either direction, unless
``allow_better``). The result renders as a Markdown summary for a pull-request comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from carbench.bench.metrics.registry import canonical_variant_id, higher_is_better, tolerance
from carbench.core.errors import BenchError

KEY = ["dataset", "protocol", "degradation", "method", "metric"]


@dataclass
class CheckResult:
    rows: pd.DataFrame  # one row per baseline cell with status and message

    @property
    def failed(self) -> pd.DataFrame:
        return self.rows[self.rows.status != "ok"]

    @property
    def ok(self) -> bool:
        return self.failed.empty


def parse_tolerances(text: str | None) -> dict[str, float]:
    """``psnr=0.05,ssim=0.001`` -> {"psnr": 0.05, "ssim": 0.001}."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise BenchError(f"tolerance {item!r} is not metric=number") from None
        if not sep:
            raise BenchError(f"tolerance {item!r} is not metric=number")
    return out


def read_baseline(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise BenchError(
            f"{path}: baseline not found (create it with `bench check --update --baseline {path}`)"
        )
    df = pd.read_csv(path)
    missing = [c for c in [*KEY, "variant", "mean"] if c not in df]
    if missing:
        raise BenchError(f"{path}: baseline lacks column(s) {', '.join(missing)}")
    df["variant"] = df["variant"].map(canonical_variant_id)  # baselines with old metric ids
    return df


def make_baseline(
    summary: pd.DataFrame, tolerances: dict[str, float] | None = None
) -> pd.DataFrame:
    tol = tolerances or {}
    out = summary.copy()
    out["tolerance"] = [tol.get(m, tolerance(m)) for m in out.metric]
    return out


def check(
    summary: pd.DataFrame,
    baseline: pd.DataFrame,
    tolerances: dict[str, float] | None = None,
    allow_better: bool = False,
) -> CheckResult:
    tol_override = tolerances or {}
    records = summary.to_dict("records")
    exact = {(*(r[k] for k in KEY), r["variant"]): r for r in records}
    by_metric = {tuple(r[k] for k in KEY): r for r in records}
    out = []
    for b in baseline.to_dict("records"):
        key = tuple(b[k] for k in KEY)
        tol = tol_override.get(b["metric"], b.get("tolerance", tolerance(b["metric"])))
        row = {
            **{k: b[k] for k in KEY},
            "variant": b["variant"],
            "expected": b["mean"],
            "actual": None,
            "delta": None,
            "tolerance": tol,
        }
        # the same variant; else any variant of the metric, to report that the variant changed
        got = exact.get((*key, b["variant"])) or by_metric.get(key)
        if got is None:
            row.update(status="missing", message="no result in the store")
        elif got["variant"] != b["variant"]:
            row.update(
                status="variant",
                actual=got["mean"],
                message=f"variant changed: {b['variant']} -> {got['variant']}",
            )
        elif "n" in b and pd.notna(b["n"]) and int(got["n"]) != int(b["n"]):
            row.update(
                status="count",
                actual=got["mean"],
                message=f"image count changed: {int(b['n'])} -> {int(got['n'])}",
            )
        else:
            same = float(got["mean"]) == float(b["mean"])  # also inf == inf (identical images)
            delta = 0.0 if same else float(got["mean"]) - float(b["mean"])
            row.update(actual=got["mean"], delta=delta)
            better = delta > 0 if higher_is_better(b["variant"]) else delta < 0
            if abs(delta) <= tol:
                row.update(status="ok", message="")
            elif better and allow_better:
                row.update(status="ok", message="improved")
            else:
                row.update(
                    status="regressed" if not better else "changed",
                    message=f"{'worse' if not better else 'better'} by {abs(delta):.6g} "
                    f"(tolerance {tol:g})",
                )
        out.append(row)
    return CheckResult(pd.DataFrame(out))


def markdown_summary(result: CheckResult, baseline_path: str) -> str:
    rows = result.rows
    n_fail = len(result.failed)
    head = (
        f"### carbench check: {'✅ all' if result.ok else f'❌ {n_fail} of'} {len(rows)} "
        f"cells {'match' if result.ok else 'differ from'} `{baseline_path}`\n"
    )
    if result.ok:
        return head
    lines = [
        head,
        "| dataset | protocol | degradation | method | variant | expected | actual | status |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for r in result.failed.to_dict("records"):
        act = "–" if r["actual"] is None or pd.isna(r["actual"]) else f"{r['actual']:.6g}"
        lines.append(
            f"| {r['dataset']} | {r['protocol']} | {r['degradation']} | {r['method']} "
            f"| {r['variant']} | {r['expected']:.6g} | {act} | {r['status']}: "
            f"{r['message']} |"
        )
    return "\n".join(lines) + "\n"
