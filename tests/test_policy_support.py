"""Shared helpers for the policy and enforcement tests (no tests here).

Frames are built by hand, small and explicit; the pseudonymiser is a keyed HMAC double so
these tests do not depend on key material.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)

from engine.config import ColumnType
from engine.policy.plan import EnforcementPlan
from engine.request import RefreshRequest
from engine.sources import SourceAccounting, SourceFrame, SourceFrames
from engine.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TOML = REPO / "engine" / "defaults" / "pgov.toml"
BUNDLE = REPO / "policies"
AS_OF = date(2026, 11, 23)

_DTYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STR: pl.String(),
    ColumnType.INT: pl.Int64(),
    ColumnType.FLOAT: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.DATE: pl.Date(),
    ColumnType.DATETIME: pl.Datetime("us"),
}


def make_ws(tmp_path: Path, extra_toml: str = "") -> Workspace:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    text = DEFAULT_TOML.read_text(encoding="utf-8")
    if extra_toml:
        # [policy] is the first table in the default file: replace it wholesale.
        start = text.index("[policy]")
        end = text.index("[keys]")
        text = text[:start] + extra_toml + "\n\n" + text[end:]
    (root / "pgov.toml").write_text(text, encoding="utf-8")
    return Workspace.open(root)


def copy_bundle(tmp_path: Path, name: str = "bundle") -> Path:
    dest = tmp_path / name
    shutil.copytree(BUNDLE, dest)
    return dest


def request(actor: str, jurisdiction: str, purpose: str, as_of: date = AS_OF) -> RefreshRequest:
    return RefreshRequest.model_validate(
        {"actor": actor, "jurisdiction": jurisdiction, "purpose": purpose, "as_of": as_of}
    )


class HmacPseudonymiser:
    """Test double for engine.pseudonym.Pseudonymiser: HMAC per domain and column."""

    def token_expr(
        self,
        column: str,
        domain: str,
        normaliser: str | None = None,
        *,
        key_column: str | None = None,
    ) -> pl.Expr:
        key = f"test-key-{domain}-{key_column or column}"
        digest = pl.col(column).cast(pl.String).chash.hmac_sha256(key=key).str.slice(0, 32)
        return (pl.lit(f"{domain[0]}1.") + digest).alias(column)


def customer(cid: str, jurisdiction: str = "EU-DE", **over: Any) -> dict[str, Any]:
    """A customer every marketing rule keeps: adult, consented, active, no requests."""
    row: dict[str, Any] = {
        "customer_id": cid,
        "jurisdiction": jurisdiction,
        "full_name": f"Name {cid}",
        "email": f"{cid}@example.test",
        "phone": "+4930123456",
        "date_of_birth": date(1980, 5, 17),
        "postcode": "10115",
        "country": "DE",
        "precise_geolocation": "52.52,13.40",
        "customer_type": "retail",
        "annual_income": 52_000.0,
        "signup_date": date(2020, 1, 1),
        "last_activity_date": date(2026, 10, 1),
        "lawful_basis_marketing": "consent",
        "marketing_consent": True,
        "consent_withdrawn": False,
        "objection_direct_marketing": False,
        "ccpa_do_not_sell_share": False,
        "gpc_signal": False,
        "limit_sensitive_pi": False,
        "do_not_call": False,
        "religion": "x",
        "health_note": "y",
    }
    row.update(over)
    return row


def frame_for(ws: Workspace, source: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows typed as declared; undeclared keys refused, missing declared columns null."""
    spec = ws.source(source)
    schema = {c: _DTYPES[s.type] for c, s in spec.columns.items()}
    for r in rows:
        unknown = set(r) - set(schema)
        assert not unknown, f"undeclared columns {unknown} for {source}"
    data = {c: [r.get(c) for r in rows] for c in schema}
    df = pl.DataFrame(data, schema=schema)
    return df.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))


def source_frames(
    ws: Workspace,
    jurisdiction: str,
    tables: dict[str, list[dict[str, Any]]],
    quarantined: dict[str, int] | None = None,
) -> SourceFrames:
    """SourceFrames for every declared source (empty where no rows are given)."""
    quarantined = quarantined or {}
    frames = {}
    for name, spec in ws.config.sources.items():
        df = frame_for(ws, name, tables.get(name, []))
        q = quarantined.get(name, 0)
        frames[name] = SourceFrame(
            name=name,
            spec=spec,
            frame=df,
            quarantine=pl.DataFrame(),
            input_digest="0" * 64,
            path=spec.path,
            accounting=SourceAccounting(
                source=name,
                input_rows=df.height + q,
                valid_rows=df.height,
                quarantined_rows=q,
                quarantine_reasons={"contract.required:customer_id": q} if q else {},
            ),
        )
    return SourceFrames(jurisdiction=jurisdiction, as_of=AS_OF, frames=frames, subjects="crm")


def kept_ids(plan: EnforcementPlan, governed_crm: pl.DataFrame, ids: list[str]) -> set[str]:
    """Which of `ids` survive, by comparing tokens (the governed frame holds no raw ids)."""
    tokens = (
        pl.DataFrame({"customer_id": ids})
        .select(HmacPseudonymiser().token_expr("customer_id", plan.subject_domain))
        .to_series()
        .to_list()
    )
    survivors = set(governed_crm["customer_id"].to_list())
    return {i for i, t in zip(ids, tokens, strict=True) if t in survivors}


def require_real_opa() -> None:
    """Real Go OPA comes from `opa-golib-python-bindings`, which `make test` installs (its
    metadata claims Python >= 3.12, so plain `pip install -e .[dev]` cannot). Under
    `make test` (PGOV_REQUIRE_OPA=1) a missing install fails; elsewhere it skips."""
    import importlib.util
    import os

    import pytest

    if importlib.util.find_spec("opa_bindings") is None:
        if os.environ.get("PGOV_REQUIRE_OPA") == "1":
            pytest.fail("opa-golib-python-bindings is not installed (make test installs it)")
        pytest.skip("opa-golib-python-bindings not installed; `make test` installs it")
