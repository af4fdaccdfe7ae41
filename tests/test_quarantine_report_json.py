"""The quarantine report's fast JSON writer gives json.dumps' exact bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.quarantine import report_json

_codes = st.text(min_size=0, max_size=12)  # any column name: quotes, NUL, non-ASCII
_rows = st.lists(
    st.fixed_dictionaries(
        {"row": st.integers(min_value=0, max_value=2**40), "reasons": st.lists(_codes, max_size=3)}
    ),
    max_size=6,
)
_entry = st.fixed_dictionaries(
    {
        "path": _codes,
        "input_rows": st.integers(0, 10),
        "reasons": st.dictionaries(_codes, st.integers(0, 9)),
        "rows": _rows,
    }
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    sources=st.dictionaries(_codes, _entry, max_size=4),
    run_id=_codes,
)
def test_report_json_matches_json_dumps_byte_for_byte(sources: dict[str, Any], run_id: str) -> None:
    report = {"run_id": run_id, "jurisdiction": "EU-DE", "counts": {}, "sources": sources}
    assert report_json(report) == json.dumps(report, sort_keys=True, indent=1)


def test_report_json_falls_back_for_rows_of_another_shape() -> None:
    report = {"sources": {"a": {"rows": [{"row": 1, "reasons": ["x"], "extra": True}]}}}
    assert report_json(report) == json.dumps(report, sort_keys=True, indent=1)
    nested = {"sources": {"a": {"rows": [{"row": True, "reasons": []}]}}, "z": [1, {"b": 2}]}
    assert report_json(nested) == json.dumps(nested, sort_keys=True, indent=1)
