"""Facts the KYC ruleset names against the facts a workspace declares, before any data is read.

The shipped ruleset (policies/kyc/ruleset.rego) names facts such as `customer_type` or
`pep`. A lender's own workspace declares its facts as features for `kyc_aml` (under their
own name or `kyc_fact = "<name>"`, engine/kyc/facts.py). A factor or floor naming a fact
nobody declared could never be evaluated: reading it as "not matched" would under-rate
risk, so the refresh is refused. Checked right after the policy decision, so a lender
learns every missing fact at once (exit 2, naming them and how to fix it) instead of after
reading, enforcing and segmenting every source only to stop at tiering.

A fact that is declared but whose column the policy withholds in this jurisdiction is not
this module's concern: it is absent from the facts frame and tiering refuses then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.features.model import KEY
from engine.kyc.ruleset import FactorRule, FloorRule, KycRuleset

if TYPE_CHECKING:
    from engine.config import WorkspaceConfig

PURPOSE = "kyc_aml"
# Facts the engine adds to every facts frame whatever the workspace declares.
BUILT_IN = frozenset({KEY, "jurisdiction", "persona_id", "persona_name"})


def declared_facts(config: WorkspaceConfig) -> set[str]:
    """Every fact name a kyc_aml facts frame can hold for this workspace."""
    names = set(BUILT_IN)
    for name, spec in config.features.items():
        if PURPOSE in spec.purposes:
            names.add(name)
            if spec.kyc_fact:
                names.add(spec.kyc_fact)
    return names


def named_facts(ruleset: KycRuleset) -> dict[str, list[str]]:
    """Fact -> the factors and floors (id, or a floor's reason code) naming it, sorted."""
    out: dict[str, list[str]] = {}
    rules: list[FactorRule | FloorRule] = [*ruleset.factors, *ruleset.floors]
    for rule in rules:
        for fact in rule.condition.fields():
            out.setdefault(fact, []).append(rule.id or rule.reason_code)
    return {fact: sorted(ids) for fact, ids in sorted(out.items())}


def refuse_undeclared_facts(config: WorkspaceConfig, kyc_ruleset: Any) -> None:
    """Exit 2 (ConfigError) naming every fact the ruleset reads that no feature declares.

    `kyc_ruleset` is the policy's document (plan.kyc_ruleset); a missing or malformed one is
    left to tiering, which refuses it as a policy error.
    """
    if kyc_ruleset is None:
        return
    ruleset = KycRuleset.from_policy(kyc_ruleset)
    known = declared_facts(config)
    missing = {f: ids for f, ids in named_facts(ruleset).items() if f not in known}
    if not missing:
        return
    listed = "; ".join(f"{fact} (read by {', '.join(ids)})" for fact, ids in missing.items())
    raise ConfigError(
        f"pgov.toml: the KYC ruleset {ruleset.version} names facts this workspace does not "
        f"declare for {PURPOSE}: {listed}. Declare a feature for {PURPOSE} for each "
        '(`kyc_fact = "<name>"` when your column has another name), or ship a ruleset '
        "that does not read them (docs/bring-your-own-data.md, KYC facts)"
    )
