"""The policy bundle is verified before any decision: a workspace bundle carries an OPA-format
signature (`.signatures.json`, ES256 JWT over every file's sha256) by the workspace's bundle
key; the default bundle must be the one shipped with this release; both must hold every
module the manifest lists as required. Any file added, removed, truncated or changed is a
refusal, whatever it would do to the decision."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from test_policy_support import BUNDLE, copy_bundle, make_ws, request, require_real_opa
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import ExitCode, KeyMaterialError, PolicyError
from engine.policy import EmbeddedEngine, evaluate, load_bundle
from engine.policy.bundle import verified_bundle
from engine.policy.decide import DECISION_PATH, build_input, workspace_bundle
from engine.policy.shipped import SHIPPED_BUNDLE_DIGEST
from engine.policy.signing import SIGNATURES, file_hash, read_files
from engine.workspace import Workspace

runner = CliRunner()
REQ = request("analyst-eu", "EU-DE", "marketing_segmentation")


def _signed_ws(tmp_path: Path, source: Path | None = None) -> Workspace:
    """A workspace deciding with a bundle built and signed by `pgov policy build`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ws = make_ws(tmp_path, '[policy]\nengine = "embedded"\nbundle = "bundle.tar.gz"')
    assert runner.invoke(app, ["policy", "keygen", "-w", str(ws.root)]).exit_code == 0
    args = ["policy", "build", "-w", str(ws.root), "-o", str(ws.root / "bundle.tar.gz")]
    if source is not None:
        args += ["--bundle", str(source)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return ws


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _rewrite(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def test_shipped_digest_is_the_bundle_in_the_repository() -> None:
    actual = load_bundle(BUNDLE).digest
    assert actual == SHIPPED_BUNDLE_DIGEST, (
        f"policies/ changed: if the change is approved, set SHIPPED_BUNDLE_DIGEST in "
        f"engine/policy/shipped.py to {actual}"
    )


def test_signed_bundle_decides_like_the_shipped_one(tmp_path: Path) -> None:
    ws = _signed_ws(tmp_path)
    assert workspace_bundle(ws).digest == SHIPPED_BUNDLE_DIGEST
    signed = evaluate(ws, REQ)
    (tmp_path / "plain").mkdir()
    shipped = evaluate(make_ws(tmp_path / "plain"), REQ)
    assert signed.allowed
    assert signed.digest() == shipped.digest()
    names = set(_members(ws.root / "bundle.tar.gz"))
    assert SIGNATURES in names and ".manifest" in names and "personagov/gdpr.rego" in names


def test_signature_is_an_es256_jwt_over_opa_file_hashes(tmp_path: Path) -> None:
    import base64

    ws = _signed_ws(tmp_path)
    files, sigs = read_files(ws.root / "bundle.tar.gz")
    assert sigs is not None
    token = json.loads(sigs)["signatures"][0]
    head, payload, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert header["alg"] == "ES256"
    listed = {f["name"]: f["hash"] for f in body["files"]}
    assert set(listed) == set(files)
    assert all(f["algorithm"] == "SHA-256" for f in body["files"])
    # Rego is hashed as bytes, JSON by its parsed value (OPA): whitespace does not matter.
    import hashlib

    gdpr = files["personagov/gdpr.rego"]
    assert listed["personagov/gdpr.rego"] == hashlib.sha256(gdpr).hexdigest()
    assert file_hash("data.json", b'{"b": 1, "a": [true, null]}') == file_hash(
        "data.json", b'{"a":[true,null],"b":1}'
    )
    assert file_hash("data.json", b'{"a": 1}') != file_hash("data.json", b'{"a": 1.0}')


def _tamper_cases() -> list[str]:
    files, _ = read_files(BUNDLE)
    return sorted(n for n in files if n.endswith((".rego", ".json", ".manifest")))


@pytest.mark.parametrize("name", _tamper_cases())
def test_one_byte_change_to_any_file_is_refused(tmp_path: Path, name: str) -> None:
    ws = _signed_ws(tmp_path)
    tar = ws.root / "bundle.tar.gz"
    members = _members(tar)
    raw = bytearray(members[name])
    # Change one byte inside a string or comment so JSON stays JSON: the signature, not a
    # parse error, must be what refuses it.
    i = raw.index(b"e")
    raw[i] = ord("E")
    members[name] = bytes(raw)
    _rewrite(tar, members)
    with pytest.raises(PolicyError) as err:
        evaluate(ws, REQ)
    assert err.value.reasons == ["bundle.file_mismatch"]


@pytest.mark.parametrize(
    "damage", ["add_rego", "add_text", "remove_module", "truncate", "package_only", "no_sigs"]
)
def test_added_removed_truncated_or_unsigned_bundles_are_refused(
    tmp_path: Path, damage: str
) -> None:
    ws = _signed_ws(tmp_path)
    tar = ws.root / "bundle.tar.gz"
    members = _members(tar)
    gdpr = "personagov/gdpr.rego"
    if damage == "add_rego":
        members["personagov/zz.rego"] = b"package personagov.zz\n"
    elif damage == "add_text":
        members["README.txt"] = b"hello"
    elif damage == "remove_module":
        del members[gdpr]
    elif damage == "truncate":
        members[gdpr] = members[gdpr][: len(members[gdpr]) // 2]
    elif damage == "package_only":
        members[gdpr] = b"package personagov.gdpr\n"
    else:
        del members[SIGNATURES]
    _rewrite(tar, members)
    expected = "bundle.unsigned" if damage == "no_sigs" else "bundle.file_mismatch"
    with pytest.raises(PolicyError) as err:
        evaluate(ws, REQ)
    assert err.value.reasons == [expected]


def test_another_key_or_no_key_is_refused(tmp_path: Path) -> None:
    ws = _signed_ws(tmp_path)
    other = _signed_ws(tmp_path / "other")
    (ws.root / "bundle.tar.gz").write_bytes((other.root / "bundle.tar.gz").read_bytes())
    with pytest.raises(PolicyError) as err:
        evaluate(ws, REQ)
    assert err.value.reasons == ["bundle.bad_signature"]
    (ws.root / "keys" / "policy-bundle.pub.pem").unlink()
    with pytest.raises(KeyMaterialError):
        evaluate(ws, REQ)
    result = runner.invoke(
        app,
        ["policy", "explain", "-w", str(ws.root), "-j", "EU-DE", "-p",
         "marketing_segmentation", "-a", "analyst-eu"],
    )  # fmt: skip
    assert result.exit_code == ExitCode.KEY_ERROR


def test_unsigned_workspace_bundle_directory_is_refused(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    ws = make_ws(tmp_path, f'[policy]\nengine = "embedded"\nbundle = "{root}"')
    assert runner.invoke(app, ["policy", "keygen", "-w", str(ws.root)]).exit_code == 0
    with pytest.raises(PolicyError) as err:
        evaluate(ws, REQ)
    assert err.value.reasons == ["bundle.unsigned"]
    result = runner.invoke(
        app,
        ["policy", "explain", "-w", str(ws.root), "-j", "EU-DE", "-p",
         "marketing_segmentation", "-a", "analyst-eu"],
    )  # fmt: skip
    assert result.exit_code == ExitCode.POLICY_DENIED
    assert "not signed" in result.output


def test_signed_bundle_missing_a_required_module_is_refused(tmp_path: Path) -> None:
    """Signed correctly, yet incomplete: the manifest's required modules decide."""
    root = copy_bundle(tmp_path)
    (root / "personagov" / "gdpr.rego").unlink()
    (tmp_path / "w").mkdir()
    result = runner.invoke(
        app, ["policy", "build", "-w", str(make_ws(tmp_path / "w").root), "--bundle", str(root)]
    )
    assert result.exit_code == ExitCode.POLICY_DENIED  # build refuses to sign it
    assert "gdpr.rego" in result.output


@pytest.mark.parametrize(
    "damage", ["delete", "truncate", "package_only", "data_table", "add_module"]
)
def test_damaged_default_bundle_is_refused(tmp_path: Path, damage: str) -> None:
    """The shipped bundle is checked by its digest: every fault the issue found still
    deciding (deleted, truncated or emptied modules, a dropped data table) is refused."""
    root = copy_bundle(tmp_path)
    gdpr = root / "personagov" / "gdpr.rego"
    if damage == "delete":
        gdpr.unlink()
    elif damage == "truncate":
        gdpr.write_text(gdpr.read_text()[: len(gdpr.read_text()) // 2])
    elif damage == "package_only":
        gdpr.write_text("package personagov.gdpr\n")
    elif damage == "data_table":
        data = json.loads((root / "data.json").read_text())
        del data["pgov"]["generalisation"]
        (root / "data.json").write_text(json.dumps(data))
    else:
        (root / "personagov" / "extra.rego").write_text("package personagov.extra\n")
    with pytest.raises(PolicyError) as err:
        verified_bundle(root, shipped_digest=SHIPPED_BUNDLE_DIGEST)
    assert err.value.reasons == ["bundle.not_shipped"]
    # Untouched copy: accepted.
    verified_bundle(copy_bundle(tmp_path, "clean"), shipped_digest=SHIPPED_BUNDLE_DIGEST)


def test_built_bundle_loads_and_decides_in_real_opa(tmp_path: Path) -> None:
    require_real_opa()
    from engine.policy.engines import GoOpaEngine

    ws = _signed_ws(tmp_path)
    bundle = workspace_bundle(ws)
    doc = build_input(ws, REQ)
    assert GoOpaEngine(bundle).query(DECISION_PATH, doc) == EmbeddedEngine(bundle).query(
        DECISION_PATH, doc
    )
