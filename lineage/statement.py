"""The signed lineage statement of a persona version: in-toto Statement v1 in a DSSE envelope.

Subjects are every file in the version directory (sorted relative POSIX paths) except the
envelope itself; the predicate says what the version was built from and under which policy.
``verify_version`` re-hashes what is on disk and compares with what was signed: it answers
"is this directory exactly what was published, built from these inputs, and logged?".
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from engine.errors import PgovError, VerificationFailed
from lineage.canonical import canonical_json
from lineage.dsse import IN_TOTO_PAYLOAD_TYPE, peek_payload, sign_envelope, verify_envelope_keys
from lineage.report import VerificationReport
from lineage.signing import Signer, TrustStore, atomic_write, parse_time

log = structlog.get_logger(__name__)

STATEMENT_FILE = "statement.dsse.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://personagov.dev/lineage/persona-version/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputRecord(_Edge):
    name: str
    path: str
    sha256: str
    rows: int | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str) -> str:
        if not _HEX64.match(v):
            raise ValueError("sha256 must be 64 lower-case hex characters")
        return v


class PolicyRecord(_Edge):
    bundle_revision: str
    bundle_digest: str
    plan_digest: str


class CodeRecord(_Edge):
    version: str
    git_commit: str | None = None


class PredecessorRecord(_Edge):
    version: str
    statement_sha256: str | None


class LineagePredicate(_Edge):
    inputs: list[InputRecord]
    policy: PolicyRecord
    parameters: dict[str, Any]
    code: CodeRecord
    row_accounting: dict[str, Any]
    actor: str
    jurisdiction: str
    purpose: str
    persona_version: str
    predecessor: PredecessorRecord | None = None
    gates: list[Any]
    suppression: list[Any]
    validity: Literal["valid", "invalid"]
    started_at: str
    finished_at: str

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware_time(cls, v: str) -> str:
        try:
            parse_time(v)  # ISO-8601 with a zone only: signed times must be unambiguous
        except PgovError as exc:
            raise ValueError(str(exc)) from None
        return v

    def signed_at(self) -> datetime:
        return parse_time(self.finished_at)


class Subject(_Edge):
    name: str
    digest: dict[str, str]


class Statement(BaseModel):
    """Statement v1 minus ``_type`` (checked separately: pydantic hides leading underscores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: list[Subject]
    predicateType: str
    predicate: LineagePredicate

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.model_dump() for s in self.subject],
            "predicateType": self.predicateType,
            "predicate": self.predicate.model_dump(mode="json"),
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def statement_sha256(version_dir: Path) -> str:
    """The digest audit entries and successors cite: sha256 of the stored envelope bytes."""
    return sha256_file(version_dir / STATEMENT_FILE)


def _files(version_dir: Path) -> list[str]:
    """Relative POSIX names of every file, sorted; refuses links and odd entries."""
    names: list[str] = []
    for p in sorted(version_dir.rglob("*")):
        rel = p.relative_to(version_dir).as_posix()
        if p.is_symlink():
            raise VerificationFailed(f"{version_dir}: {rel} is a symbolic link (refused)")
        if p.is_dir():
            continue
        if not p.is_file():
            raise VerificationFailed(f"{version_dir}: {rel} is not a regular file")
        if rel != STATEMENT_FILE:
            names.append(rel)
    return sorted(names)


def build_statement(version_dir: Path, predicate: LineagePredicate) -> dict[str, Any]:
    subjects = [
        {"name": n, "digest": {"sha256": sha256_file(version_dir / n)}} for n in _files(version_dir)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate.model_dump(mode="json"),
    }


def sign_version(version_dir: Path, predicate: LineagePredicate, signer: Signer) -> Path:
    """Sign every file in ``version_dir``; writes ``statement.dsse.json`` atomically."""
    statement = build_statement(version_dir, predicate)
    envelope = sign_envelope(canonical_json(statement), IN_TOTO_PAYLOAD_TYPE, signer)
    out = version_dir / STATEMENT_FILE
    atomic_write(out, envelope)
    log.info(
        "version_signed",
        version=predicate.persona_version,
        subjects=len(statement["subject"]),
        key_id=signer.key_id,
    )
    return out


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return (
        bool(name)
        and not p.is_absolute()
        and ".." not in p.parts
        and str(p) == name
        and name != STATEMENT_FILE
    )


def load_statement(payload: bytes) -> Statement:
    try:
        doc = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed("statement: payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(f"statement: _type is not {STATEMENT_TYPE}")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise VerificationFailed(f"statement: predicateType is not {PREDICATE_TYPE}")
    body = {k: v for k, v in doc.items() if k != "_type"}
    try:
        return Statement.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise VerificationFailed(f"statement: {loc}: {first['msg']}") from None


def read_statement_unverified(version_dir: Path) -> Statement:
    """For display only (``lineage show``): parse without checking the signature."""
    path = version_dir / STATEMENT_FILE
    if not path.is_file():
        raise VerificationFailed(f"{version_dir}: no {STATEMENT_FILE}")
    return load_statement(peek_payload(path.read_bytes()))


def verify_version(
    version_dir: Path,
    trust: TrustStore,
    workspace_root: Path | None = None,
    audit: Any | None = None,
    input_sha256: Callable[[Path], str] = sha256_file,
) -> VerificationReport:
    """Every check we can make of a published version, from the bytes on disk.

    ``audit`` is a ``lineage.auditlog.AuditLog``; when given, the version's statement digest
    must appear in a ``version_published`` entry. ``input_sha256`` takes an input file's
    digest: every byte read by default; the process that just published the version passes
    one that reuses the digest it took of the file's same, unchanged state
    (engine/source_files.py) instead of reading gigabytes again.
    """
    version_dir = Path(version_dir)
    rep = VerificationReport(subject=f"version {version_dir}")
    env_path = version_dir / STATEMENT_FILE
    if not env_path.is_file():
        rep.failed("signature", f"{STATEMENT_FILE} missing in {version_dir}")
        return rep
    envelope = env_path.read_bytes()
    # The signed time comes from the payload; it is only trusted once the signature over
    # those same bytes verifies below (revocation compares against it).
    try:
        claimed = load_statement(peek_payload(envelope)).predicate.signed_at()
        payload, keys = verify_envelope_keys(envelope, trust, claimed)
        statement = load_statement(payload)
    except PgovError as exc:
        rep.failed("signature", f"{STATEMENT_FILE}: {exc}")
        return rep
    revoked = [k.revoked_at for k in keys if k.revoked_at is not None]
    note = " (key since revoked)" if revoked else ""
    rep.passed("signature", f"{STATEMENT_FILE} signed by a trusted key valid at {claimed}{note}")
    _check_subjects(version_dir, statement, rep)
    _check_inputs(statement.predicate, workspace_root, rep, input_sha256)
    _check_policy(version_dir, statement, rep)
    if audit is not None:
        revoked_at = min(revoked) if revoked else None
        _check_audit(sha256_file(env_path), statement.predicate, audit, trust, revoked_at, rep)
    return rep


def _check_subjects(version_dir: Path, st: Statement, rep: VerificationReport) -> None:
    names = [s.name for s in st.subject]
    bad = [n for n in names if not _safe_name(n)]
    if bad or len(set(names)) != len(names) or names != sorted(names):
        rep.failed(
            "subjects",
            f"subject list is malformed (unsafe, repeated or unsorted names: {bad[:3]})",
        )
        return
    ok = True
    for s in st.subject:
        want = s.digest.get("sha256")
        if set(s.digest) != {"sha256"} or want is None or not _HEX64.match(want):
            rep.failed("subjects", f"{s.name}: subject digest is not a single sha256")
            ok = False
            continue
        p = version_dir / s.name
        if p.is_symlink() or not p.is_file():
            rep.failed("subjects", f"{s.name}: listed in the statement but missing on disk")
            ok = False
            continue
        got = sha256_file(p)
        if got != want:
            rep.failed(
                "subjects",
                f"{s.name}: sha256 on disk {got[:16]}… differs from the signed {want[:16]}… "
                "(file altered since signing)",
            )
            ok = False
    if ok:
        rep.passed("subjects", f"{len(names)} files match their signed sha256 digests")
    try:
        on_disk = _files(version_dir)
    except VerificationFailed as exc:
        rep.failed("no-extra-files", str(exc))
        return
    extra = sorted(set(on_disk) - set(names))
    if extra:
        rep.failed("no-extra-files", f"files not covered by the statement: {extra[:5]}")
    else:
        rep.passed("no-extra-files", "every file in the version is a signed subject")


def _check_inputs(
    pred: LineagePredicate,
    workspace_root: Path | None,
    rep: VerificationReport,
    input_sha256: Callable[[Path], str] = sha256_file,
) -> None:
    if workspace_root is None:
        rep.passed("inputs", f"{len(pred.inputs)} inputs recorded (no workspace: not re-hashed)")
        return
    checked, absent, ok = 0, [], True
    for inp in pred.inputs:
        p = Path(inp.path)
        p = p if p.is_absolute() else workspace_root / p
        if not p.is_file():
            absent.append(inp.name)
            continue
        got = input_sha256(p)
        checked += 1
        if got != inp.sha256:
            rep.failed(
                "inputs",
                f"input {inp.name} ({inp.path}): sha256 now {got[:16]}…, signed "
                f"{inp.sha256[:16]}… (the source changed since this version was built)",
            )
            ok = False
    if ok:
        note = f"; not present here: {', '.join(absent)}" if absent else ""
        rep.passed("inputs", f"{checked} input files match their signed digests{note}")


def _check_policy(version_dir: Path, st: Statement, rep: VerificationReport) -> None:
    pol = st.predicate.policy
    if not pol.bundle_digest.strip() or not pol.bundle_revision.strip():
        rep.failed("policy-bundle", "bundle revision or digest missing from the statement")
        return
    if not pol.plan_digest.strip():
        rep.failed("policy-bundle", "enforcement plan digest missing from the statement")
        return
    rep.passed(
        "policy-bundle",
        f"bundle {pol.bundle_revision} digest {pol.bundle_digest[:23]}… "
        f"plan {pol.plan_digest[:16]}…",
    )
    plan = version_dir / "plan.json"
    if plan.is_file():
        raw = plan.read_bytes()
        # The plan file is a signed subject; here we tie it to the digest the predicate names.
        candidates = {
            hashlib.sha256(raw).hexdigest(),
            hashlib.sha256(raw.rstrip(b"\n")).hexdigest(),
        }
        digest = pol.plan_digest.removeprefix("sha256:")
        if digest in candidates:
            rep.passed("plan-digest", "plan.json hashes to the signed plan digest")
        else:
            rep.failed("plan-digest", "plan.json does not hash to the signed plan digest")


def _check_audit(
    envelope_sha: str,
    pred: LineagePredicate,
    audit: Any,
    trust: TrustStore,
    revoked_at: datetime | None,
    rep: VerificationReport,
) -> None:
    try:
        hits = audit.query(type="version_published")
    except PgovError as exc:
        rep.failed("audit-log", f"audit log unreadable: {exc}")
        return
    for e in hits:
        d = e.get("details") or {}
        if d.get("statement_sha256") != envelope_sha:
            continue
        idx = int(e["index"])
        if revoked_at is not None and not _signed_before(audit, trust, idx, revoked_at):
            # A revoked key's signed time could be back-dated by whoever stole it; only a
            # checkpoint signed before the revocation shows the version existed by then.
            rep.failed(
                "audit-log",
                f"signing key revoked at {revoked_at.isoformat()}; the publication entry {idx} "
                "is not covered by a checkpoint signed before that time (back-dating cannot "
                "be excluded)",
            )
            return
        rep.passed("audit-log", f"statement digest logged as version_published at entry {idx}")
        return
    rep.failed(
        "audit-log",
        f"no version_published audit entry carries statement sha256 {envelope_sha[:16]}… "
        f"(version {pred.persona_version} was not published through the log, or the entry "
        "was removed)",
    )


def _signed_before(audit: Any, trust: TrustStore, index: int, before: datetime) -> bool:
    from lineage.checkpoint import verify_checkpoint

    cdir = Path(audit.checkpoint_dir)
    for p in sorted(cdir.glob("*.txt")) if cdir.is_dir() else []:
        try:
            vc = verify_checkpoint(p.read_bytes(), trust, f"checkpoints/{p.name}")
        except PgovError:
            continue
        if vc.checkpoint.size > index and vc.checkpoint.time < before:
            return True
    return False
