"""A refresh keeps only what later stages read: which governed sources segmentation still
reads, that a released frame keeps its schema, and which stored routing columns the next
version's stability compares."""

from __future__ import annotations

import polars as pl

from engine.config import SegmentationSpec
from engine.enforce import GovernedFrames
from engine.refresh import _rows_kept
from engine.segment import governed_reads
from engine.segmentation_spec import PredictiveSpec, ValueSpec


def test_segmentation_reads_the_value_sources_and_a_source_outcome_only() -> None:
    assert governed_reads(SegmentationSpec()) == frozenset()
    value = ValueSpec(
        source="facilities", amount="principal", applications_source="requests",
        approved_column="granted",
    )  # fmt: skip
    assert governed_reads(SegmentationSpec(value=value)) == {"facilities", "requests"}
    on_source = SegmentationSpec(
        strategy="predictive", predictive=PredictiveSpec(outcome="ledger.bad_debt")
    )
    assert governed_reads(on_source) == {"ledger"}
    on_feature = SegmentationSpec(strategy="predictive", predictive=PredictiveSpec(outcome="bad"))
    assert governed_reads(on_feature) == frozenset()


def test_released_frames_keep_their_schema_and_the_rest_keeps_its_rows() -> None:
    frames = {
        "ledger": pl.DataFrame({"customer_id": ["a", "b"], "amount": [1.0, 2.0]}),
        "people": pl.DataFrame({"customer_id": ["a", "b"], "band": ["x", "y"]}),
    }
    governed = GovernedFrames(
        jurisdiction="XX", purpose="kyc_aml", frames=frames, accounting={},
        plan_digest="0" * 64, subject_domain="kyc",
    )  # fmt: skip
    kept = _rows_kept(governed, frozenset({"ledger"}))
    assert kept.frames["ledger"].equals(frames["ledger"])
    assert kept.frames["people"].height == 0
    assert kept.frames["people"].schema == frames["people"].schema
    assert governed.frames["people"].height == 2  # the caller's value is not changed
    assert kept.subject_positions == {}
    assert kept.jurisdiction == "XX" and kept.subject_domain == "kyc"


def test_stability_reads_only_the_stored_routing_columns_it_compares() -> None:
    from engine.kyc.tiering import previous_columns

    stored = ["customer_id", "score", "system_tier", "tier", "reasons", "factors", "factors_key"]
    stored += ["review_due", "queue", "downgrade_pending_since", "persona_name"]
    assert previous_columns(stored) == [
        "customer_id", "system_tier", "tier", "factors_key", "review_due",
        "downgrade_pending_since",
    ]  # fmt: skip
    older = ["customer_id", "tier", "factors"]  # before factors_key was stored
    assert previous_columns(older) == ["customer_id", "tier", "factors"]
