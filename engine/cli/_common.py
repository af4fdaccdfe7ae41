"""What every CLI command shares: the console, workspace opening, error handling, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from engine.errors import ExitCode, PgovError
from engine.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

WorkspaceOpt = typer.Option(
    Path("."), "--workspace", "-w", help="Workspace directory (holds pgov.toml)."
)
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def open_workspace(path: Path) -> Workspace:
    return Workspace.open(path)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a PgovError into its message and exit code: users never see a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PgovError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def fail(message: str, code: ExitCode) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(int(code))
