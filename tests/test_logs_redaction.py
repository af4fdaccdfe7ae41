"""Logs never carry raw personal values: identifier keys redacted, identifier-shaped text masked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from engine.logs import REDACTED, Redactor, configure_logging, identifier_columns, mask_text
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"
RAW = {
    "email": "ana.silva@example.com",
    "phone": "+44 7911 123456",
    "national_id": "AB123456C",
    "full_name": "Ana Silva",
    "address": "1 High Street",
    "postcode": "SW1A 1AA",
}


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    (tmp_path / "pgov.toml").write_text(DEFAULTS.read_text())
    return Workspace.open(tmp_path)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_identifier_columns_come_from_the_config(ws: Workspace) -> None:
    cols = identifier_columns(ws)
    assert {"email", "phone", "national_id", "full_name", "date_of_birth", "postcode"} <= cols
    assert "credit_score" not in cols


def test_identifier_keys_are_redacted_at_any_depth(ws: Workspace) -> None:
    red = Redactor(identifier_columns(ws))
    out = red(
        None,
        "info",
        {
            "event": "row_rejected",
            **RAW,
            "customer_email": "x@y.org",
            "row": {"date_of_birth": "1990-01-01", "credit_score": 700},
            "rows": [{"name": "Ana"}],
            "count": 3,
        },
    )
    for key in RAW:
        assert out[key] == REDACTED
    assert out["customer_email"] == REDACTED
    assert out["row"] == {"date_of_birth": REDACTED, "credit_score": 700}
    assert out["rows"] == [{"name": REDACTED}]
    assert out["count"] == 3 and out["event"] == "row_rejected"


@pytest.mark.parametrize(
    "raw",
    [
        "ana.silva@example.com",
        "+44 7911 123456",
        "07911 123456",
        "123-45-6789",
        "123.456.789-09",
        "AB 12 34 56 C",
        "S1234567D",
    ],
)
def test_identifier_shaped_text_is_masked(raw: str) -> None:
    assert raw not in mask_text(f"could not parse {raw} in row 7")
    assert "row 7" in mask_text(f"could not parse {raw} in row 7")


@pytest.mark.parametrize(
    "safe",
    [
        "2026-11-23T04:24:31+00:00",
        "m1.0123456789abcdef0123456789abcdef",
        "k2.AbC-_01234567890",
        "rows=10000000",
        "v0.1.0",
        "sha256:00112233445566",
    ],
)
def test_timestamps_tokens_and_counts_are_left_alone(safe: str) -> None:
    assert mask_text(safe) == safe


def test_configured_json_log_contains_no_raw_values(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "logs" / "run.jsonl"
    configure_logging(ws, out, "DEBUG")
    log = structlog.get_logger("test")
    log.info("customer_seen", **RAW, jurisdiction="UK", rows=12)
    log.warning(f"bad phone {RAW['phone']} for {RAW['email']}")
    try:
        raise ValueError(f"cannot normalise {RAW['email']} / {RAW['national_id']}")
    except ValueError:
        log.exception("normalisation_failed", column="email")
    log.debug("debug_visible", note="kept")
    text = out.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 4
    assert lines[0]["jurisdiction"] == "UK" and lines[0]["rows"] == 12
    assert "ValueError" in lines[2]["exception"]
    for raw in RAW.values():
        assert raw not in text


def test_console_logging_goes_to_stderr_redacted(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(ws, None, "INFO")
    structlog.get_logger().info("hello", email=RAW["email"], msg=f"to {RAW['phone']}")
    structlog.get_logger().debug("hidden")
    cap = capsys.readouterr()
    assert cap.out == ""
    assert "hello" in cap.err and "hidden" not in cap.err
    assert RAW["email"] not in cap.err and RAW["phone"] not in cap.err
