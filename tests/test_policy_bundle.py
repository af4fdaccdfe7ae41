"""The bundle loader: OPA data placement, revision and digest, refusal of broken bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_policy_support import BUNDLE, copy_bundle

from engine.errors import PolicyError
from engine.policy import EmbeddedEngine, default_bundle_path, load_bundle


def test_shipped_bundle_loads_with_revision_roots_and_nested_data() -> None:
    b = load_bundle(BUNDLE)
    assert b.revision == b.data["pgov"]["revision"]
    assert set(b.roots) == {"personagov", "pgov", "kyc", "reasons"}
    # policies/kyc/data.json is placed at data.kyc, the OPA way
    assert "ruleset_version" in b.data["kyc"]
    assert "pgov" in b.data and "kyc" not in b.data["pgov"]
    assert len(b.digest) == 64
    assert default_bundle_path().resolve() == BUNDLE.resolve()


def test_nested_data_is_queryable_at_its_path(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    (root / "extra" / "deeper").mkdir(parents=True)
    (root / "extra" / "deeper" / "data.json").write_text('{"answer": 42}')
    engine = EmbeddedEngine(load_bundle(root))
    assert engine.query("extra.deeper.answer", {}) == 42


def test_digest_changes_with_any_file_and_not_otherwise(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    first = load_bundle(root).digest
    assert load_bundle(root).digest == first
    (root / "README.txt").write_text("not part of the bundle")
    assert load_bundle(root).digest == first
    gdpr = root / "personagov" / "gdpr_test.rego"
    gdpr.write_text(gdpr.read_text() + "\n# comment\n")
    assert load_bundle(root).digest != first


def test_digest_binds_paths_too(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    first = load_bundle(root).digest
    (root / "personagov" / "gdpr_test.rego").rename(root / "personagov" / "gdpr2_test.rego")
    assert load_bundle(root).digest != first


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("no_dir", "bundle.missing"),
        ("no_manifest", "bundle.no_manifest"),
        ("bad_manifest", "bundle.bad_manifest"),
        ("no_revision", "bundle.bad_manifest"),
        ("bad_data", "bundle.bad_data"),
        ("conflict", "bundle.data_conflict"),
    ],
)
def test_broken_bundles_are_refused(tmp_path: Path, breakage: str, reason: str) -> None:
    root = copy_bundle(tmp_path)
    if breakage == "no_dir":
        root = tmp_path / "nowhere"
    elif breakage == "no_manifest":
        (root / ".manifest").unlink()
    elif breakage == "bad_manifest":
        (root / ".manifest").write_text("{revision")
    elif breakage == "no_revision":
        (root / ".manifest").write_text(json.dumps({"roots": ["personagov"]}))
    elif breakage == "bad_data":
        (root / "data.json").write_text("[1, 2")
    elif breakage == "conflict":
        # data.json at the root already defines kyc.ruleset_version
        data = json.loads((root / "data.json").read_text())
        data["kyc"] = {"ruleset_version": "clash"}
        (root / "data.json").write_text(json.dumps(data))
    with pytest.raises(PolicyError) as err:
        load_bundle(root)
    assert err.value.reasons == [reason]


def test_a_module_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    (root / "personagov" / "broken.rego").write_text("package personagov.broken\n\nx := {\n")
    with pytest.raises(PolicyError) as err:
        EmbeddedEngine(load_bundle(root))
    assert err.value.reasons == ["bundle.compile_error"]
    assert "Stack backtrace" not in err.value.message
