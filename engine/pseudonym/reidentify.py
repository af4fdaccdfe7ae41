"""Controlled re-identification: kyc-domain tokens back to identifiers, for an authorised actor.

Order matters: tokens are checked for shape and domain, then each token's jurisdiction is
resolved from the published versions it appears in (a token carries no jurisdiction of its
own, and binding one into it would change every published token), then the policy decides
once per jurisdiction against the actor's scope, then the attempt is audited, and only then
is anything decrypted. A token found in no published version has no provable jurisdiction
and is refused: re-identifying it could be a transfer nobody decided. A denied or failed attempt is
audited too (the auditor sees who tried), with sha256 digests of the tokens, never the
tokens' cleartext. A wrong key or an altered token fails AES-SIV authentication, and a kv
token missing from the token vault (erased, or never filed) is refused: the call refuses as
a whole, it never returns a partial list or garbage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from engine import audit
from engine.errors import BadInputError, KeyMaterialError, PgovError, PolicyDenied, UsageError
from engine.pseudonym.keyring import Keyring
from engine.pseudonym.tokens import KYC, Pseudonymiser, parse_token
from engine.workspace import Workspace

log = structlog.get_logger(__name__)
EVENT = "reidentification"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_origins(ws: Workspace, tokens: list[str]) -> dict[str, set[str]]:
    """token -> the jurisdictions whose published versions hold it.

    Read from the version files themselves (every string column of every parquet output),
    by the chain directory a version sits in and its manifest, which must agree.
    """
    wanted = sorted(set(tokens))
    found: dict[str, set[str]] = {}
    root = ws.versions_root
    if not root.is_dir():
        return found
    for vdir in sorted(root.glob("*/*/v*")):
        if not vdir.is_dir() or not (vdir / "manifest.json").is_file():
            continue
        jurisdiction = vdir.parent.parent.name
        try:
            manifest = json.loads((vdir / "manifest.json").read_bytes())
        except (OSError, ValueError):
            continue  # not a readable version: it proves nothing about any token
        if manifest.get("jurisdiction") != jurisdiction:
            continue  # a version copied into another chain vouches for nothing
        for f in sorted(vdir.glob("*.parquet")):
            try:
                lf = pl.scan_parquet(f)
                strings = [c for c, t in lf.collect_schema().items() if t == pl.String]
                if not strings:
                    continue
                hits = (
                    lf.select(pl.concat_list(strings).alias("v"))
                    .explode("v")
                    .filter(pl.col("v").is_in(wanted))
                    .unique()
                    .collect()["v"]
                    .to_list()
                )
            except Exception:  # an unreadable output is a verification matter, not ours
                continue
            for t in hits:
                found.setdefault(str(t), set()).add(jurisdiction)
    return found


def _authorize(ws: Workspace, actor: str, column: str, jurisdiction: str) -> None:
    # Imported lazily: the policy package is a separate stage, and a missing or broken
    # policy layer must refuse here (fail closed), not break importing this module.
    try:
        from engine.policy.decide import authorize
    except ImportError:
        raise PolicyDenied(
            "re-identification refused: the policy layer is not available",
            reasons=["policy_unavailable"],
        ) from None
    # Contract: returns only when allowed, raises PolicyDenied (with reasons) otherwise.
    authorize(
        ws, actor, "reidentify", {"domain": KYC, "column": column, "jurisdiction": jurisdiction}
    )


def reidentify(
    ws: Workspace,
    actor: str,
    tokens: list[str],
    column: str,
    *,
    keyring: Keyring | None = None,
    reason: str | None = None,
    case: str | None = None,
) -> list[str]:
    """kyc tokens -> normalised cleartext values (same order), if policy allows `actor`.

    The audit entry carries the sha256 of every token revealed (or refused), the case
    reference, and the sha256 of the reason: the reason's text belongs in the case file,
    since free text may itself hold personal data; the digest proves which text was given.
    """
    if not tokens:
        raise UsageError("re-identification: no tokens given")
    digests = [token_digest(t) if isinstance(t, str) else "" for t in tokens]
    base: dict[str, Any] = {"column": column, "domain": KYC, "count": len(tokens)}
    jurisdictions: list[str] = []
    if reason is not None:
        base["reason_sha256"] = hashlib.sha256(reason.strip().encode("utf-8")).hexdigest()
    if case is not None:
        base["case"] = case
    try:
        for i, tok in enumerate(tokens):
            if parse_token(tok).domain != KYC:
                raise KeyMaterialError(
                    f"token #{i + 1} is a marketing-domain token: those are irreversible "
                    "HMAC pseudonyms and cannot be re-identified"
                )
        origins = token_origins(ws, tokens)
        unknown = [i + 1 for i, t in enumerate(tokens) if t not in origins]
        if unknown:
            listed = ", ".join(f"#{n}" for n in unknown[:5])
            raise PolicyDenied(
                f"re-identification refused: token(s) {listed} appear in no published version, "
                "so their jurisdiction cannot be established",
                reasons=["reidentify.jurisdiction_unknown"],
            )
        jurisdictions = sorted(set().union(*origins.values()))
        base["jurisdictions"] = jurisdictions
        # A token published in several jurisdictions needs the actor's scope over each.
        for j in jurisdictions:
            _authorize(ws, actor, column, j)
        ring = keyring if keyring is not None else Keyring.load(ws)
        # kv tokens are looked up in the workspace's token vault; k tokens decrypt as is.
        values = Pseudonymiser.for_workspace(ws, ring).reveal(tokens, column)
    except PgovError as exc:
        audit.record(
            ws,
            EVENT,
            actor,
            **base,
            outcome="refused",
            reason=type(exc).__name__,
            policy_reasons=list(getattr(exc, "reasons", None) or []),
            token_digests=digests,
        )
        log.warning("reidentification_refused", actor=actor, column=column, count=len(tokens))
        raise
    audit.record(ws, EVENT, actor, **base, outcome="revealed", token_digests=digests)
    log.info("reidentification", actor=actor, column=column, count=len(tokens))
    return values


def tokens_from_file(
    path: Path, column: str = "customer_id", queue: str | None = None
) -> list[str]:
    """Tokens listed in a routed-queue file: parquet (column `column`, rows of `queue` when
    the file has a `queue` column and a queue is named), a JSON list of strings, a JSON
    object {"tokens": [...]}, a JSON list of objects carrying `column`, or an outbox JSON
    Lines file (objects with the token under `column` or "customer")."""
    if not path.is_file():
        raise BadInputError(f"{path}: no such queue file")
    if path.suffix == ".parquet":
        try:
            df = pl.read_parquet(path)
        except Exception:
            raise BadInputError(f"{path}: not a readable parquet file") from None
        if column not in df.columns:
            raise BadInputError(f"{path}: no column '{column}'")
        if queue is not None and "queue" in df.columns:
            df = df.filter(pl.col("queue") == queue)
        return [t for t in df[column].cast(pl.String).to_list() if t is not None]
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".jsonl", ".ndjson"):
            # An outbox delivery file: one routed customer per line, token under "customer".
            doc = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInputError(f"{path}: not a JSON document") from None
    if isinstance(doc, dict):
        doc = doc.get("tokens")
    if not isinstance(doc, list):
        raise BadInputError(f"{path}: expected a list of tokens")
    out: list[str] = []
    for item in doc:
        if isinstance(item, dict):
            if queue is not None and "queue" in item and item["queue"] != queue:
                continue
            item = item.get(column, item.get("customer"))
        if not isinstance(item, str):
            raise BadInputError(f"{path}: every entry must be a token string")
        out.append(item)
    return out


def queue_tokens(queue: str, version_dir: Path | None, column: str = "customer_id") -> list[str]:
    """Resolve `--queue`: a file path, or a queue name within a version's routing table."""
    as_path = Path(queue)
    if as_path.is_file():
        return tokens_from_file(as_path, column)
    if version_dir is None:
        raise UsageError(f"--queue '{queue}' is not a file; give --version-dir to look it up")
    for name in ("routing.parquet", "routing.json"):
        candidate = version_dir / name
        if candidate.is_file():
            return tokens_from_file(candidate, column, queue)
    raise BadInputError(f"{version_dir}: no routing.parquet or routing.json")
