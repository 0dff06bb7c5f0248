"""The command line, the top floor: ``app`` (the Typer group) and one ``cmd_<verb>`` per verb."""

from carbench.cli.app import main

__all__ = ["main"]
