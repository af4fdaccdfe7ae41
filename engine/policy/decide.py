"""One decision per refresh: build the input document, ask the engine, check the answer.

Fail closed at every step: an unknown actor, a missing bundle, an engine failure, a
malformed or inconsistent decision, a plan that would let an identifier or special-category
column through: all are PolicyDenied / PolicyError with reason codes.
"""

from __future__ import annotations

import functools
import threading
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from engine.config import REQUEST_ROLES, ActorSpec, Classification, PrivacyRole, SourceSpec
from engine.errors import PolicyDenied, PolicyError
from engine.policy.bundle import Bundle, default_bundle_path, load_bundle, verified_bundle
from engine.policy.engines import EmbeddedEngine, OpaEngine, PolicyEngine
from engine.policy.plan import SUBJECT_FACTS, EnforcementPlan, SourcePlan
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.canonical import digest_of

log = structlog.get_logger(__name__)

DECISION_PATH = "personagov.decision.decision"
AUTHZ_PATH = "personagov.access.authz"

# The dates both engines can decide on (lib.valid_as_of): time.parse_ns works in int64
# nanoseconds and the retention cut-off reaches seven years back.
AS_OF_RANGE = (date(1900, 1, 1), date(2199, 12, 31))

# Facts engine.enforce derives per subject from a requests table (privacy_request_type).
REQUEST_FACTS = ("erasure_requested", "deletion_requested", "opt_out_requested")


def _actor_doc(ws: Workspace, actor_id: str) -> dict[str, Any] | None:
    spec: ActorSpec | None = ws.config.actors.get(actor_id)
    if spec is None:
        return None
    return {
        "id": actor_id,
        "roles": sorted(r.value for r in spec.roles),
        "home_region": spec.home_region,
        "jurisdictions": sorted(spec.jurisdictions),
    }


def _unknown_actor(actor_id: str) -> PolicyDenied:
    return PolicyDenied(
        f"actor '{actor_id}' is not declared in pgov.toml: denied",
        reasons=["access.unknown_actor"],
    )


def _source_doc(spec: SourceSpec) -> dict[str, Any]:
    date_col = spec.record_date_column
    return {
        "columns": {c: s.classification.value for c, s in spec.columns.items()},
        "subject_column": spec.subject_column,
        "record_date_column": date_col,
        "record_date_type": spec.columns[date_col].type.value if date_col else None,
        "open_condition": spec.open_when.to_json() if spec.open_when else None,
    }


def role_fields(ws: Workspace) -> dict[str, str]:
    """role -> the field subject-level conditions read for it: the subjects source's column
    declared with that role, or the fact enforce derives (requests, age)."""
    declared = ws.config.role_columns()
    roles = {
        role.value: col
        for role, (_src, col) in sorted(declared.items())
        if role not in REQUEST_ROLES
    }
    if PrivacyRole.PRIVACY_REQUEST_TYPE in declared:
        for fact in REQUEST_FACTS:
            roles.setdefault(fact, fact)
    return dict(sorted(roles.items()))


def check_as_of(day: date) -> None:
    lo, hi = AS_OF_RANGE
    if not lo <= day <= hi:
        raise PolicyDenied(
            f"as_of {day.isoformat()} is outside {lo.isoformat()}..{hi.isoformat()}: denied",
            reasons=["input.invalid:as_of"],
        )


def build_input(ws: Workspace, request: RefreshRequest) -> dict[str, Any]:
    """The decision input document (see docs/policy.md). Raises on an unknown actor."""
    actor = _actor_doc(ws, request.actor)
    if actor is None:
        raise _unknown_actor(request.actor)
    check_as_of(request.as_of)
    subjects = ws.config.subjects
    subject_fields = sorted({*SUBJECT_FACTS, *ws.config.sources[subjects].columns})
    return {
        "actor": actor,
        "purpose": request.purpose.value,
        "jurisdiction": request.jurisdiction,
        "as_of": request.as_of.isoformat(),
        "sources": {name: _source_doc(spec) for name, spec in ws.config.sources.items()},
        "subjects": subjects,
        "roles": role_fields(ws),
        "jurisdiction_data": {
            tag: jd.document() for tag, jd in sorted(ws.config.jurisdiction_data.items())
        },
        "subject_fields": subject_fields,
    }


def bundle_path_for(ws: Workspace) -> Path:
    configured = ws.config.policy.bundle
    return ws.path(configured) if configured else default_bundle_path()


def workspace_bundle(ws: Workspace) -> Bundle:
    """The bundle this workspace decides with, verified before use: a configured bundle
    must carry a valid signature by the workspace's bundle key over exactly its files; the
    default one must be byte-identical to the bundle shipped with this release. Both must
    hold every module the manifest lists as required."""
    from engine.policy.shipped import SHIPPED_BUNDLE_DIGEST
    from engine.policy.signing import load_public_key

    cfg = ws.config.policy
    if cfg.bundle:
        key = load_public_key(ws.path(cfg.verification_key))
        return verified_bundle(ws.path(cfg.bundle), public_key=key)
    return verified_bundle(default_bundle_path(), shipped_digest=SHIPPED_BUNDLE_DIGEST)


@functools.lru_cache(maxsize=8)
def _embedded(path: str, digest: str, thread: int) -> EmbeddedEngine:
    # Keyed by digest (an edited bundle is recompiled) and by thread (a regorus engine must
    # be used and dropped on the thread that built it).
    return EmbeddedEngine(load_bundle(path))


def engine_for(ws: Workspace) -> PolicyEngine:
    """The engine [policy] in pgov.toml names: embedded (default) or an OPA server. The
    local bundle is verified either way (an OPA server must serve its revision)."""
    cfg = ws.config.policy
    bundle = workspace_bundle(ws)
    if cfg.engine == "opa":
        return OpaEngine(cfg.opa_url, timeout_seconds=cfg.timeout_seconds)
    engine = _embedded(str(bundle.root), bundle.digest, threading.get_ident())
    if engine.bundle.digest != bundle.digest:  # pragma: no cover - changed between reads
        raise PolicyError("policy bundle changed while loading", reasons=["bundle.changed"])
    return engine


def _bundle_for(ws: Workspace, engine: PolicyEngine) -> Bundle:
    own = getattr(engine, "bundle", None)
    return own if isinstance(own, Bundle) else workspace_bundle(ws)


def _malformed(message: str, reason: str = "policy.malformed_decision") -> PolicyError:
    return PolicyError(f"policy decision is malformed: {message}; refusing", reasons=[reason])


def _allow_and_reasons(doc: Any) -> tuple[bool, list[str]]:
    if not isinstance(doc, dict):
        raise _malformed("not an object")
    allow = doc.get("allow")
    if not isinstance(allow, bool):
        raise _malformed("'allow' is not a boolean", "policy.non_boolean_allow")
    deny = doc.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(r, str) for r in deny):
        raise _malformed("'deny' is not a list of reason codes")
    if allow and deny:
        raise _malformed("allow is true but deny reasons are present", "policy.inconsistent")
    if not allow and not deny:
        deny = ["policy.denied_without_reason"]
    return allow, sorted(set(deny))


def _guard_columns(name: str, spec: SourceSpec, sp: SourcePlan, purpose: str, domain: str) -> None:
    """Defence in depth: whatever the Rego says, these never pass."""
    for col, cspec in spec.columns.items():
        act = sp.columns[col].action
        cls = cspec.classification
        if col == spec.subject_column:
            a = sp.columns[col]
            if act != "pseudonymise" or a.domain != domain or a.output_name(col) != "customer_id":
                raise PolicyError(
                    f"plan for {name}.{col}: subject key must be pseudonymised as customer_id "
                    f"in the '{domain}' domain",
                    reasons=["policy.subject_key_not_pseudonymised"],
                )
        elif cls == Classification.DIRECT_IDENTIFIER and act in ("keep", "generalise"):
            raise PolicyError(
                f"plan for {name}.{col}: a direct identifier would survive in clear",
                reasons=["policy.identifier_in_clear"],
            )
        elif cls == Classification.SPECIAL_CATEGORY and act != "drop":
            raise PolicyError(
                f"plan for {name}.{col}: special-category data must be dropped (GDPR Art. 9)",
                reasons=["policy.special_category_kept"],
            )
        elif cls == Classification.SCREENING and act != "drop" and purpose != "kyc_aml":
            raise PolicyError(
                f"plan for {name}.{col}: screening data outside the kyc_aml purpose",
                reasons=["policy.screening_outside_kyc"],
            )


def _source_plans(
    ws: Workspace, doc: dict[str, Any], purpose: str, domain: str
) -> dict[str, SourcePlan]:
    raw_sources = doc.get("sources")
    if not isinstance(raw_sources, dict):
        raise _malformed("'sources' is not an object")
    plans: dict[str, SourcePlan] = {}
    for name, spec in ws.config.sources.items():
        raw = raw_sources.get(name)
        if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
            raise _malformed(f"no plan for declared source '{name}'", "policy.source_missing")
        unknown = set(raw["columns"]) - set(spec.columns)
        if unknown:
            raise _malformed(
                f"source '{name}' plans {len(unknown)} undeclared column(s)",
                "policy.unknown_column",
            )
        columns = dict(raw["columns"])
        for col in spec.columns:
            if col not in columns:
                # No action from policy means drop: fail closed, and say so.
                log.warning("policy.no_action_dropped", source=name, column=col)
                columns[col] = {"action": "drop", "reason": "no_policy_action"}
        try:
            sp = SourcePlan.model_validate({**raw, "columns": columns})
        except ValidationError as exc:
            raise _malformed(f"source '{name}': {exc.error_count()} invalid field(s)") from None
        _guard_columns(name, spec, sp, purpose, domain)
        plans[name] = sp
    extra = set(raw_sources) - set(ws.config.sources)
    if extra:
        raise _malformed("plan names undeclared sources", "policy.unknown_source")
    return plans


def plan_from_decision(
    ws: Workspace,
    request: RefreshRequest,
    doc: Any,
    bundle: Bundle,
    input_doc: dict[str, Any],
) -> EnforcementPlan:
    """Check a decision document and turn it into an EnforcementPlan (allowed or not)."""
    allow, deny = _allow_and_reasons(doc)
    assert isinstance(doc, dict)
    if doc.get("policy_revision") != bundle.revision:
        # The OPA server must serve the bundle we record in lineage.
        allow, deny = False, sorted({*deny, "bundle.revision_mismatch"})
    purpose = request.purpose.value
    common: dict[str, Any] = {
        "actor": request.actor,
        "jurisdiction": request.jurisdiction,
        "purpose": purpose,
        "as_of": request.as_of,
        "bundle_revision": bundle.revision,
        "bundle_digest": bundle.digest,
        "input_digest": digest_of(input_doc),
        "regime": str(doc.get("regime", "")),
    }
    domain = "kyc" if purpose == "kyc_aml" else "marketing"
    if not allow:
        return EnforcementPlan(
            allowed=False,
            deny_reasons=deny,
            subject_domain=domain,
            sources={},
            k_anonymity_min=int(doc.get("k_anonymity_min") or 1)
            if isinstance(doc.get("k_anonymity_min"), int)
            else 1,
            **common,
        )
    if doc.get("subject_domain") != domain:
        raise _malformed("subject_domain does not match the purpose", "policy.wrong_domain")
    kyc_ruleset = doc.get("kyc_ruleset")
    if purpose == "kyc_aml" and not isinstance(kyc_ruleset, dict):
        return plan_from_decision(
            ws,
            request,
            {**doc, "allow": False, "deny": ["kyc.ruleset_undefined"]},
            bundle,
            input_doc,
        )
    try:
        return EnforcementPlan(
            allowed=True,
            deny_reasons=[],
            subject_domain=domain,
            sources=_source_plans(ws, doc, purpose, domain),
            subject_exclusions=doc.get("subject_exclusions", []),
            obligations=doc.get("obligations", []),
            k_anonymity_min=doc.get("k_anonymity_min"),
            kyc_ruleset=kyc_ruleset if purpose == "kyc_aml" else None,
            **common,
        )
    except ValidationError as exc:
        raise _malformed(f"{exc.error_count()} invalid field(s) in the plan") from None


def evaluate(
    ws: Workspace, request: RefreshRequest, engine: PolicyEngine | None = None
) -> EnforcementPlan:
    """The plan for this request, allowed or denied (explain shows both)."""
    input_doc = build_input(ws, request)
    engine = engine or engine_for(ws)
    bundle = _bundle_for(ws, engine)
    doc = engine.query(DECISION_PATH, input_doc)
    plan = plan_from_decision(ws, request, doc, bundle, input_doc).with_input(input_doc)
    log.info(
        "policy.decision",
        actor=request.actor,
        jurisdiction=request.jurisdiction,
        purpose=request.purpose.value,
        allowed=plan.allowed,
        reasons=plan.deny_reasons,
        bundle_revision=plan.bundle_revision,
    )
    return plan


def deny_hints(ws: Workspace, reasons: list[str]) -> list[str]:
    """What a data engineer can do about a deny, in words (no personal data)."""
    hints: list[str] = []
    for r in reasons:
        if r.startswith("role.missing:"):
            role, _, rule = r.removeprefix("role.missing:").rpartition(":")
            choice = " or ".join(f"'{x}'" for x in role.split("|"))
            hints.append(
                f"rule {rule} needs the privacy role {choice}: declare `role = ...` on the "
                f"column of source '{ws.config.subjects}' that holds it (docs/policy.md)"
            )
        elif r == "jurisdiction.unknown":
            hints.append(
                "the bundle does not know this jurisdiction: declare it as data in pgov.toml, "
                "[jurisdiction_data.<TAG>] with country, region, regime (and optionally "
                "digital_consent_age, adequacy), see docs/policy.md"
            )
    return hints


def decide(
    ws: Workspace, request: RefreshRequest, engine: PolicyEngine | None = None
) -> EnforcementPlan:
    """The EnforcementPlan for an allowed refresh; PolicyDenied with reasons otherwise."""
    plan = evaluate(ws, request, engine)
    if not plan.allowed:
        hints = deny_hints(ws, plan.deny_reasons)
        raise PolicyDenied(
            f"policy denies {request.purpose.value} refresh of {request.jurisdiction} "
            f"for actor '{request.actor}': {', '.join(plan.deny_reasons)}"
            + "".join(f"\n  hint: {h}" for h in hints),
            reasons=plan.deny_reasons,
        )
    return plan


def authorize(
    ws: Workspace,
    actor_id: str,
    action: str,
    resource: dict[str, Any],
    engine: PolicyEngine | None = None,
) -> None:
    """Allow one action (reidentify, approve_version, kyc_override, kyc_approve, verify, ...)
    or raise PolicyDenied with the policy's reasons."""
    actor = _actor_doc(ws, actor_id)
    if actor is None:
        raise _unknown_actor(actor_id)
    engine = engine or engine_for(ws)
    reply = engine.query(AUTHZ_PATH, {"actor": actor, "action": action, "resource": resource})
    allow, deny = _allow_and_reasons(reply)
    log.info("policy.authorize", actor=actor_id, action=action, allowed=allow, reasons=deny)
    if not allow:
        raise PolicyDenied(
            f"policy denies '{action}' for actor '{actor_id}': {', '.join(deny)}", reasons=deny
        )
