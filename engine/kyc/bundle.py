"""Evaluate the shipped KYC ruleset directly (CLI checks, tests, benchmarks).

A refresh gets the ruleset inside the policy decision (`plan.kyc_ruleset`); this asks the
same bundle for the same document, through the policy layer's embedded engine, for tools
that have no decision at hand. Fail closed: undefined, null or an engine error is a
PolicyError.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import PolicyError
from engine.kyc.ruleset import KycRuleset

QUERY = "personagov.kyc_ruleset.ruleset"


def default_bundle_dir() -> Path:
    from engine.policy.bundle import default_bundle_path

    bundle = default_bundle_path()
    if not (bundle / "kyc" / "ruleset.rego").is_file():
        raise PolicyError("kyc ruleset module not found in the bundle", reasons=["kyc.no_bundle"])
    return bundle


def evaluate_ruleset(bundle_dir: Path | None = None) -> KycRuleset:
    from engine.policy.bundle import load_bundle
    from engine.policy.engines import EmbeddedEngine

    try:
        bundle = load_bundle(bundle_dir or default_bundle_dir())
    except (OSError, ValueError) as exc:
        raise PolicyError(
            f"kyc ruleset bundle unreadable ({type(exc).__name__}); refusing",
            reasons=["kyc.ruleset_eval_failed"],
        ) from None
    try:
        document = EmbeddedEngine(bundle).query(QUERY, {})
    except PolicyError as exc:
        if "policy.undefined" in exc.reasons or "policy.null" in exc.reasons:
            raise PolicyError(
                "kyc ruleset is undefined; refusing",
                reasons=["kyc.ruleset_undefined", *exc.reasons],
            ) from None
        raise
    return KycRuleset.from_policy(document)
