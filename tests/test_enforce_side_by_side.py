"""Enforcement governs two sources at a time and features aggregate two sources at a time
(engine/side_by_side.py): every governed frame, accounting, lineage entry, published token,
subject position, log line and feature is what the one-by-one loop gives, in the same order;
a plan that mints reversible (vault) tokens does too (the vault memo mints one key context
at a time: tests/test_token_memo_minting_concurrently.py)."""

from __future__ import annotations

import logging
from datetime import date

import pytest
import structlog
from structlog.testing import capture_logs
from test_policy_support import HmacPseudonymiser, request

import engine.enforce as enforce_module
import engine.features.build as build_module
from engine.enforce import GovernedFrames, enforce
from engine.enforce_subjects import needed_columns
from engine.features import FeatureFrame, build_features
from engine.policy import decide
from engine.sources import load_sources
from engine.workspace import Workspace

MKT, KYC = "marketing_segmentation", "kyc_aml"


def _run(
    ws: Workspace, as_of: date, purpose: str
) -> tuple[GovernedFrames, FeatureFrame, list[str]]:
    plan = decide(
        ws, request("analyst-eu" if purpose == MKT else "compliance-lead", "EU-DE", purpose)
    )
    sources = load_sources(ws, "EU-DE", as_of, needed_columns(plan, ws.config))
    # Info events whatever level an earlier test left configured (capture_logs replaces the
    # processors, not the level filter: after a WARNING-level configure it saw no event).
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            governed = enforce(sources, plan, HmacPseudonymiser(), as_of, release=True)
    finally:
        structlog.configure(**saved)
    order = [e["source"] for e in logs if e["event"] == "enforce.source"]
    return governed, build_features(governed, as_of, ws.config), order


@pytest.mark.parametrize("purpose", [MKT, KYC])
def test_two_at_a_time_gives_the_one_by_one_result(
    sample_ws: Workspace, sample_as_of: date, purpose: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    side, side_features, side_order = _run(sample_ws, sample_as_of, purpose)
    monkeypatch.setattr(enforce_module, "_threads", lambda plan: 1)
    real = build_module.run_in_order
    monkeypatch.setattr(
        build_module, "run_in_order", lambda jobs, weight: real(jobs, weight, threads=1)
    )
    one, one_features, one_order = _run(sample_ws, sample_as_of, purpose)

    assert list(side.frames) == list(one.frames) == sorted(one.frames)
    for name, frame in one.frames.items():
        assert side.frames[name].equals(frame), name
    assert side.accounting == one.accounting
    assert list(side.column_actions.items()) == list(one.column_actions.items())
    assert side.subject_tokens.keys() == one.subject_tokens.keys()
    for key, tokens in one.subject_tokens.items():
        assert side.subject_tokens[key].equals(tokens)
    assert side.subject_token_sources == one.subject_token_sources
    assert side.subject_positions.keys() == one.subject_positions.keys()
    for name, at in one.subject_positions.items():
        assert side.subject_positions[name].at.equals(at.at)
    assert side_order == one_order == sorted(one.frames)
    assert side_features.frame.equals(one_features.frame)
    assert side_features.indicators == one_features.indicators


def test_a_plan_minting_vault_tokens_governs_two_sources_at_a_time(sample_ws: Workspace) -> None:
    kyc = decide(sample_ws, request("compliance-lead", "EU-DE", KYC))
    marketing = decide(sample_ws, request("analyst-eu", "EU-DE", MKT))
    assert enforce_module._threads(kyc) == 2
    assert enforce_module._threads(marketing) == 2
