"""`pgov vault status|erase`: the kyc token vault (engine/pseudonym/vault.py).

Status shows counts and digests per store; erase removes a subject's entries (their kv
tokens stop re-identifying), a `rotate_keys` decision of the policy, audited. No value or
token is ever printed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.cli._common import open_workspace as _open_ws
from engine.errors import UsageError
from engine.logs import ensure_logging

vault_app = typer.Typer(help="The kyc token vault: status and erasure.")


@vault_app.command("status")
@handle_errors
def status_cmd(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt) -> None:
    """Entries, segments and content digest of every vault store (no values, no tokens)."""
    from engine.pseudonym.vault import Vault

    ws = _open_ws(workspace)
    ensure_logging(ws)
    vault = Vault.for_workspace(ws)
    rows: list[dict[str, Any]] = []
    for name, version in vault.stores():
        d = vault.directory(name, version)
        entries = vault.read(name, version, ("t",)).height
        segs = len(vault._manifest(d))
        rows.append(
            {
                "column": name,
                "key_version": version,
                "entries": entries,
                "segments": segs,
                "sha256": vault.digest(name, version),
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("the token vault is empty")
    for r in rows:
        console.print(
            f"{r['column']} v{r['key_version']}: {r['entries']} entries in {r['segments']} "
            f"segment(s), sha256 {r['sha256'][:16]}…",
            highlight=False,
        )


@vault_app.command("erase")
@handle_errors
def erase_cmd(
    values_file: Path = typer.Option(
        ..., "--values-file", help="Parquet/CSV with the column, or text: one value per line."
    ),
    column: str = typer.Option("customer_id", "--column", help="The tokenised column."),
    normaliser: str | None = typer.Option(
        None, "--normaliser", help="As the plan normalises the column (email, national_id)."
    ),
    actor: str = typer.Option(..., "--actor", help="Configured actor allowed by policy."),
    reason: str = typer.Option(..., "--reason", help="Why (audited as a digest)."),
    case: str | None = typer.Option(None, "--case", help="Case reference (audited as is)."),
    workspace: Path = WorkspaceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Erase subjects' vault entries: their kv tokens no longer re-identify."""
    from engine.actors import acting
    from engine.pseudonym.filing import erase_values, read_values

    if len(reason.strip()) < 5:
        raise UsageError("--reason is mandatory: say why (at least a few words)")
    if case is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}", case):
        raise UsageError("--case: a reference of letters, digits and . _ : / - (max 64)")
    ws = _open_ws(workspace)
    ensure_logging(ws)
    values = read_values(values_file, column)
    with acting(ws, actor, "vault_erase", column=column, count=len(values)):
        writes = erase_values(
            ws, actor, column, values, normaliser=normaliser, reason=reason, case=case
        )
    erased = sum(w.erased for w in writes)
    if as_json:
        emit_json({"column": column, "values": len(values), "erased": erased})
        return
    console.print(
        f"{erased} vault entr{'y' if erased == 1 else 'ies'} erased for {len(values)} "
        f"value(s) of {column}; their tokens no longer re-identify",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(vault_app, name="vault")
