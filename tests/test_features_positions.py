"""Features group and join subjects on the positions enforcement hands over with the
governed frames (numbers, not tokens): the feature frame is bit-identical to the one built
on the tokens, and positions are trusted only for the very frames they were made for, over
one list of distinct tokens."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
import pytest
from test_policy_support import HmacPseudonymiser

from engine.config import Purpose
from engine.enforce import SUBJECT, GovernedFrames, SubjectPositions, enforce
from engine.enforce_subjects import needed_columns
from engine.features import build_features
from engine.features.build import _positions
from engine.policy import decide
from engine.request import RefreshRequest
from engine.sources import load_sources
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)
CASES = [("analyst-eu", "marketing_segmentation"), ("compliance-lead", "kyc_aml")]


def _governed(ws: Workspace, actor: str, purpose: str) -> GovernedFrames:
    request = RefreshRequest(
        actor=actor, jurisdiction="EU-DE", purpose=Purpose(purpose), as_of=AS_OF
    )
    plan = decide(ws, request)
    sources = load_sources(ws, "EU-DE", AS_OF, needed_columns(plan, ws.config))
    return enforce(sources, plan, HmacPseudonymiser(), AS_OF)


@pytest.mark.parametrize(("actor", "purpose"), CASES)
def test_positions_name_each_rows_subject_token(
    sample_ws: Workspace, actor: str, purpose: str
) -> None:
    governed = _governed(sample_ws, actor, purpose)
    assert governed.subject_positions.keys() == governed.frames.keys()
    for name, at in governed.subject_positions.items():
        assert at.frame is governed.frames[name]
        assert at.tokens.gather(at.at).equals(at.frame.get_column(SUBJECT), check_names=False)


@pytest.mark.parametrize(("actor", "purpose"), CASES)
def test_features_on_positions_equal_features_on_tokens(
    sample_ws: Workspace, actor: str, purpose: str
) -> None:
    governed = _governed(sample_ws, actor, purpose)
    assert _positions(governed, set(governed.frames)) is not None
    on_positions = build_features(governed, AS_OF, sample_ws.config).frame
    on_tokens = build_features(replace(governed, subject_positions={}), AS_OF, sample_ws.config)
    assert on_positions.height > 100
    assert on_positions.schema == on_tokens.frame.schema
    assert on_positions.equals(on_tokens.frame)


def test_positions_are_not_trusted_for_other_frames_or_repeated_tokens(
    sample_ws: Workspace,
) -> None:
    governed = _governed(sample_ws, *CASES[0])
    names = set(governed.frames)
    # A frame replaced after enforcement (even by an equal copy): its positions say nothing.
    copied = dict(governed.frames, transactions=governed.frames["transactions"].clone())
    assert _positions(replace(governed, frames=copied), names) is None
    # Two subjects with one token: a position no longer stands for one token.
    at = governed.subject_positions["crm"]
    twice = at.tokens.clone().scatter(1, at.tokens[0])  # scatter works in place
    repeated = {
        n: SubjectPositions(p.frame, p.at, twice) for n, p in governed.subject_positions.items()
    }
    assert _positions(replace(governed, subject_positions=repeated), names) is None
    # Sources tokenised over different token lists do not share positions.
    mixed = dict(governed.subject_positions)
    mixed["crm"] = SubjectPositions(at.frame, at.at, at.tokens.clone())
    assert _positions(replace(governed, subject_positions=mixed), names) is None
    assert _positions(governed, names) is not None
    assert _positions(governed, names)["crm"].dtype == pl.UInt32  # type: ignore[index]
