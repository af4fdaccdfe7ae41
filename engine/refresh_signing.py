"""Signing a refresh's version: the workspace signer (refused before any work when there is
no valid key) and the signed lineage statement over the staged files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import KeyMaterialError
from engine.refresh_outputs import BuiltVersion
from engine.store import STATEMENT
from engine.workspace import Workspace


def git_commit() -> str | None:
    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (head.parent / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def signer_for(ws: Workspace) -> Any:
    from lineage.signing import SigningKeyring

    keys = ws.config.keys
    signing_dir, trust_file = ws.path(keys.signing_dir), ws.path(keys.trust_file)
    if not trust_file.is_file():
        raise KeyMaterialError(
            f"{trust_file}: no signing key for this workspace; run 'pgov keys init' first"
        )
    return SigningKeyring(signing_dir, trust_file).signer()


def sign(
    stage: Path,
    built: BuiltVersion,
    finished_at: datetime,
    signer: Any,
    seconds: dict[str, float],
) -> None:
    from engine.provenance import lineage_predicate
    from lineage.statement import sign_version

    predicate = lineage_predicate(built, finished_at, git_commit(), seconds)
    sign_version(stage, predicate, signer)
    if not (stage / STATEMENT).is_file():
        raise RuntimeError(f"{stage}: signing wrote no statement")
