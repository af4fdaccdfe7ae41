"""Version chains read from disk: listing, references, next ids, predecessor digests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_executor_fakes import publish, write_workspace

from engine.errors import BadInputError, UsageError
from engine.versions import check_chain, list_versions, next_version_id, resolve_version
from engine.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(write_workspace(tmp_path / "ws"))


def test_ids_count_up_per_jurisdiction_and_purpose(ws: Workspace) -> None:
    assert next_version_id(ws, "EU-DE", "kyc_aml") == "v0001"
    for _ in range(3):
        publish(ws, "EU-DE", "kyc_aml")
    publish(ws, "EU-DE", "marketing_segmentation")
    publish(ws, "UK", "kyc_aml")
    assert next_version_id(ws, "EU-DE", "kyc_aml") == "v0004"
    assert next_version_id(ws, "EU-DE", "marketing_segmentation") == "v0002"
    assert next_version_id(ws, "UK", "kyc_aml") == "v0002"


def test_list_shows_predecessors_and_skips_staging(ws: Workspace) -> None:
    a = publish(ws, "EU-DE", "kyc_aml")
    publish(ws, "EU-DE", "kyc_aml")
    publish(ws, "EU-DE", "marketing_segmentation")
    # a crashed refresh's leftovers are not versions
    (ws.versions_dir("EU-DE", "kyc_aml") / ".staging" / "dead").mkdir(parents=True)
    infos = list_versions(ws, "EU-DE", "kyc_aml")
    assert [i.version_id for i in infos] == ["v0001", "v0002"]
    assert infos[0].predecessor is None
    assert infos[1].predecessor == "v0001"
    assert infos[1].predecessor_statement_sha256 == infos[0].statement_sha256
    assert infos[0].validity == "valid"
    assert infos[0].path == a.path
    every = list_versions(ws, "EU-DE")
    assert [(i.purpose, i.version_id) for i in every] == [
        ("kyc_aml", "v0001"),
        ("kyc_aml", "v0002"),
        ("marketing_segmentation", "v0001"),
    ]
    assert list_versions(ws, "SG") == []


def test_missing_optional_manifest_fields_are_tolerated(ws: Workspace) -> None:
    d = ws.versions_dir("SG", "kyc_aml") / "v0001"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    [info] = list_versions(ws, "SG", "kyc_aml")
    assert info.version_id == "v0001"
    assert info.validity is None and info.predecessor is None and info.statement_sha256 is None
    assert info.created  # from the directory's mtime


def test_resolve_refs(ws: Workspace) -> None:
    publish(ws, "EU-DE", "kyc_aml")
    second = publish(ws, "EU-DE", "kyc_aml")
    assert resolve_version(ws, "EU-DE/kyc_aml/latest") == second.path
    assert resolve_version(ws, "EU-DE/kyc_aml/v0001").name == "v0001"
    assert resolve_version(ws, second.path) == second.path
    assert resolve_version(ws, str(second.path)) == second.path
    with pytest.raises(BadInputError, match="no such version"):
        resolve_version(ws, "EU-DE/kyc_aml/v0009")
    with pytest.raises(BadInputError, match="no published versions"):
        resolve_version(ws, "UK/kyc_aml/latest")
    with pytest.raises(UsageError):
        resolve_version(ws, "EU-DE/v0001")
    with pytest.raises(UsageError):
        resolve_version(ws, "EU-DE/kyc_aml/newest")
    with pytest.raises(BadInputError):
        resolve_version(ws, "../x/kyc_aml/v0001")
    with pytest.raises(UsageError):
        resolve_version(ws, "EU-DE/../v0001")


def test_intact_chain_has_no_problems(ws: Workspace) -> None:
    for _ in range(3):
        publish(ws, "BR", "kyc_aml")
    assert check_chain(ws, "BR", "kyc_aml") == []
    assert check_chain(ws, "BR", "marketing_segmentation") == []


def test_altered_predecessor_statement_breaks_the_chain(ws: Workspace) -> None:
    for _ in range(3):
        publish(ws, "BR", "kyc_aml")
    stmt = ws.versions_dir("BR", "kyc_aml") / "v0002" / "statement.dsse.json"
    stmt.write_bytes(stmt.read_bytes() + b" ")  # one byte differs: digest differs
    problems = check_chain(ws, "BR", "kyc_aml")
    assert len(problems) == 1
    assert "v0003" in problems[0] and "v0002 was altered" in problems[0]


def test_deleted_version_breaks_the_chain(ws: Workspace) -> None:
    for _ in range(3):
        publish(ws, "BR", "kyc_aml")
    shutil.rmtree(ws.versions_dir("BR", "kyc_aml") / "v0002")
    problems = check_chain(ws, "BR", "kyc_aml")
    assert any("missing" in p for p in problems)
    assert any("predecessor is v0002, expected v0001" in p for p in problems)
    # and the deleted id is never handed out again
    assert next_version_id(ws, "BR", "kyc_aml") == "v0004"


def test_manifest_disagreeing_with_signed_statement_is_reported(ws: Workspace) -> None:
    publish(ws, "BR", "kyc_aml")
    publish(ws, "BR", "kyc_aml")
    m = ws.versions_dir("BR", "kyc_aml") / "v0002" / "manifest.json"
    data = json.loads(m.read_text())
    data["predecessor"]["statement_sha256"] = "0" * 64
    m.write_text(json.dumps(data))
    problems = check_chain(ws, "BR", "kyc_aml")
    assert any("does not match" in p and "v0002's manifest was edited" in p for p in problems)
    assert any("signed statement names a different predecessor" in p for p in problems)


def test_version_filed_under_the_wrong_chain_is_reported(ws: Workspace) -> None:
    publish(ws, "BR", "kyc_aml")
    src = ws.versions_dir("BR", "kyc_aml") / "v0001"
    dst = ws.versions_dir("SG", "kyc_aml") / "v0001"
    dst.parent.mkdir(parents=True)
    shutil.copytree(src, dst)
    problems = check_chain(ws, "SG", "kyc_aml")
    assert any("jurisdiction is 'BR'" in p for p in problems)
