"""The `pgov` command line. Each command group lives in its own module and registers itself."""

from __future__ import annotations

import sys

from engine.heap import held

# Every command module, with the collector held: modules live until exit (engine/heap.py).
with held():
    import typer

    from engine.cli import (
        activate_cmd,
        audit_cmd,
        data_cmd,
        digests_cmd,
        experiment_cmd,
        features_cmd,
        keys_cmd,
        keys_export,
        kyc_cmd,
        lineage_cmd,
        personas_cmd,
        policy_cmd,
        report_cmd,
        run_cmd,
        vault_cmd,
        versions_cmd,
    )
    from engine.cli._common import set_quiet, set_verbose, silence_stdout

app = typer.Typer(
    name="pgov",
    help="personagov: policy-governed customer personas, KYC tiers and signed lineage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    data_cmd,
    run_cmd,
    policy_cmd,
    features_cmd,
    keys_cmd,
    keys_export,
    lineage_cmd,
    audit_cmd,
    personas_cmd,
    kyc_cmd,
    versions_cmd,
    report_cmd,
    experiment_cmd,
    activate_cmd,
    vault_cmd,
    digests_cmd,
):
    _module.register(app)


def _print_version(value: bool) -> None:
    if value:
        from engine import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Structured logs to stderr instead of the workspace log."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress display or progress log events."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the personagov version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """personagov: policy-governed customer personas, KYC tiers and signed lineage."""
    del version  # handled eagerly by _print_version
    set_verbose(verbose)
    set_quiet(quiet)


def _stdout_is_devnull() -> bool:
    import os

    try:
        a, b = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def main() -> None:
    """The `pgov` entry point. A command that ends with an exit code (success or a refusal)
    ends the process without the interpreter's teardown of its heap and modules (0.4 CPU-s
    and more after a refresh), once every thread is done and every file flushed: see
    engine/process_exit.py. Never call it in a process that must go on (it exits)."""
    was_devnull = _stdout_is_devnull()
    try:
        app()
    except SystemExit as exc:
        # A closed stdout pipe (`pgov ... | head -1`) is not a failure: click/typer wrap
        # stdout and exit 1, rich points stdout at /dev/null and exits 1; exit 0 quietly.
        wrapped = type(sys.stdout).__name__.endswith("PacifyFlushWrapper")
        if exc.code == 1 and (wrapped or (_stdout_is_devnull() and not was_devnull)):
            silence_stdout()
            raise SystemExit(0) from None
        code = exc.code
        if code is None or (isinstance(code, int) and not isinstance(code, bool)):
            from engine.process_exit import exit_now

            exit_now(int(code or 0))  # returns only when a normal exit must happen instead
        raise
