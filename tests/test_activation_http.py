"""Activation: exactly the consented, unsuppressed audience, once; refusals write nothing and
are audited; a failing destination is exit 10 and an audit entry."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from persona_flow import AS_OF, marketing_workspace, publish_and_approve, raw_with_tokens, receiver
from typer.testing import CliRunner

from engine.activation.deliver import activate
from engine.cli import app
from engine.errors import PolicyDenied
from engine.segment.io import read_assignments
from engine.workspace import Workspace
from lineage.auditlog import AuditLog

runner = CliRunner()


def _destinations(url: str) -> str:
    return f"""
[destinations.cms]
type = "http"
url = "{url}"
region = "EU"
channel = "content"

[destinations.apac-cdp]
type = "http"
url = "{url}"
region = "SG"
channel = "content"

[destinations.sg-calls]
type = "file"
path = "exports/calls"
format = "csv"
region = "SG"
channel = "phone"
"""


def _events(ws: Workspace, kind: str) -> list[dict]:
    return [e["details"] for e in AuditLog(ws.audit_dir).query(type=kind)]


def _version_tokens(ws: Workspace, j: str) -> set[str]:
    vdir = ws.versions_dir(j, "marketing_segmentation") / "v0001"
    return set(read_assignments(vdir).get_column("customer_id").to_list())


def _flag(ws: Workspace, raw_ids: list[str], column: str) -> None:
    path = ws.path("data/crm.parquet")
    crm = pl.read_parquet(path)
    crm.with_columns(
        pl.when(pl.col("customer_id").is_in(raw_ids))
        .then(pl.lit(True))
        .otherwise(pl.col(column))
        .alias(column)
    ).write_parquet(path)


@pytest.fixture()
def http_ws(sample_workspace: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with receiver() as r:
        ws = marketing_workspace(sample_workspace, tmp_path / "ws", _destinations(r.url))
        publish_and_approve(ws, "EU-DE", "analyst-eu")
        yield ws, r


def test_delivers_exactly_the_consented_audience_once(http_ws) -> None:  # type: ignore[no-untyped-def]
    ws, r = http_ws
    version = _version_tokens(ws, "EU-DE")
    # After publication five customers of the version object to direct marketing.
    raw = raw_with_tokens(ws, "EU-DE").filter(pl.col("token").is_in(sorted(version)))
    objecting = raw.sort("token").head(5)
    _flag(ws, objecting.get_column("raw_id").to_list(), "objection_direct_marketing")
    expected = version - set(objecting.get_column("token").to_list())

    report = activate(ws, "EU-DE/marketing_segmentation/current", "cms", "analyst-eu", AS_OF)
    assert r.tokens() == sorted(expected)  # every expected token, each exactly once
    assert report.removed_by_recheck == 5
    assert len(r.posts) == len(report.audience) and {h["Idempotency-Key"] for h in r.headers}
    post = r.posts[0]
    assert post["content_key"].startswith("eu-de/marketing_segmentation/")
    assert {"name", "traits", "kpis", "size"} <= set(post["persona"])
    body = json.dumps(r.posts)
    assert not any(rid in body for rid in raw.get_column("raw_id").to_list())  # tokens only

    again = activate(ws, "EU-DE/marketing_segmentation/current", "cms", "analyst-eu", AS_OF)
    assert again.activation_id == report.activation_id
    assert again.delivered == [] and sorted(again.skipped) == sorted(report.audience)
    assert r.tokens() == sorted(expected)  # nothing sent twice
    delivered = _events(ws, "activation_delivered")
    assert len(delivered) == 2 and delivered[0]["removed_by_recheck"] == 5
    receipt = ws.root / "activations" / "cms" / f"{report.activation_id}.dsse.json"
    assert receipt.is_file()


def test_destination_outside_the_region_writes_nothing_and_is_audited(http_ws) -> None:  # type: ignore[no-untyped-def]
    ws, r = http_ws
    with pytest.raises(PolicyDenied) as err:
        activate(ws, "EU-DE/marketing_segmentation/current", "apac-cdp", "analyst-eu", AS_OF)
    assert "transfer.destination_outside_region" in err.value.reasons
    assert r.posts == []
    assert not (ws.root / "activations" / "apac-cdp").exists()
    denied = _events(ws, "activation_denied")[-1]
    assert denied["destination"] == "apac-cdp"
    assert "transfer.destination_outside_region" in denied["reasons"]
    res = runner.invoke(
        app,
        ["activate", "EU-DE/marketing_segmentation/current", "--destination", "apac-cdp",
         "-a", "analyst-eu", "--as-of", AS_OF.isoformat(), "-w", str(ws.root)],
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    assert r.posts == []


def test_unapproved_version_is_refused(http_ws) -> None:  # type: ignore[no-untyped-def]
    ws, r = http_ws
    from engine.config import Purpose
    from engine.refresh import run_refresh
    from engine.request import RefreshRequest

    run_refresh(ws, RefreshRequest(actor="analyst-eu", jurisdiction="EU-DE",
                                   purpose=Purpose.MARKETING, as_of=AS_OF))  # fmt: skip
    with pytest.raises(PolicyDenied) as err:
        activate(ws, "EU-DE/marketing_segmentation/latest", "cms", "analyst-eu", AS_OF)
    assert "activation.version_not_approved" in err.value.reasons
    assert r.posts == []


def test_failing_destination_exits_10_and_is_audited(http_ws) -> None:  # type: ignore[no-untyped-def]
    ws, r = http_ws
    r.status = 503
    res = runner.invoke(
        app,
        ["activate", "EU-DE/marketing_segmentation/current", "--destination", "cms",
         "-a", "analyst-eu", "--as-of", AS_OF.isoformat(), "-w", str(ws.root)],
    )  # fmt: skip
    assert res.exit_code == 10, res.output
    failed = _events(ws, "activation_failed")[-1]
    assert failed["destination"] == "cms" and failed["errors"] == ["http 503"]
    assert _events(ws, "activation_delivered") == []
    # The destination recovers: the re-run delivers everything, once.
    r.status = 200
    report = activate(ws, "EU-DE/marketing_segmentation/current", "cms", "analyst-eu", AS_OF)
    assert sorted(report.delivered) == sorted(report.audience)
    assert len(r.tokens()) == len(set(r.tokens())) == sum(report.audience.values())


def test_suppressed_phone_channel_stays_suppressed_in_a_file_drop(
    sample_workspace: Path, tmp_path: Path
) -> None:
    ws = marketing_workspace(
        sample_workspace, tmp_path / "ws", _destinations("http://127.0.0.1:9/")
    )
    publish_and_approve(ws, "SG", "analyst-sg")
    version = _version_tokens(ws, "SG")
    raw = raw_with_tokens(ws, "SG")
    dnc = set(raw.filter(pl.col("do_not_call").fill_null(False)).get_column("token").to_list())
    assert version & dnc, "the sample should hold Do Not Call customers in SG's version"
    report = activate(ws, "SG/marketing_segmentation/current", "sg-calls", "analyst-sg", AS_OF)
    assert report.channel_suppressed == len(version & dnc)
    out = ws.root / "exports" / "calls" / "SG" / "marketing_segmentation" / "v0001"
    files = sorted(out.glob("*.csv"))
    assert len(files) == len(report.audience)
    sent = pl.concat([pl.read_csv(f) for f in files]).get_column("customer_id").to_list()
    assert sorted(sent) == sorted(version - dnc)
