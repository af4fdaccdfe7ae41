"""The scan carries only the columns the policy plan uses, yet every column is still checked:
a row's fate and the quarantine accounting are the same whatever the purpose, quarantined
rows keep every column as read, enforcement gives the same governed frames, and it drops
each source's rows as soon as it has accounted for them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from test_byod_support import card_transactions
from test_policy_support import HmacPseudonymiser

from engine.conditions import Condition
from engine.config import Purpose
from engine.contracts import _one_of, blank
from engine.enforce import enforce
from engine.enforce_subjects import needed_columns
from engine.features import build_features
from engine.policy import EnforcementPlan, decide
from engine.request import RefreshRequest
from engine.sources import SourceFrames, load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def _plan(ws: Workspace, actor: str, jurisdiction: str, purpose: str) -> EnforcementPlan:
    return decide(
        ws,
        RefreshRequest(
            actor=actor, jurisdiction=jurisdiction, purpose=Purpose(purpose), as_of=AS_OF
        ),
    )


def _same_fate(full: SourceFrames, slim: SourceFrames, keep: dict[str, set[str]]) -> None:
    for name, f in full.frames.items():
        s = slim.frames[name]
        assert s.accounting == f.accounting
        assert s.quarantine.equals(f.quarantine)  # every column as read, same reasons
        assert set(s.frame.columns) <= {"_row", *keep[name], *f.spec.key} | set(f.frame.columns)
        assert s.frame.equals(f.frame.select(s.frame.columns))


@pytest.mark.parametrize(
    ("actor", "purpose"), [("analyst-eu", "marketing_segmentation"), ("compliance-lead", "kyc_aml")]
)
def test_dropped_columns_are_checked_but_not_carried(
    sample_ws: Workspace, actor: str, purpose: str
) -> None:
    plan = _plan(sample_ws, actor, "EU-DE", purpose)
    keep = needed_columns(plan, sample_ws.config)
    full = load_sources(sample_ws, "EU-DE", AS_OF)
    slim = load_sources(sample_ws, "EU-DE", AS_OF, keep)
    _same_fate(full, slim, keep)
    dropped = {
        (n, c)
        for n, sp in plan.sources.items()
        for c, a in sp.columns.items()
        if a.action == "drop" and c not in keep[n]
    }
    assert dropped, "the plan drops nothing: the test proves nothing"
    for name, col in dropped:
        assert col not in slim.frames[name].frame.columns
    # A column the subject rules read is carried even though the output drops it.
    if purpose == "marketing_segmentation":
        assert "consent_withdrawn" in keep["crm"]
        assert ("crm", "consent_withdrawn") not in dropped


@pytest.mark.parametrize(
    ("actor", "purpose"),
    [
        ("analyst-eu", "marketing_segmentation"),
        ("compliance-lead", "kyc_aml"),
        ("compliance-lead", "credit_risk_segmentation"),
    ],
)
def test_enforce_on_carried_columns_governs_the_same_and_releases_rows(
    sample_ws: Workspace, actor: str, purpose: str
) -> None:
    plan = _plan(sample_ws, actor, "EU-DE", purpose)
    keep = needed_columns(plan, sample_ws.config)
    full = enforce(load_sources(sample_ws, "EU-DE", AS_OF), plan, HmacPseudonymiser(), AS_OF)
    slim_sources = load_sources(sample_ws, "EU-DE", AS_OF, keep)
    slim = enforce(slim_sources, plan, HmacPseudonymiser(), AS_OF, release=True)
    assert slim.accounting == full.accounting
    assert slim.column_actions == full.column_actions  # lineage says what the plan did
    unread = 0
    for name, frame in full.frames.items():
        got = slim.frames[name]
        # The same rows and values; only pass-through columns no later stage reads are gone.
        assert got.equals(frame.select(got.columns)), name
        for col in set(frame.columns) - set(got.columns):
            assert plan.sources[name].columns[col].action == "keep", (name, col)
            assert col not in keep[name]
            unread += 1
    assert unread, "every kept column is read later: the test proves nothing"
    # What the later stages build from the governed frames is the same.
    assert build_features(slim, AS_OF, sample_ws.config).frame.equals(
        build_features(full, AS_OF, sample_ws.config).frame
    )
    for f in slim_sources.frames.values():  # rows gone, metadata kept for lineage
        assert f.frame.height == 0 and f.accounting.input_rows > 0


def test_a_pass_through_column_is_carried_when_a_feature_reads_it(sample_ws: Workspace) -> None:
    plan = _plan(sample_ws, "analyst-eu", "EU-DE", "marketing_segmentation")
    keep = needed_columns(plan, sample_ws.config)
    # The sample's transaction features read the time, the amount and the direction only.
    assert keep["transactions"] >= {"ts", "amount", "direction", "customer_id"}
    assert not keep["transactions"] & {"txn_id", "merchant_category", "channel"}
    # [segmentation.value] reads the loans' amount, rate, tenure, fees and status.
    assert keep["loans"] >= {"amount", "rate", "tenure_months", "fees_paid", "status"}
    feature = sample_ws.config.features["monetary_log"]
    config = sample_ws.config.model_copy(
        update={
            "features": {
                **sample_ws.config.features,
                "by_channel": feature.model_copy(
                    update={"where": Condition(field="channel", op="eq", value="card")}
                ),
            }
        }
    )
    assert "channel" in needed_columns(plan, config)["transactions"]


def test_a_workspace_unlike_the_sample_keeps_its_accounting(tmp_path: Path) -> None:
    ws = Workspace.open(card_transactions(tmp_path / "ws"))
    keep = {"card_txns": {"card_holder", "amount_eur"}, "holders": {"holder_id"}}
    full = load_sources(ws, "SG", AS_OF)
    slim = load_sources(ws, "SG", AS_OF, keep)
    _same_fate(full, slim, keep)
    assert slim.frames["card_txns"].frame.columns == ["_row", "card_holder", "amount_eur"]
    # The referenced key stays: child rows are checked against it.
    assert "holder_id" in slim.frames["holders"].frame.columns


def test_blank_agrees_with_stripping_every_value() -> None:
    values = ["", " ", "\t\n", "\u00a0", "\u3000 ", "a", " a ", "é", "~", "\x7f", None, "\u2003x"]
    df = pl.DataFrame({"s": values})
    got = df.select(blank(pl.col("s")))["s"].to_list()
    want = df.select((pl.col("s").str.strip_chars() == "").fill_null(False))["s"].to_list()
    assert got == want
    assert got[:5] == [True] * 5 and not any(got[5:])


@pytest.mark.parametrize(
    ("actor", "purpose"),
    [("analyst", "marketing_segmentation"), ("officer", "credit_risk_segmentation")],
)
def test_a_workspace_unlike_the_sample_governs_the_same_from_fewer_columns(
    tmp_path: Path, actor: str, purpose: str
) -> None:
    # Integer holder ids, its own column names, a CSV subjects table.
    ws = Workspace.open(card_transactions(tmp_path / "ws"))
    plan = _plan(ws, actor, "SG", purpose)
    keep = needed_columns(plan, ws.config)
    assert "txn_ref" not in keep["card_txns"]  # passed through, read by no feature
    assert {"card_holder", "booked_at", "amount_eur"} <= keep["card_txns"]
    full = enforce(load_sources(ws, "SG", AS_OF), plan, HmacPseudonymiser(), AS_OF)
    slim = enforce(load_sources(ws, "SG", AS_OF, keep), plan, HmacPseudonymiser(), AS_OF)
    assert slim.accounting == full.accounting
    assert slim.column_actions == full.column_actions
    for name, frame in full.frames.items():
        assert slim.frames[name].equals(frame.select(slim.frames[name].columns)), name
    assert "txn_ref" in full.frames["card_txns"].columns
    assert "txn_ref" not in slim.frames["card_txns"].columns
    assert build_features(slim, AS_OF, ws.config).frame.equals(
        build_features(full, AS_OF, ws.config).frame
    )


@pytest.mark.parametrize("size", [0, 1, 3, 16, 17, 40])
def test_allowed_values_check_agrees_with_is_in(size: int) -> None:
    allowed = [f"v{i}" for i in range(size)]
    values = [*allowed, "", " v0", "V0", "v0 ", "x", None, "v", "v00"]
    df = pl.DataFrame({"s": values * 3})
    want = df.select(pl.col("s").is_in(pl.Series(allowed, dtype=pl.String).implode()))["s"]
    got = df.select(_one_of(pl.col("s"), allowed))["s"]
    # Null in, null out either way; every other value answers the same.
    assert got.to_list() == want.to_list()
