"""The `pgov` command line. Each command group lives in its own module and registers itself."""

from __future__ import annotations

import typer

from engine.cli import (
    audit_cmd,
    data_cmd,
    keys_cmd,
    kyc_cmd,
    lineage_cmd,
    personas_cmd,
    policy_cmd,
    report_cmd,
    run_cmd,
    versions_cmd,
)
from engine.cli._common import set_verbose

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
    keys_cmd,
    lineage_cmd,
    audit_cmd,
    personas_cmd,
    kyc_cmd,
    versions_cmd,
    report_cmd,
):
    _module.register(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Structured logs to stderr instead of the workspace log."
    ),
) -> None:
    """personagov: policy-governed customer personas, KYC tiers and signed lineage."""
    set_verbose(verbose)


def main() -> None:
    app()
