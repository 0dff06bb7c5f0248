"""The ``bench`` command line: a thin Typer group; one ``carbench/cli/cmd_<verb>.py`` per verb."""

from __future__ import annotations

import logging

import typer

from carbench.cli import cmd_datasets as datasets_cmd
from carbench.cli import cmd_methods as methods_cmd
from carbench.cli import cmd_metrics as metrics_cmd
from carbench.cli import cmd_study as study_cmd
from carbench.cli import cmd_weights as weights_cmd
from carbench.cli.cmd_check import check_cmd
from carbench.cli.cmd_generate import generate_cmd
from carbench.cli.cmd_qf import qf_cmd
from carbench.cli.cmd_report import report_cmd
from carbench.cli.cmd_reproduce import reproduce_cmd
from carbench.cli.cmd_run import run_cmd
from carbench.core import __version__
from carbench.core.errors import BenchError

app = typer.Typer(
    name="bench",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rich costs ~0.13 s at every --help
    help="carbench: generate degraded test sets, run restoration methods, score, report.",
)
app.add_typer(datasets_cmd.app, name="datasets")
app.add_typer(weights_cmd.app, name="weights")
app.add_typer(study_cmd.app, name="study")
app.command("generate")(generate_cmd)
app.command("run")(run_cmd)
app.command("report")(report_cmd)
app.command("reproduce")(reproduce_cmd)
app.add_typer(metrics_cmd.app, name="metrics")
app.add_typer(methods_cmd.methods_app, name="methods")
app.add_typer(methods_cmd.degradations_app, name="degradations")
app.command("check")(check_cmd)
app.command("qf")(qf_cmd)


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging"),
    version: bool = typer.Option(False, "--version", help="Print the version and exit"),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if version:
        typer.echo(f"carbench {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (callable from tests)."""
    try:
        code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
        if isinstance(code, int):
            return code
    except BenchError as e:
        typer.echo(f"error: {e}", err=True)
        return 1
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        return int(code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted; re-run the same command to resume", err=True)
        return 130
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            return e.exit_code
        raise
    return 0
