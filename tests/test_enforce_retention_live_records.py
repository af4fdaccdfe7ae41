"""Retention expires records by age, but a live record (an active loan) is a running
contract: it stays however old its origination date (pgov.toml `open_when`)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from test_policy_support import HmacPseudonymiser

from engine.config import Purpose
from engine.enforce import enforce
from engine.policy.decide import decide, engine_for
from engine.request import RefreshRequest
from engine.sources import load_sources
from engine.workspace import Workspace


def test_old_active_loans_stay_and_old_ended_loans_expire(
    sample_ws: Workspace, sample_as_of: date
) -> None:
    request = RefreshRequest(
        actor="analyst-eu", jurisdiction="EU-DE", purpose=Purpose.MARKETING, as_of=sample_as_of
    )
    plan = decide(sample_ws, request, engine_for(sample_ws))
    sources = load_sources(sample_ws, "EU-DE", sample_as_of)
    cutoff = sample_as_of - timedelta(days=730)  # marketing retention in data.json
    raw = sources.frames["loans"].frame
    old = raw.filter(pl.col("originated_at") < cutoff)
    old_live = old.filter(pl.col("status").is_in(["active", "defaulted"]))
    assert old_live.height > 0 and old.height > old_live.height  # the sample has both kinds

    governed = enforce(sources, plan, HmacPseudonymiser(), sample_as_of)
    kept = governed.frames["loans"]
    kept_old = kept.filter(pl.col("originated_at") < cutoff)
    assert set(kept_old["status"].unique()) <= {"active", "defaulted"}
    assert kept_old.height > 0
    acc = governed.accounting["loans"]
    expired = acc.excluded_by_reason.get("retention.expired", 0)
    # Every old ended loan expired; no live one did (some rows also go for other reasons).
    assert expired == old.height - old_live.height
