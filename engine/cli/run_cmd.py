"""`pgov refresh`, `pgov demo`, `pgov version`."""

from __future__ import annotations

import typer

from engine import __version__


def version() -> None:
    """Print the personagov version."""
    typer.echo(__version__)


def register(app: typer.Typer) -> None:
    app.command("version")(version)
