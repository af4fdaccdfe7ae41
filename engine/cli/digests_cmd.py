"""`pgov digests status|clear`: the sealed file-digest cache (engine/digest_cache.py).

Status counts entries and how many verify under the workspace's current master key; clear
removes them all, and the pre-pass cache's entries (engine/prepass_cache.py), so the next
refresh hashes every input file and runs every pre-pass again. No path, file name or digest
is printed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli._common import JsonOpt, WorkspaceOpt, console, emit_json, handle_errors
from engine.cli._common import open_workspace as _open_ws
from engine.logs import ensure_logging

digests_app = typer.Typer(help="The file-digest cache: status and clearing.")


@digests_app.command("status")
@handle_errors
def status_cmd(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt) -> None:
    """Entries in the digest cache and how many verify under the current master key; the
    pre-pass cache's entries."""
    from engine import digest_cache, prepass_cache
    from engine.pseudonym.keyring import Keyring

    ws = _open_ws(workspace)
    ensure_logging(ws)
    data = digest_cache.status(ws, Keyring.load(ws))
    data["prepass_entries"] = len(prepass_cache.entries(ws))
    if as_json:
        emit_json(data)
        return
    state = "on" if data["enabled"] else f"off ({digest_cache.ENV_SWITCH})"
    console.print(
        f"digest cache {state}: {data['entries']} entries ({data['bytes']:,} bytes), "
        f"{data['verified']} verified under the current master key, {data['ignored']} that "
        f"a refresh ignores; {data['prepass_entries']} pre-pass entries",
        highlight=False,
    )


@digests_app.command("clear")
@handle_errors
def clear_cmd(workspace: Path = WorkspaceOpt, as_json: bool = JsonOpt) -> None:
    """Remove every entry, and the pre-pass cache's: the next refresh hashes every input
    file and runs every pre-pass again."""
    from engine import digest_cache, prepass_cache

    ws = _open_ws(workspace)
    ensure_logging(ws)
    n = digest_cache.clear(ws)
    pre = prepass_cache.clear(ws)
    if as_json:
        emit_json({"removed": n, "prepass_removed": pre})
        return
    console.print(
        f"digest cache cleared: {n} entries removed, {pre} pre-pass entries removed",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands or sub-app to the root app."""
    app.add_typer(digests_app, name="digests")
