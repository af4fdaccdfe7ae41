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


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here; a reader that closed the pipe (`| head -1`) is not a failure.
        self.quiet = True
        silence_stdout()
        raise SystemExit(0)


# Piped output (CI logs, `| less`) gets a wide fixed width instead of rich's 80 columns,
# so tables stay readable rather than truncated.
console = _Console(width=None if sys.stdout.isatty() else 140)
err_console = _Console(stderr=True, width=None if sys.stderr.isatty() else 140)

P = ParamSpec("P")
R = TypeVar("R")

WorkspaceOpt = typer.Option(
    Path("."), "--workspace", "-w", help="Workspace directory (holds pgov.toml)."
)
JsonOpt = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


_verbose = False
_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def progress(title: str) -> Any:
    """Per-stage progress for long work: rich on a terminal, log events otherwise, nothing
    with --quiet (see engine/progress.py)."""
    from engine.progress import progress_reporter

    return progress_reporter(title, quiet=_quiet, console=err_console)


def set_verbose(verbose: bool) -> None:
    global _verbose
    _verbose = verbose
    from engine.logs import configure_logging

    # Before any workspace is known: redacting stderr logs, quiet unless asked.
    configure_logging(None, None, "INFO" if verbose else "WARNING")


def open_workspace(path: Path) -> Workspace:
    """Open the workspace and send this process's structured logs to its logs/ directory
    (JSON lines, redacted); with --verbose they go to stderr instead."""
    from engine.logs import configure_logging

    ws = Workspace.open(path)
    if _verbose:
        configure_logging(ws, None, "INFO")
    else:
        configure_logging(ws, ws.logs_dir / "pgov.jsonl", "INFO")
    return ws


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a PgovError into its message and exit code: users never see a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PgovError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except OSError as exc:
            from engine.errors import StorageError, storage_error

            err = storage_error(exc)
            if not isinstance(err, StorageError):
                raise
            # Disk full, read-only or failing: exit 9. Publishing is atomic (intent, rename,
            # completion; recovery at the next run), so nothing half-written is left.
            err_console.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(ExitCode.STORAGE)) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # `pgov ... | head -1`: the reader has what it wanted; that is not a failure.
            silence_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:  # only a full disk or an I/O error is handled; rest re-raised
            from engine.errors import StorageError, storage_error

            err = storage_error(exc)
            if not isinstance(err, StorageError):
                raise
            err_console.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(int(err.exit_code)) from None

    return wrapper


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def fail(message: str, code: ExitCode) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(int(code))
