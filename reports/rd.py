"""Rate-distortion reports: curves of (codec, method) from the store, BD tables, RD pages.

A curve is one (dataset, protocol, codec, method): its points are the codec's settings
(degradation ids) in the store, each at the mean over images of the stored bitstream's bits
per pixel (CompressAI's convention) and the mean of each metric variant. The codec of a
setting is its degradation kind (``jpeg-q10`` -> ``jpeg``; ``bpg`` run as ``hevc`` is
``hevc``). A baseline method (the decoded input, ``jpeg``) is the codec alone. Numbers come
from :mod:`reports.bd`; rendering reuses the table model, renderers and page of the other
reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from carbench.core.errors import BenchError
from carbench.reports.bd import INTERP, Curve, CurveError, bd, bootstrap_bd
from carbench.reports.labels import UNRANKED_GROUPS, method_group, method_label, metric_label
from carbench.reports.model import Block, Cell, Row, TableModel, rank_cells
from carbench.reports.tables import natural_key

KEYS = ["dataset", "protocol", "codec", "method"]
#: how RD plots name the curves of a codec alone (the decoded input, a baseline method)
ALONE = "codec alone"
BD_COLUMNS = [
    "dataset",
    "protocol",
    "codec",
    "method",
    "anchor_codec",
    "anchor_method",
    "metric",
    "bd_rate_pct",
    "bd_metric",
    "interp",
    "n_images",
    "overlap_metric",
    "overlap_rate",
    "bd_rate_lo",
    "bd_rate_hi",
    "bd_metric_lo",
    "bd_metric_hi",
    "image",
    "refused",
]


def codec_of(deg: str) -> str:
    """The codec (degradation kind, or the kind's ``codec`` where it has one) of a
    degradation id; ids no kind parses are themselves."""
    from carbench.degradations import from_id

    try:
        d = from_id(deg)
    except ValueError:
        return deg
    return getattr(d, "codec", d.kind)  # a learned codec: one curve per model


def rd_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Store rows with a bitstream size, with their ``codec`` column (chains left out: their
    settings are not one codec's ladder)."""
    if "bpp" not in rows:
        raise BenchError("the store has no bpp column; re-run `bench run` on these sets")
    r = rows[rows.bpp.notna() & np.isfinite(rows.value.astype(float))]
    codecs = {d: codec_of(d) for d in r.degradation.unique()}
    r = r.assign(codec=r.degradation.map(codecs))
    return common_images(r[r.codec != "chain"])


def common_images(r: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, protocol), only the images that every (codec, method, setting, metric)
    of it has, so that every curve and every BD number is over the same images (a method run
    on a shard of a set shrinks them all to that shard); unchanged where no image has all."""
    keys = ["codec", "method", "degradation", "variant"]
    parts = []
    for _, g in r.groupby(["dataset", "protocol"], sort=False):
        want = len(g.drop_duplicates(keys))
        have = g.drop_duplicates([*keys, "image"]).groupby("image").size()
        full = set(have[have == want].index)
        parts.append(g[g.image.isin(full)] if full else g)
    return pd.concat(parts) if parts else r


def curve_points(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, codec, setting, method): ``bpp``, ``n_images`` and one
    column per metric variant (means over images)."""
    r = rd_rows(rows)
    if r.empty:
        return pd.DataFrame(columns=[*KEYS[:3], "setting", "method", "bpp", "n_images"])
    keys = ["dataset", "protocol", "codec", "degradation", "method"]
    bpp = (
        r.drop_duplicates([*keys, "image"])
        .groupby(keys)
        .agg(bpp=("bpp", "mean"), n_images=("image", "nunique"))
    )
    vals = r.pivot_table(index=keys, columns="variant", values="value", aggfunc="mean")
    out = bpp.join(vals).reset_index().rename(columns={"degradation": "setting"})
    out.columns.name = None
    order = sorted(
        range(len(out)),
        key=lambda i: (
            *(natural_key(out.at[i, k]) for k in ("dataset", "protocol", "codec", "method")),
            out.at[i, "bpp"],
        ),
    )
    return out.loc[order].reset_index(drop=True)


def variants(points: pd.DataFrame) -> list[str]:
    """The metric variant columns of :func:`curve_points`, in registry order."""
    from carbench.bench.metrics.registry import METRICS

    fixed = {*KEYS, "setting", "bpp", "n_images"}
    order = [m.id for m in METRICS]
    cols = [c for c in points.columns if c not in fixed]
    return sorted(cols, key=lambda v: order.index(v) if v in order else len(order))


def higher_better(variant: str) -> bool:
    """The metric row's direction (True for a variant the registry does not know)."""
    from carbench.bench.metrics.registry import find

    spec = find(variant)
    return spec.higher_better if spec else True


def curve_name(codec: str, method: str) -> str:
    """``jpeg`` for the codec alone, ``jpeg+dncnn3`` for a codec and a restorer."""
    return codec if method_group(method) in UNRANKED_GROUPS else f"{codec}+{method}"


def compressai_json(points: pd.DataFrame) -> dict[str, dict]:
    """CompressAI's results layout, one object per curve (``name``, ``description``,
    ``results`` with ``bpp`` and each metric variant as lists in increasing bpp), keyed by a
    file-name-safe ``dataset-protocol-codec-method``."""
    out = {}
    for (ds, proto, codec, method), g in points.groupby(KEYS, sort=False):
        g = g.sort_values("bpp")
        res = {"bpp": [float(v) for v in g.bpp]}
        for v in variants(points):
            if g[v].notna().all():
                res[v] = [float(x) for x in g[v]]
        key = re.sub(r"[^A-Za-z0-9_.=+-]", "_", f"{ds}-{proto}-{codec}-{method}")
        out[key] = {
            "name": curve_name(codec, method),
            "description": f"carbench: {ds} ({proto}), codec {codec}, method {method}; "
            f"settings {', '.join(g.setting)}; bpp = stored file bits / pixels, mean "
            "over images",
            "results": res,
        }
    return out


def write_compressai_json(points: pd.DataFrame, out: Path) -> list[Path]:
    """One CompressAI results file per curve: ``out`` itself for a single curve, else
    ``<out stem>-<curve key>.json`` beside it."""
    from carbench.reports.build import write_report

    curves = compressai_json(points)
    paths = []
    for key, obj in curves.items():
        path = out if len(curves) == 1 else out.with_name(f"{out.stem}-{key}.json")
        write_report(path, json.dumps(obj, indent=2) + "\n")
        paths.append(path)
    return paths


@dataclass(frozen=True)
class Anchor:
    codec: str
    method: str


def parse_anchor(text: str, rows: pd.DataFrame) -> Anchor:
    """``CODEC`` (the codec alone) or ``CODEC+METHOD``; refused when the store has no such
    curve, naming the curves it has."""
    codec, _, method = text.partition("+")
    r = rd_rows(rows)
    if not method:
        base = [m for m in r[r.codec == codec].method.unique() if curve_name(codec, m) == codec]
        method = base[0] if base else "jpeg"
    have = sorted({curve_name(c, m) for c, m in r[["codec", "method"]].drop_duplicates().values})
    if not ((r.codec == codec) & (r.method == method)).any():
        raise BenchError(
            f"anchor {text!r}: no such curve in the store (curves: {', '.join(have) or 'none'})"
        )
    return Anchor(codec, method)


def _per_image(r: pd.DataFrame, variant: str) -> tuple[list[tuple[str, str]], dict]:
    """Per (codec, method): settings in increasing mean bpp, and images x settings arrays of
    bpp and metric over the images every setting has."""
    rv = r[r.variant == variant]
    out = {}
    for (codec, method), g in rv.groupby(["codec", "method"], sort=False):
        rate = g.pivot_table(index="image", columns="degradation", values="bpp", aggfunc="mean")
        val = g.pivot_table(index="image", columns="degradation", values="value", aggfunc="mean")
        rate, val = rate.dropna(), val.dropna()
        common = rate.index.intersection(val.index)
        cols = sorted(rate.columns, key=lambda d: rate[d].mean())
        out[(codec, method)] = (rate.loc[common, cols], val.loc[common, cols])
    return sorted(out), out


def bd_table(
    rows: pd.DataFrame,
    anchor: str,
    interp: str = "pchip",
    ci: int = 0,
    seed: int = 0,
    per_image: bool = False,
) -> pd.DataFrame:
    """BD-rate and BD-metric of every curve against ``anchor``, per (dataset, protocol)
    and metric variant (columns :data:`BD_COLUMNS`); with ``ci`` resamples of the images a
    95% percentile interval; with ``per_image`` also one row per image (its own curves).
    A refused pair keeps its row, with the numbers empty and ``refused`` saying why."""
    interp = INTERP.parse(interp, "--interp")
    a = parse_anchor(anchor, rows)
    out = []
    r = rd_rows(rows)
    for (ds, proto), rs in r.groupby(["dataset", "protocol"], sort=False):
        for variant in sorted(rs.variant.unique()):
            hb = higher_better(variant)
            pairs, arrays = _per_image(rs, variant)
            if (a.codec, a.method) not in arrays:
                continue
            ar, av = arrays[(a.codec, a.method)]
            for codec, method in pairs:
                tr, tv = arrays[(codec, method)]
                images = ar.index.intersection(tv.index)
                base = {
                    "dataset": ds,
                    "protocol": proto,
                    "codec": codec,
                    "method": method,
                    "anchor_codec": a.codec,
                    "anchor_method": a.method,
                    "metric": variant,
                    "interp": interp,
                    "n_images": len(images),
                    "image": "",
                }
                na, nt = curve_name(a.codec, a.method), curve_name(codec, method)
                ca = Curve(na, tuple(ar.loc[images].mean()), tuple(av.loc[images].mean()))
                ct = Curve(nt, tuple(tr.loc[images].mean()), tuple(tv.loc[images].mean()))
                out.append({**base, **_delta(ca, ct, hb, interp)})
                if ci and out[-1]["refused"] == "":
                    arrs = [x.loc[images].to_numpy() for x in (ar, av, tr, tv)]
                    (rl, rh), (ml, mh), _ = bootstrap_bd(
                        (na, arrs[0], arrs[1]), (nt, arrs[2], arrs[3]), hb, interp, ci, seed
                    )
                    out[-1].update(bd_rate_lo=rl, bd_rate_hi=rh, bd_metric_lo=ml, bd_metric_hi=mh)
                if per_image:
                    for img in images:
                        ci_a = Curve(f"{na} ({img})", tuple(ar.loc[img]), tuple(av.loc[img]))
                        ci_t = Curve(f"{nt} ({img})", tuple(tr.loc[img]), tuple(tv.loc[img]))
                        d = _delta(ci_a, ci_t, hb, interp)
                        out.append({**base, "n_images": 1, "image": img, **d})
    df = pd.DataFrame(out, columns=BD_COLUMNS)
    return df


def _delta(anchor: Curve, test: Curve, hb: bool, interp: str) -> dict:
    try:
        d = bd(anchor, test, hb, interp)
    except CurveError as e:
        return {"bd_rate_pct": np.nan, "bd_metric": np.nan, "refused": str(e)}
    return {
        "bd_rate_pct": d.bd_rate_pct,
        "bd_metric": d.bd_metric,
        "overlap_metric": d.overlap_metric,
        "overlap_rate": d.overlap_rate,
        "refused": "",
    }


def codec_name(codec: str) -> str:
    """``webp`` -> ``WebP`` (the reports' codec names); a learned codec keeps its model name."""
    from carbench.reports.html_report import CODEC_NAMES

    return CODEC_NAMES.get(codec, codec.removeprefix("compressai-"))


def pair_label(codec: str, method: str) -> str:
    """``WebP`` (codec alone), ``WebP + DnCNN-3``."""
    name = codec_name(codec)
    return name if curve_name(codec, method) == codec else f"{name} + {method_label(method)}"


def which_pair_wins(bdt: pd.DataFrame, ci_style: str = "brackets") -> TableModel:
    """The BD-rate of every codec and codec + restorer pair against the anchor, one block per
    dataset, one column per metric variant; the lowest BD-rate of a column red, the second
    blue (the anchor itself is not ranked)."""
    from carbench.reports.ci import show_interval

    sets = bdt[bdt.image == ""]
    metrics = sorted(sets.metric.unique(), key=lambda v: variants_order().get(v, 999))
    blocks = []
    for (ds, proto), g in sets.groupby(["dataset", "protocol"], sort=False):
        look = {(r.codec, r.method, r.metric): r for r in g.itertuples()}
        pairs = sorted(
            {(r.codec, r.method) for r in g.itertuples()},
            key=lambda p: (
                p != (g.anchor_codec.iloc[0], g.anchor_method.iloc[0]),
                curve_name(*p) != p[0],
                natural_key(p[0]),
                natural_key(p[1]),
            ),
        )
        rows = []
        for codec, method in pairs:
            is_anchor = (codec, method) == (g.anchor_codec.iloc[0], g.anchor_method.iloc[0])
            cells = []
            for v in metrics:
                rec = look.get((codec, method, v))
                val = None if rec is None or pd.isna(rec.bd_rate_pct) else rec.bd_rate_pct
                text = "–" if val is None else f"{val:+.2f}"
                cell = Cell(val, text, 0 if rec is None else rec.n_images, decimals=2)
                if val is not None and ci_style and not pd.isna(rec.bd_rate_lo):
                    show_interval(cell, rec.bd_rate_lo, rec.bd_rate_hi, ci_style)
                cells.append(cell)
            group = (
                "anchor"
                if is_anchor
                else "codec"
                if curve_name(codec, method) == codec
                else ("pair")
            )
            rows.append(Row(curve_name(codec, method), pair_label(codec, method), group, cells))
        for j in range(len(metrics)):
            ranked = [r.cells[j] for r in rows if r.group != "anchor"]
            rank_cells(ranked, False, key=lambda c: round(c.value, 2))
        blocks.append(Block(ds, proto, rows))
    anchor = pair_label(sets.anchor_codec.iloc[0], sets.anchor_method.iloc[0]) if len(sets) else ""
    interp = ", ".join(sorted(sets.interp.unique()))
    images = "/".join(str(n) for n in sorted(set(sets.n_images)))
    headers = [f"{metric_label(v.partition(':')[0])} ({v})" for v in metrics]
    note = (
        f"BD-rate (%) against {anchor}: the mean log-rate difference at equal metric, "
        f"interpolation {interp} (bjontegaard package); negative = fewer bits than the anchor. "
        f"Rate = stored bitstream bits per pixel, mean over the {images} images every curve "
        "has at every setting. Best in red, second in blue."
    )
    refused = sets[sets.refused != ""]
    if len(refused):
        note += " Refused: " + "; ".join(dict.fromkeys(refused.refused)) + "."
    return TableModel(
        f"Which pair wins: BD-rate against {anchor}",
        headers,
        blocks,
        [(f"BD-rate vs {anchor} (%)", len(headers))],
        ("Dataset", "Codec + method"),
        note,
        label="tab:bd-rate",
    )


def variants_order() -> dict[str, int]:
    from carbench.bench.metrics.registry import METRICS

    return {m.id: i for i, m in enumerate(METRICS)}


def rd_plots(points: pd.DataFrame) -> list[dict]:
    """Per (dataset, metric variant): the metric against bits per pixel, one line per
    (codec, method), as inline SVG (the report's colours and line styles)."""
    import matplotlib

    from carbench.reports.html_report import LINESTYLES, _line_plot, method_colours

    matplotlib.use("Agg")
    out = []
    shown = {ALONE if curve_name("", m) == "" else m for m in points.method.unique()}
    colours = method_colours(shown)
    codecs = sorted({codec_name(c) for c in points.codec.unique()}, key=natural_key)
    styles = {c: LINESTYLES[i % len(LINESTYLES)] for i, c in enumerate(codecs)}
    for (ds, proto), g in points.groupby(["dataset", "protocol"], sort=False):
        for v in variants(points):
            sub = g.dropna(subset=[v]).assign(
                mean=lambda d, v=v: d[v],
                codec=lambda d: d.codec.map(codec_name),
                method=lambda d: d.method.map(lambda m: ALONE if curve_name("", m) == "" else m),
            )
            if sub.empty:
                continue
            ylabel = f"{metric_label(v.partition(':')[0])} ({v})"
            with matplotlib.rc_context({"svg.fonttype": "none"}):  # labels stay text
                plot = _line_plot(
                    sub,
                    "bpp",
                    "bits per pixel (stored bitstream)",
                    v.partition(":")[0],
                    f"{ds} ({proto}): {v} vs bits per pixel",
                    colours,
                    styles,
                    ylabel=ylabel,
                )
            out.append(plot)
    return out


def rd_page(
    rows: pd.DataFrame, anchor: str | None, interp: str, ci: int, seed: int, ci_style: str
) -> str:
    """The RD page: RD plots of every curve and, with an anchor, the which-pair-wins table."""
    from carbench.reports.html_report import page

    points = curve_points(rows)
    if anchor:
        model = which_pair_wins(bd_table(rows, anchor, interp, ci, seed), ci_style)
    else:
        model = TableModel("Rate-distortion curves", [], [], footnote="no --anchor: no BD table")
    return page(model, table_id="bd-table", plots=rd_plots(points))


def render_rd(
    rows: pd.DataFrame,
    fmt: str,
    out: Path | None,
    anchor: str | None,
    interp: str = "pchip",
    ci: int = 0,
    seed: int = 0,
    ci_style: str = "brackets",
    per_image: bool = False,
) -> str | None:
    """``bench report --format rd|bd``: the text for ``out``'s suffix (CSV on stdout), or None
    after writing CompressAI JSON files (``rd`` with ``--out X.json``; their paths echoed)."""
    from carbench.reports.render import to_latex, to_markdown

    suffix = out.suffix.lower() if out else ".csv"
    interp = INTERP.parse(interp, "--interp")
    if fmt == "rd":
        if suffix == ".json":
            import typer

            for p in write_compressai_json(curve_points(rows), out):
                typer.echo(f"wrote {p}")
            return None
        if suffix in (".html", ".htm"):
            return rd_page(rows, anchor, interp, ci, seed, ci_style)
        if suffix != ".csv":
            raise BenchError(f"--format rd writes .csv, .json or .html, not {suffix!r}")
        return curve_points(rows).to_csv(index=False)  # full precision
    if not anchor:
        raise BenchError("--format bd needs --anchor CODEC or CODEC+METHOD, e.g. --anchor jpeg")
    bdt = bd_table(rows, anchor, interp, ci, seed, per_image)
    if suffix == ".csv":
        return bdt.to_csv(index=False)
    model = which_pair_wins(bdt, ci_style)
    if suffix == ".md":
        return to_markdown(model)
    if suffix == ".tex":
        return to_latex(model)
    if suffix in (".html", ".htm"):
        return rd_page(rows, anchor, interp, ci, seed, ci_style)
    raise BenchError(f"--format bd writes .csv, .md, .tex or .html, not {suffix!r}")
