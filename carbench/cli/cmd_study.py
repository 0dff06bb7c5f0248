"""``bench study create|serve``: human rating and pairwise (2AFC) studies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from carbench.cli.options import WorkspaceOpt, workspace
from carbench.reports.presets import CI_STYLES

app = typer.Typer(no_args_is_help=True, help="Human studies: create, serve, report.")


def _create_help(name: str) -> str:
    """A declared study option's help with its type and default (``STUDY_OPTIONS``)."""
    from carbench.study.model import STUDY_OPTIONS

    opt = next(o for o in STUDY_OPTIONS if o.name == name)
    return f"{opt.help} [{opt.describe()}; default {opt.text(opt.default)}]"


@app.command("create")
def create_cmd(
    folder: Annotated[Path, typer.Argument(help="New study folder")],
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods", help="Comma-separated method ids [str; required unless --preset]"
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="A published design: methods, degradations, mode, scale and raters from it "
            "(codiff-table4: CODiff supplementary Table 4) [str; default: none]",
        ),
    ] = None,
    mode: Annotated[str, typer.Option("--mode", help="rating | pairwise")] = "rating",
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d")] = None,
    degradation: Annotated[list[str] | None, typer.Option("--degradation", "-g")] = None,
    anchors: Annotated[str, typer.Option(help="Comma-separated: gt, jpeg")] = "",
    images: Annotated[int | None, typer.Option("--images", help="Images per set")] = None,
    crop: Annotated[int | None, typer.Option(help="Seeded random crops of this size")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    repeats: Annotated[int, typer.Option(help="Items repeated per rater")] = 2,
    raters: Annotated[
        int | None, typer.Option(help="Rater links to create [int; default 20, or the preset's]")
    ] = None,
    adaptive: Annotated[str | None, typer.Option(help=_create_help("adaptive"))] = None,
    scale_min: Annotated[int, typer.Option()] = 1,
    scale_max: Annotated[int, typer.Option()] = 10,
    db: Annotated[
        str, typer.Option("--db", help="postgresql:// URL for the answers [answers.sqlite]")
    ] = "",
    workspace_dir: WorkspaceOpt = None,
) -> None:
    """Build a study folder from outputs already in the workspace; print a summary, then the
    admin link and one link per rater (paths under the server's address, also saved in
    FOLDER/links.txt)."""
    from carbench.core.errors import BenchError
    from carbench.core.options import resolve
    from carbench.study.create import create_study
    from carbench.study.db import StudyDB
    from carbench.study.model import STUDY_OPTIONS

    given = {"adaptive": adaptive} if adaptive is not None else {}
    n_adaptive = resolve("bench study create", STUDY_OPTIONS, given)["adaptive"]
    wanted = [m for m in (methods or "").split(",") if m]
    scale = (scale_min, scale_max)
    if preset:
        from carbench.study.presets import get_preset

        design = get_preset(preset)
        preset_methods, preset_degs = design.design()
        wanted = wanted or preset_methods
        degradation = degradation or preset_degs
        mode, scale = design.mode, design.scale
        raters = design.raters if raters is None else raters
    elif not wanted:
        raise BenchError("give --methods (comma-separated method ids) or --preset")
    study = create_study(
        workspace(workspace_dir),
        folder,
        mode,
        wanted,
        dataset,
        degradation,
        [a for a in anchors.split(",") if a],
        images,
        crop,
        seed,
        repeats,
        scale,
        name=folder.name,
        db_url=db,
        preset=preset or "",
        adaptive=n_adaptive,
    )
    raters = 20 if raters is None else raters
    db = StudyDB.open(study)
    links = db.add_raters(study, raters)
    db.close()
    lines = [f"{name} /r/{token}" for name, token in links]
    (folder / "links.txt").write_text(
        f"admin /admin/{study.config.admin_token}\n" + "\n".join(lines) + "\n"
    )
    typer.echo(
        f"study {folder}: {len(study.stimuli)} images, {len(study.items)} items, "
        f"{len(links)} raters; links (paths under the server's address), also in "
        f"{folder / 'links.txt'}:\n" + (folder / "links.txt").read_text(),
        nl=False,
    )


@app.command("serve")
def serve_cmd(
    folder: Annotated[Path, typer.Argument(help="Study folder")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8765,
) -> None:
    """Serve a study (uvicorn); answers go to the folder's SQLite database (WAL) or the
    PostgreSQL database named at creation (`create --db`)."""
    import logging

    import uvicorn

    from carbench.study.model import Study
    from carbench.study.server import create_app

    study = Study.load(folder, verify=True)
    handler = logging.FileHandler(folder / "server.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("carbench.study.server").addHandler(handler)
    logging.getLogger("carbench.study.server").setLevel(logging.INFO)
    typer.echo(f"admin: http://{host}:{port}/admin/{study.config.admin_token}")
    uvicorn.run(create_app(study), host=host, port=port, log_level="warning")


def _help(name: str) -> str:
    """A declared report option's help with its type and default (``REPORT_OPTIONS``)."""
    from carbench.study.model import REPORT_OPTIONS

    opt = next(o for o in REPORT_OPTIONS if o.name == name)
    return f"{opt.help} [{opt.describe()}; default {opt.text(opt.default)}]"


def _agreement(study, df, model: str, metrics_ws: Path | None, n_boot: int, seed: int, style):
    """(title, TableModel, comparisons text) of the metric-human agreement section."""
    from carbench.bench.store import ResultStore
    from carbench.core.errors import BenchError
    from carbench.study.agreement import study_agreement
    from carbench.study.report import agreement_model, agreement_note, comparisons_text

    root = Path(metrics_ws or study.config.workspace or "")
    if not str(root) or not (root / "results").is_dir():
        raise BenchError(
            f"--agreement needs the workspace whose store has the metrics: {root or '(none)'} "
            "has no results/; give --metrics-from WS"
        )
    cfg = study.config
    sets = df.drop_duplicates(["dataset", "degradation"])
    rows = ResultStore(root / "results").load(
        dataset=sorted(set(sets.dataset)), degradation=sorted(set(sets.degradation))
    )
    long, comps = study_agreement(df, cfg.mode, rows, model, n_boot, seed)
    if long.empty:
        raise BenchError(f"{root}: no metric in the store scores this study's outputs")
    title = f"Metric-human agreement, study {cfg.name}"
    note = agreement_note(cfg.mode, df.rater.nunique(), n_boot, seed, style)
    return title, agreement_model(long, comps, title, note, style), comparisons_text(comps)


@app.command("report")
def report_cmd(
    folder: Annotated[Path, typer.Argument(help="Study folder")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="latex | html | markdown | csv")] = (
        "markdown"
    ),
    model: Annotated[
        str, typer.Option("--model", help="Pairwise scores: bt (Bradley-Terry) | thurstone")
    ] = "bt",
    exclude_outliers: Annotated[bool, typer.Option(help="Drop flagged raters")] = False,
    min_corr: Annotated[
        float, typer.Option(help="Outlier: correlation with the other raters below this")
    ] = 0.3,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    ci_style: Annotated[
        str, typer.Option("--ci-style", help=f"Intervals: {' | '.join(CI_STYLES)}")
    ] = "brackets",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the table here")] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Workspace whose result store gets the rows")
    ] = None,
    agreement: Annotated[
        bool,
        typer.Option(
            "--agreement",
            help="Also: how well each metric in the store agrees with the raters (SRCC, KRCC, "
            "PLCC, logistic PLCC, 2AFC for pairs), pooled and per degradation",
        ),
    ] = False,
    metrics_ws: Annotated[
        Path | None,
        typer.Option(
            "--metrics-from",
            help="Workspace whose store has the metrics [path; default: the study's workspace]",
        ),
    ] = None,
    agreement_resamples: Annotated[
        str | None, typer.Option(help=_help("agreement_resamples"))
    ] = None,
    screening: Annotated[str | None, typer.Option(help=_help("screening"))] = None,
    mos_ci_width: Annotated[str | None, typer.Option(help=_help("mos_ci_width"))] = None,
    interval: Annotated[str | None, typer.Option(help=_help("interval"))] = None,
) -> None:
    """MOS (rating) or Bradley-Terry/Thurstone scores (pairwise) with 95% intervals in the
    paper layout, rater consistency and outlier flags; optionally into the result store."""
    from carbench.core.errors import BenchError
    from carbench.core.options import resolve
    from carbench.reports.build import write_report
    from carbench.reports.ci import check_style
    from carbench.study.model import REPORT_OPTIONS, Study
    from carbench.study.report import render_study, study_model, study_note
    from carbench.study.stats import answers_frame, mos, pairwise_scores, screen_raters, store_rows

    check_style(ci_style)
    given = {
        k: v
        for k, v in {
            "agreement_resamples": agreement_resamples,
            "screening": screening,
            "mos_ci_width": mos_ci_width,
            "interval": interval,
        }.items()
        if v is not None
    }
    opts = resolve("bench study report", REPORT_OPTIONS, given)

    study = Study.load(folder)
    cfg = study.config
    df = answers_frame(study)
    if df.empty:
        raise BenchError(f"{folder}: no answers yet")
    if opts["screening"] != "corr" and cfg.mode == "pairwise":
        raise BenchError("--screening bt500/either needs ratings: BT.500 screens rating studies")
    if opts["interval"] == "bt500" and cfg.mode == "pairwise":
        raise BenchError("--interval bt500 is the MOS interval of rating studies")
    flags = screen_raters(df, min_corr)
    typer.echo(flags.to_string(index=False), err=True)
    rule = {
        "corr": flags.outlier,
        "bt500": flags.get("bt500", flags.outlier & False),
        "either": flags.outlier | flags.get("bt500", flags.outlier & False),
    }[opts["screening"]]
    dropped = sorted(flags.rater[rule]) if exclude_outliers else []
    df = df[~df.rater.isin(dropped)]
    why = {
        "corr": f"correlation with the other raters below --min-corr {min_corr}",
        "bt500": "rejected by the ITU-R BT.500-14 Annex 1 2.3.1 screening",
        "either": f"correlation below --min-corr {min_corr} or rejected by BT.500 screening",
    }[opts["screening"]]
    if df.empty:
        hint = "or with a lower --min-corr" if opts["screening"] == "corr" else "or another rule"
        raise BenchError(
            f"every rater ({', '.join(dropped)}) is flagged as an outlier ({why}); nothing left "
            f"to report: rerun without --exclude-outliers {hint}"
        )
    raters = df.rater.nunique()
    if cfg.mode == "pairwise":
        if model not in ("bt", "thurstone"):
            raise BenchError(f"--model {model!r}: use bt or thurstone")
        table = pairwise_scores(df, model, resamples, seed).rename(columns={"score": "mean"})
        name = "Bradley-Terry log-strength" if model == "bt" else "Thurstone Case V score"
        title = f"User study {cfg.name}: {name} (2AFC, mean zero per set)"
        score = model
    else:
        table = mos(df, resamples, seed).rename(columns={"mos": "mean"})
        if opts["interval"] == "bt500":
            table = table.assign(lo=table.bt500_lo, hi=table.bt500_hi)
        title = f"User study {cfg.name}: MOS ({cfg.scale_min}-{cfg.scale_max})"
        score = "mos"
    note = study_note(cfg.mode, raters, resamples, seed, ci_style, dropped, opts["interval"])
    if dropped:
        note += f" Screening rule: {why}."
    if cfg.mode == "rating":
        from carbench.study.reliability import reliability_note, reliability_summary
        from carbench.study.stats import condition_grid

        width = opts["mos_ci_width"]
        summary = reliability_summary(condition_grid(df).to_numpy(float), width)
        note += " " + reliability_note(summary, width)
        if summary["too_few"]:
            typer.echo(reliability_note(summary, width).split(" Warning: ")[1], err=True)
    order = None
    if cfg.preset:
        from carbench.study.presets import get_preset

        design = get_preset(cfg.preset)
        order = design.design()[0]
        note += f" Design: {design.where} ({design.table})."
    model_ = study_model(table, score, title, note, ci_style, methods=order)
    sections: list[tuple[str, object, str]] = []
    if agreement:
        sections.append(
            _agreement(study, df, model, metrics_ws, opts["agreement_resamples"], seed, ci_style)
        )
    text = render_study(table, fmt, model_, sections)
    if out is not None:
        write_report(out, text)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)
    if store is not None:
        from carbench.bench.store import ResultStore

        rows = store_rows(df, cfg.mode, f"study {cfg.name}")
        ResultStore(Path(store) / "results").append(rows)
        typer.echo(f"stored {len(rows)} rows in {store}/results", err=True)
