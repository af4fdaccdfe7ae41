"""regorus and real Go OPA give the same decision, the same reasons and the same plan digest
on every input: the valid matrix of the sample workspace (every jurisdiction x purpose x
actor, through the project's own build_input) and deterministic mutations of it (missing
fields, wrong types, null, empty strings, extra fields, unicode, boundary and impossible
dates, broken sources, roles and jurisdiction overlays).

Both engines run in-process (regorus; the Go OPA c-shared build). The bindings run with
StrictBuiltinErrors(true); the test also requires that no input makes either engine raise,
so a non-strict `opa run` server (where a builtin error is undefined instead of an error)
cannot answer differently either: strictness only matters when a builtin errors.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_policy_support import BUNDLE, make_ws, request, require_real_opa

from engine.config import Purpose
from engine.errors import PolicyError
from engine.policy import EmbeddedEngine, build_input, load_bundle
from engine.policy.decide import DECISION_PATH, plan_from_decision
from engine.policy.engines import GoOpaEngine, PolicyEngine
from engine.request import RefreshRequest
from engine.workspace import Workspace
from lineage.canonical import canonical_json

pytestmark = pytest.mark.slow

MUTATIONS_PER_INPUT = 18
SEED = 20261130

JUNK: list[Any] = [None, 0, -1, 1.5, True, False, "", "x", [], ["a"], {}, {"a": 1}, "ü", "\u0000"]
UNICODE = ["EU-DÉ", "ユーロ", "EU-DE\u200b", "\u0000", "🇪🇺", "eu-de", "EU–DE", "Ω" * 40]
DATES = [
    "2024-02-29",
    "2025-02-29",
    "2026-02-30",
    "2026-04-31",
    "2026-13-01",
    "2026-00-10",
    "2026-11-00",
    "1899-12-31",
    "1900-01-01",
    "2199-12-31",
    "2200-01-01",
    "0000-00-00",
    "9999-12-31",
    "2026-11-23T00:00:00",
    "2026-1-1",
    " 2026-11-23",
    "２０２６-11-23",
    "",
]
TOP_FIELDS = ["actor", "purpose", "jurisdiction", "as_of", "sources", "subjects", "roles"]
ACTOR_FIELDS = ["id", "roles", "home_region", "jurisdictions"]
SOURCE_FIELDS = ["columns", "subject_column", "record_date_column", "record_date_type"]
OVERLAYS: list[dict[str, Any]] = [
    {"XX": {"country": "XX", "region": "EU", "regime": "gdpr"}},
    {"XX": {"country": "XX", "region": "XX", "regime": "pdpa", "adequacy": ["EU", "US"]}},
    {"XX": {"country": "XX", "region": "US", "regime": "us_baseline", "digital_consent_age": 13}},
    {"EU-DE": {"country": "DE", "region": "EU", "regime": "gdpr", "digital_consent_age": 14}},
    {"XX": {"country": "XX", "region": "EU", "regime": "astrology"}},
    {"XX": {"country": "XX", "region": "EU", "regime": "gdpr", "digital_consent_age": 13.5}},
    {"XX": {"country": "XX", "region": "EU", "regime": "gdpr", "adequacy": "EU"}},
    {"XX": {"country": 7, "region": "EU", "regime": "gdpr"}},
    {"XX": "gdpr"},
    {"XX": {}},
]

Mutation = Callable[[random.Random, dict[str, Any]], None]


def _drop_top(rng: random.Random, doc: dict[str, Any]) -> None:
    doc.pop(rng.choice(TOP_FIELDS), None)


def _junk_top(rng: random.Random, doc: dict[str, Any]) -> None:
    doc[rng.choice(TOP_FIELDS)] = copy.deepcopy(rng.choice(JUNK))


def _empty_string(rng: random.Random, doc: dict[str, Any]) -> None:
    doc[rng.choice(["purpose", "jurisdiction", "as_of", "subjects"])] = ""


def _extra_field(rng: random.Random, doc: dict[str, Any]) -> None:
    target = rng.choice([doc, doc["actor"], doc["sources"][rng.choice(sorted(doc["sources"]))]])
    target[rng.choice(["extra", "note", "ü", "__proto__", "allow"])] = copy.deepcopy(
        rng.choice(JUNK)
    )


def _unicode(rng: random.Random, doc: dict[str, Any]) -> None:
    field = rng.choice(["jurisdiction", "purpose", "subjects"])
    doc[field] = rng.choice(UNICODE)


def _date(rng: random.Random, doc: dict[str, Any]) -> None:
    doc["as_of"] = rng.choice(DATES)


def _actor(rng: random.Random, doc: dict[str, Any]) -> None:
    field = rng.choice(ACTOR_FIELDS)
    how = rng.randrange(4)
    if how == 0:
        doc["actor"].pop(field, None)
    elif how == 1:
        doc["actor"][field] = copy.deepcopy(rng.choice(JUNK))
    elif how == 2:
        doc["actor"][field] = [rng.choice(JUNK), "EU-DE"]
    else:
        doc["actor"][field] = rng.choice(UNICODE)


def _source(rng: random.Random, doc: dict[str, Any]) -> None:
    name = rng.choice(sorted(doc["sources"]))
    src = doc["sources"][name]
    how = rng.randrange(6)
    if how == 0:
        doc["sources"][name] = copy.deepcopy(rng.choice(JUNK))
    elif how == 1:
        src.pop(rng.choice(SOURCE_FIELDS), None)
    elif how == 2:
        src[rng.choice(SOURCE_FIELDS)] = copy.deepcopy(rng.choice(JUNK))
    elif how == 3:
        col = rng.choice(sorted(src["columns"]))
        src["columns"][col] = copy.deepcopy(
            rng.choice([*JUNK, "special_category", "screening", "consent", "nonsense"])
        )
    elif how == 4:
        src["open_condition"] = copy.deepcopy(rng.choice(JUNK))
    else:
        doc["sources"] = {} if rng.random() < 0.5 else {name: src}


def _roles(rng: random.Random, doc: dict[str, Any]) -> None:
    roles = doc["roles"]
    how = rng.randrange(4)
    if how == 0 and roles:
        roles.pop(rng.choice(sorted(roles)))
    elif how == 1 and roles:
        roles[rng.choice(sorted(roles))] = copy.deepcopy(rng.choice(JUNK))
    elif how == 2:
        doc["roles"] = {}
    else:
        roles[rng.choice(["gpc", "unheard_of_role", "date_of_birth"])] = rng.choice(UNICODE)


def _overlay(rng: random.Random, doc: dict[str, Any]) -> None:
    doc["jurisdiction_data"] = copy.deepcopy(rng.choice(OVERLAYS))
    if rng.random() < 0.7:
        doc["jurisdiction"] = rng.choice(["XX", "EU-DE"])
        doc["actor"]["jurisdictions"] = [doc["jurisdiction"]]


MUTATIONS: list[Mutation] = [
    _drop_top,
    _junk_top,
    _empty_string,
    _extra_field,
    _unicode,
    _date,
    _actor,
    _source,
    _roles,
    _overlay,
]


def _trim_sources(rng: random.Random, doc: dict[str, Any]) -> None:
    """Most mutants keep the subjects source plus up to two others: smaller documents,
    cheaper to evaluate twice, and workspaces shaped unlike the sample's ten sources."""
    if rng.random() < 0.75:
        others = sorted(n for n in doc["sources"] if n != doc["subjects"])
        keep = [doc["subjects"], *rng.sample(others, rng.randrange(3))]
        doc["sources"] = {n: doc["sources"][n] for n in keep}


def _mutate(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    _trim_sources(rng, doc)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not isinstance(doc.get("actor"), dict) or not isinstance(doc.get("sources"), dict):
            break
        if not doc["sources"] or not isinstance(doc.get("roles"), dict):
            break
        sources_ok = all(
            isinstance(s, dict) and isinstance(s.get("columns"), dict) and s["columns"]
            for s in doc["sources"].values()
        )
        choices = MUTATIONS if sources_ok else [m for m in MUTATIONS if m is not _source]
        rng.choice(choices)(rng, doc)
    return doc


def _matrix(ws: Workspace) -> list[tuple[RefreshRequest, dict[str, Any]]]:
    out = []
    for j in ws.config.jurisdictions:
        for p in Purpose:
            for actor in sorted(ws.config.actors):
                req = request(actor, j, p.value)
                out.append((req, build_input(ws, req)))
    return out


def _outcome(
    ws: Workspace, engine: PolicyEngine, req: RefreshRequest, doc: dict[str, Any]
) -> tuple[Any, ...]:
    """(decision bytes, allow, reasons, plan digest or the plan's refusal reasons)."""
    try:
        decision = engine.query(DECISION_PATH, doc)
    except PolicyError as exc:
        return ("engine_error", tuple(exc.reasons))
    try:
        plan: Any = plan_from_decision(ws, req, decision, BUNDLE_OBJ, doc).digest()
    except PolicyError as exc:
        plan = ("refused", tuple(exc.reasons))
    allow = decision.get("allow") if isinstance(decision, dict) else None
    deny = decision.get("deny") if isinstance(decision, dict) else None
    return (canonical_json(decision), allow, json.dumps(deny), plan)


BUNDLE_OBJ = load_bundle(BUNDLE)


def test_regorus_and_real_opa_agree_on_5000_plus_inputs(tmp_path: Path) -> None:
    require_real_opa()
    ws = make_ws(tmp_path)
    regorus = EmbeddedEngine(BUNDLE_OBJ)
    opa = GoOpaEngine(BUNDLE_OBJ)
    rng = random.Random(SEED)
    cases: list[tuple[RefreshRequest, dict[str, Any]]] = []
    for req, base in _matrix(ws):
        cases.append((req, base))
        cases.extend((req, _mutate(rng, base)) for _ in range(MUTATIONS_PER_INPUT))
    assert len(cases) >= 5000

    started = time.perf_counter()
    diffs: list[str] = []
    kinds: Counter[str] = Counter()
    for i, (req, doc) in enumerate(cases):
        a = _outcome(ws, regorus, req, doc)
        b = _outcome(ws, opa, req, doc)
        if a != b:
            diffs.append(f"case {i}: regorus {a[:3]!r:.300} / opa {b[:3]!r:.300}")
        kinds["error" if a[0] == "engine_error" else ("allow" if a[1] else "deny")] += 1
    seconds = time.perf_counter() - started
    print(f"differential: {len(cases)} inputs, {len(diffs)} differences, {seconds:.1f}s, {kinds}")
    assert not diffs, "\n".join(diffs[:20])
    # Total over any input: no engine error anywhere, so strictness cannot matter.
    assert kinds["error"] == 0
    # The corpus exercises both verdicts, not only rejections.
    assert kinds["allow"] >= 300
    assert kinds["deny"] >= 2000


def test_valid_matrix_plan_digests_match(tmp_path: Path) -> None:
    """The headline of the differential on its own: every allowed sample plan has the same
    digest on both engines (floats written as integers: no 100000 vs 100000.0)."""
    require_real_opa()
    ws = make_ws(tmp_path)
    regorus = EmbeddedEngine(BUNDLE_OBJ)
    opa = GoOpaEngine(BUNDLE_OBJ)
    allowed = 0
    for req, doc in _matrix(ws):
        a = _outcome(ws, regorus, req, doc)
        assert a == _outcome(ws, opa, req, doc), (req.actor, req.jurisdiction, req.purpose)
        allowed += bool(a[1])
    assert allowed >= 40
