"""Evaluate the shipped KYC ruleset module directly (CLI checks, tests, benchmarks).

A refresh gets the ruleset inside the policy decision (`plan.kyc_ruleset`); this reads the
same Rego module and data with regorus, once, for tools that have no decision at hand.
Fail closed: undefined or an engine error is a PolicyError.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import PolicyError
from engine.kyc.ruleset import KycRuleset

QUERY = "data.personagov.kyc_ruleset.ruleset"


def default_bundle_dir() -> Path:
    pkg = Path(__file__).resolve().parent.parent
    for candidate in (pkg / "_bundle", pkg.parent / "policies"):
        if (candidate / "kyc" / "ruleset.rego").is_file():
            return candidate
    raise PolicyError("kyc ruleset module not found in the bundle", reasons=["kyc.no_bundle"])


def evaluate_ruleset(bundle_dir: Path | None = None) -> KycRuleset:
    import regorus

    kyc_dir = (bundle_dir or default_bundle_dir()) / "kyc"
    try:
        engine = regorus.Engine()
        engine.add_policy("kyc/ruleset.rego", (kyc_dir / "ruleset.rego").read_text("utf-8"))
        data_file = kyc_dir / "data.json"
        if data_file.is_file():
            engine.add_data_json(json.dumps({"kyc": json.loads(data_file.read_text("utf-8"))}))
        answer = engine.eval_query(QUERY)
    except (OSError, ValueError, RuntimeError) as exc:
        raise PolicyError(
            f"kyc ruleset evaluation failed ({type(exc).__name__}); refusing",
            reasons=["kyc.ruleset_eval_failed"],
        ) from None
    results = answer.get("result") if isinstance(answer, dict) else None
    if not results:
        raise PolicyError("kyc ruleset is undefined; refusing", reasons=["kyc.ruleset_undefined"])
    return KycRuleset.from_policy(results[0]["expressions"][0]["value"])
