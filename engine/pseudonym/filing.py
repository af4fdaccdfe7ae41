"""The token vault's two audited operations: filing a refresh's new tokens, and erasure.

Both are lineage: the audit log records what each did by counts and file digests (the vault
segment written or rewritten), with the sha256 of each erased token; never a value, never a
token in clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine import audit
from engine.errors import BadInputError, PolicyDenied, UsageError
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.tokens import KYC, VAULT, Pseudonymiser
from engine.pseudonym.vault import Vault, VaultWrite
from engine.workspace import Workspace

log = structlog.get_logger(__name__)
FILED = "vault_written"
ERASED = "vault_erased"


def _store(w: VaultWrite) -> dict[str, Any]:
    out: dict[str, Any] = {"column": w.context, "key_version": w.version, "added": w.added}
    if w.erased:
        out["erased"] = w.erased
    if w.segment_sha256:
        out["segment_sha256"] = w.segment_sha256
    out["segments"] = w.segments
    return out


def file_tokens(
    ws: Workspace,
    pseudonymiser: Pseudonymiser,
    actor: str,
    used: Mapping[str, pl.Series] | None = None,
    **context: Any,
) -> list[VaultWrite]:
    """Flush the refresh's kv tokens into the vault; one audit entry when anything was added.
    `context` (run id, jurisdiction, purpose) goes into that entry."""
    writes = pseudonymiser.flush(used)
    added = [w for w in writes if w.added]
    if added:
        audit.record(ws, FILED, actor, **context, stores=[_store(w) for w in added])
    return writes


def read_values(path: Path, column: str) -> list[str]:
    """Identifiers to erase: a parquet or CSV file with `column`, or a text file with one
    value per line. The values are never echoed, in errors either."""
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            df = pl.read_parquet(path)
        elif path.suffix == ".csv":
            df = pl.read_csv(path, infer_schema=False)
        else:
            lines = path.read_text(encoding="utf-8").splitlines()
            df = pl.DataFrame({column: [ln.strip() for ln in lines if ln.strip()]})
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError):
        raise BadInputError(f"{path}: not a readable parquet, CSV or text file") from None
    if column not in df.columns:
        raise BadInputError(f"{path}: no column '{column}'")
    values = [v for v in df[column].cast(pl.String).to_list() if v is not None and v.strip()]
    if not values:
        raise BadInputError(f"{path}: no values in column '{column}'")
    return values


def _authorize(ws: Workspace, actor: str) -> None:
    # Erasing vault entries destroys the key to a subject's tokens (crypto-shredding): it is
    # a key-management decision of the policy, refused and audited like a key change.
    from engine.pseudonym.lifecycle import _authorize as authorize_key_change

    authorize_key_change(ws, actor, "vault_erase")


def erase_values(
    ws: Workspace,
    actor: str,
    column: str,
    values: list[str],
    *,
    normaliser: str | None = None,
    reason: str,
    case: str | None = None,
    keyring: Keyring | None = None,
) -> list[VaultWrite]:
    """Remove from the vault the entries of these identifiers, under every key version.

    Their kv tokens in published versions stop re-identifying (as if the key were gone for
    them alone); the versions themselves stay as signed. The audit entry holds the sha256 of
    every token erased, the case, the reason's sha256 and per store the counts.
    """
    if not reason.strip():
        raise UsageError("vault erase: --reason is required (it is recorded as its sha256)")
    base: dict[str, Any] = {
        "column": column,
        "domain": KYC,
        "count": len(values),
        "reason_sha256": hashlib.sha256(reason.strip().encode("utf-8")).hexdigest(),
    }
    if case is not None:
        base["case"] = case
    try:
        _authorize(ws, actor)
    except PolicyDenied:
        raise  # refused and audited (key_change_refused) by the key-lifecycle check
    ring = keyring if keyring is not None else Keyring.load(ws)
    pseudo = Pseudonymiser(ring, scheme=VAULT)
    tokens = pseudo.forget(values, column, normaliser)
    vault = Vault.for_workspace(ws)
    writes = []
    for v in ring.versions:
        mine = pl.Series("t", [t for t in tokens if t.startswith(f"kv{v}.")], dtype=pl.String)
        # A sealed block holding one of them is opened and sealed again without it.
        writes.append(vault.erase(column, v, mine, pseudo.vault_cipher(column, v)))
    erased = sum(w.erased for w in writes)
    audit.record(
        ws,
        ERASED,
        actor,
        **base,
        erased=erased,
        stores=[_store(w) for w in writes if w.erased],
        token_digests=sorted(hashlib.sha256(t.encode()).hexdigest() for t in tokens),
    )
    log.info("vault_erased", column=column, count=len(values), erased=erased)
    return writes
