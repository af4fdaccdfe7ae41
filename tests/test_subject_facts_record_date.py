"""Per-subject facts come from declarations, not from the sample's column names: the idle
time a retention or dormancy rule can name is measured from whatever date column the
subjects source declares as its record date."""

from __future__ import annotations

from datetime import date

import polars as pl

from engine.config import SourceSpec
from engine.enforce_subjects import subject_facts
from engine.sources import SourceAccounting, SourceFrame, SourceFrames

AS_OF = date(2026, 11, 1)


def _frames(record_date_column: str | None) -> SourceFrames:
    spec = SourceSpec.model_validate(
        {
            "path": "data/borrowers.csv",
            "format": "csv",
            "key": ["holder_no"],
            "subject_column": "holder_no",
            "jurisdiction_column": "market",
            "record_date_column": record_date_column,
            "columns": {
                "holder_no": {"type": "int", "classification": "direct_identifier"},
                "market": {"type": "str", "classification": "technical"},
                "last_seen_on": {"type": "date", "classification": "behavioural"},
            },
        }
    )
    frame = pl.DataFrame(
        {
            "holder_no": [101, 102],
            "market": ["UK", "UK"],
            "last_seen_on": [date(2026, 10, 2), date(2025, 11, 1)],
            "_row": [1, 2],
        }
    )
    src = SourceFrame(
        name="borrowers",
        spec=spec,
        frame=frame,
        quarantine=frame.clear(),
        input_digest="0" * 64,
        path="data/borrowers.csv",
        accounting=SourceAccounting("borrowers", 2, 2, 0),
    )
    return SourceFrames("UK", AS_OF, {"borrowers": src}, subjects="borrowers")


def test_idle_days_are_measured_from_the_declared_record_date() -> None:
    facts = subject_facts(_frames("last_seen_on"), AS_OF).collect()
    assert facts.sort("holder_no")["days_since_last_activity"].to_list() == [30, 365]


def test_without_a_declared_record_date_idle_days_are_unknown() -> None:
    facts = subject_facts(_frames(None), AS_OF).collect()
    assert facts["days_since_last_activity"].null_count() == 2
