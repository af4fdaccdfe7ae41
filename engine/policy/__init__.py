"""The policy layer: a Rego bundle decides, engine.enforce executes.

Public surface:
    decide(ws, request, engine=None) -> EnforcementPlan   raises PolicyDenied with reasons
    authorize(ws, actor_id, action, resource) -> None      raises PolicyDenied
    engine_for(ws) -> PolicyEngine                         honours [policy] in pgov.toml
    load_bundle(path) / default_bundle_path()              the OPA bundle on disk
    EmbeddedEngine, OpaEngine                              the two PolicyEngine implementations
"""

from engine.policy.bundle import Bundle, default_bundle_path, load_bundle
from engine.policy.decide import authorize, build_input, decide, engine_for, evaluate
from engine.policy.engines import EmbeddedEngine, OpaEngine, PolicyEngine
from engine.policy.plan import ColumnAction, ColumnNulling, EnforcementPlan, RowRule, SourcePlan

__all__ = [
    "Bundle",
    "ColumnAction",
    "ColumnNulling",
    "EmbeddedEngine",
    "EnforcementPlan",
    "OpaEngine",
    "PolicyEngine",
    "RowRule",
    "SourcePlan",
    "authorize",
    "build_input",
    "decide",
    "default_bundle_path",
    "engine_for",
    "evaluate",
    "load_bundle",
]
