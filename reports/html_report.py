"""The self-contained HTML report: the table, plots, side-by-side crops, per-image results; the
one page template of ``bench report`` and ``bench study report``."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from carbench.core.imageio import read_image
from carbench.core.workspace import Workspace
from carbench.reports.labels import GROUND_TRUTH, degradation_label, method_label, metric_label
from carbench.reports.model import TableModel
from carbench.reports.render import _env, table_html
from carbench.reports.tables import natural_key

CROP = 96


def _png_b64(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def plots(summary: pd.DataFrame, rows: pd.DataFrame) -> list[dict]:
    """Metric vs QF (single JPEG) and metric vs bpp, one line per method, per dataset+metric."""
    import matplotlib

    matplotlib.use("Agg")

    out = []
    colours = method_colours(summary.method.unique())
    codecs = sorted({codec_family(d) for d in summary.degradation.unique()}, key=natural_key)
    styles = {c: LINESTYLES[i % len(LINESTYLES)] for i, c in enumerate(codecs)}
    single = summary[summary.degradation.str.fullmatch(r"jpeg-q\d+")].copy()
    single["qf"] = single.degradation.str.extract(r"q(\d+)")[0].astype(int)
    bpp = rows.groupby(["dataset", "degradation"])["bpp"].mean() if "bpp" in rows else None
    for (ds, variant), g in summary.groupby(["dataset", "variant"], sort=False):
        metric = variant.partition(":")[0]
        s = single[(single.dataset == ds) & (single.variant == variant)]
        if s.degradation.nunique() >= 2:
            title = f"{ds}: {variant} vs QF"
            out.append(_line_plot(s, "qf", "JPEG quality factor", metric, title, colours, styles))
        if bpp is not None:
            g = g.assign(bpp=[bpp.get((ds, d), np.nan) for d in g.degradation])
            g = g.dropna(subset=["bpp"]).assign(codec=lambda d: d.degradation.map(codec_family))
            if g.degradation.nunique() >= 2:
                out.append(
                    _line_plot(
                        g,
                        "bpp",
                        "bits per pixel (input bitstream)",
                        metric,
                        f"{ds}: {variant} vs bpp",
                        colours,
                        styles,
                    )
                )
    return out


def codec_family(deg: str) -> str:
    """The codec a degradation id belongs to, for one line per (method, codec) on bpp plots:
    ``jpeg-q10`` -> ``JPEG``, ``avif-q50-444`` -> ``AVIF``; a chain is ``chain``."""
    kind = deg.partition("-")[0]
    return CODEC_NAMES.get(kind, kind)


CODEC_NAMES = {
    "jpeg": "JPEG",
    "jpeg2": "JPEG×2",
    "bpg": "BPG",
    "hevc": "HEVC",
    "webp": "WebP",
    "jp2k": "JPEG 2000",
    "avif": "AVIF",
    "jxl": "JPEG XL",
    "heif": "HEIF",
    "chain": "chain",
}


LINESTYLES = ("-", "--", ":", "-.")  # one per codec on bpp charts, in sorted codec order


def method_colours(methods) -> dict[str, str]:
    """One colour per method for every plot of a report, picked by the method's position in
    the sorted list of all its methods: matplotlib's default cycle, tab20 beyond its length,
    evenly spaced turbo beyond 20."""
    import matplotlib
    from matplotlib.colors import to_hex

    names = sorted(dict.fromkeys(map(str, methods)), key=natural_key)
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(names) <= len(cycle):
        palette = list(cycle)
    elif len(names) <= 20:
        palette = [to_hex(matplotlib.colormaps["tab20"](i)) for i in range(20)]
    else:
        turbo = matplotlib.colormaps["turbo"]
        palette = [to_hex(turbo(t)) for t in np.linspace(0.05, 0.95, len(names))]
    return {m: palette[i] for i, m in enumerate(names)}


def _line_plot(
    df: pd.DataFrame,
    x: str,
    xlabel: str,
    metric: str,
    title: str,
    colours: dict[str, str],
    styles: dict[str, str],
    ylabel: str | None = None,
) -> dict:
    """One line per method (per method and codec when ``df`` has a ``codec`` column, so several
    codecs share one chart) of ``df[x]`` against the set mean, as inline SVG; a method keeps its
    colour from ``colours``, a codec its line style from ``styles``; the y axis is labelled
    ``ylabel`` (default: the metric's label)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    keys = ["method", "codec"] if "codec" in df and df.codec.nunique() > 1 else ["method"]
    for k, mg in df.groupby(keys, sort=False):
        mg = mg.sort_values(x)
        label = method_label(k[0]) + (f" · {k[1]}" if len(keys) == 2 else "")
        style = styles.get(k[1], "-") if len(keys) == 2 else "-"
        ax.plot(mg[x], mg["mean"], marker="o", label=label, color=colours[k[0]], linestyle=style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or metric_label(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    svg = _svg(fig)
    plt.close(fig)
    return {"title": title, "svg": svg}


def _region(gt: np.ndarray) -> tuple[int, int]:
    """Top-left of the CROP x CROP window with the most gradient energy (detail shows there)."""
    g = gt.astype(np.float64)
    g = g.mean(axis=2) if g.ndim == 3 else g
    e = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    if e.shape[0] < CROP or e.shape[1] < CROP:
        return 0, 0
    s = np.zeros((e.shape[0] + 1, e.shape[1] + 1))
    s[1:, 1:] = e.cumsum(0).cumsum(1)
    win = s[CROP:, CROP:] - s[:-CROP, CROP:] - s[CROP:, :-CROP] + s[:-CROP, :-CROP]
    y, x = np.unravel_index(np.argmax(win), win.shape)
    return int(y), int(x)


def crops(ws: Workspace, rows: pd.DataFrame, max_sets: int = 6) -> list[dict]:
    """For each (dataset, degradation): one image, the same region from the ground truth and
    every method whose output is on disk."""
    from carbench.bench.generate import decoded_input, read_manifest

    out = []
    if "output_path" not in rows:
        rows = rows.assign(output_path=None)
    sets = rows[["dataset", "protocol", "degradation"]].drop_duplicates().values.tolist()
    for ds, proto, deg in sorted(sets, key=lambda t: tuple(map(natural_key, t)))[:max_sets]:
        try:
            man = read_manifest(ws, ds, proto, deg).set_index("image")
        except Exception:
            continue
        sub = rows[(rows.dataset == ds) & (rows.protocol == proto) & (rows.degradation == deg)]
        image = sorted(sub.image.unique(), key=natural_key)[0]
        rec = man.loc[image]
        gt = read_image(ws.resolve(rec.gt_path)).pixels
        y, x = _region(gt)

        def cut(img, y=y, x=x):
            return np.ascontiguousarray(img[y : y + CROP, x : x + CROP])

        figs = [{"label": method_label(GROUND_TRUTH), "png": _png_b64(cut(gt))}]
        degraded = decoded_input(ws, rec, deg)
        figs.append({"label": f"Input ({degradation_label(deg)})", "png": _png_b64(cut(degraded))})
        for m in dict.fromkeys(sub.method):
            paths = sub[(sub.method == m) & (sub.image == image)].output_path.dropna()
            if len(paths) and isinstance(paths.iloc[0], str):
                try:
                    img = read_image(ws.resolve(paths.iloc[0])).pixels
                except Exception:
                    continue
                if img.shape == gt.shape:
                    figs.append({"label": method_label(m), "png": _png_b64(cut(img))})
        out.append(
            {
                "title": f"{ds} / {proto} / {deg}: {image}, region ({x},{y}) {CROP}x{CROP}",
                "figures": figs,
            }
        )
    return out


def drilldown(rows: pd.DataFrame) -> list[dict]:
    """Per (dataset, degradation): images x (method, metric) values."""
    out = []
    for (ds, deg), g in rows.groupby(["dataset", "degradation"], sort=False):
        piv = g.pivot_table(index="image", columns=["method", "variant"], values="value")
        piv = piv.sort_index(key=lambda ix: ix.map(natural_key))
        head = "".join(
            f"<th>{html.escape(method_label(m))}<br>{html.escape(v)}</th>" for m, v in piv.columns
        )
        body = "".join(
            f"<tr><th class='m'>{html.escape(str(i))}</th>"
            + "".join(f"<td>{'' if pd.isna(v) else f'{v:.4f}'}</td>" for v in r)
            + "</tr>"
            for i, r in zip(piv.index, piv.values, strict=True)
        )
        out.append(
            {
                "title": f"{ds} / {deg} ({len(piv)} images)",
                "table": f"<table class='results'><thead><tr><th>image</th>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table>",
            }
        )
    return sorted(out, key=lambda d: natural_key(d["title"]))


def page(
    model: TableModel,
    table_id: str = "main-table",
    plots: list[dict] | None = None,
    crops: list[dict] | None = None,
    drilldown: list[dict] | None = None,
    sections: list[dict] | None = None,
) -> str:
    """The report page (style, sorting script) around ``model``'s table and its footnote, with
    whichever of plots, crops and per-image tables are given; ``sections`` ({title, html}:
    html already escaped, e.g. another ``table_html``) follow the table."""
    return _env.get_template("report.html.j2").render(
        title=html.escape(model.title),
        table=table_html(model, table_id),
        plots=plots or [],
        crops=crops or [],
        drilldown=drilldown or [],
        sections=sections or [],
    )


def to_html(
    model: TableModel, summary: pd.DataFrame, rows: pd.DataFrame, ws: Workspace | None
) -> str:
    """``bench report --format html``: the table, plots, crops and per-image results."""
    return page(
        model,
        plots=plots(summary, rows),
        crops=crops(ws, rows),
        drilldown=drilldown(rows),
    )
