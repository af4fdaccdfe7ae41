"""Which declared features a policy plan lets through, and which rule removed which input.

Used by `pgov features list` (read-only) and by refresh, which refuses (exit 2) a feature
declared for a purpose whose policy removes an input whatever the jurisdiction: the
declaration contradicts the purpose, so it is a configuration error, not a degraded run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.features.spec import FeatureSpec, Transform

if TYPE_CHECKING:
    from engine.config import WorkspaceConfig
    from engine.policy.plan import EnforcementPlan

# Plan reasons that hold for the purpose in every jurisdiction: the purpose's allowed
# classifications (data minimisation by purpose) and identifiers never used in clear.
PURPOSE_WIDE_REASONS = frozenset({"purpose_limitation", "direct_identifier"})


@dataclass(frozen=True)
class InputStatus:
    column: str  # source.column
    action: str  # keep | drop | pseudonymise | generalise | absent
    reason: str = ""
    article: str = ""


@dataclass(frozen=True)
class FeatureStatus:
    name: str
    role: str
    transform: str
    declared_for_purpose: bool
    inputs: list[InputStatus] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    available: bool = False
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.name,
            "role": self.role,
            "transform": self.transform,
            "declared_for_purpose": self.declared_for_purpose,
            "available": self.available,
            "why": self.why,
            "inputs": [i.__dict__ for i in self.inputs],
            "terms": self.terms,
        }


def _blocking(spec: FeatureSpec, status: InputStatus) -> bool:
    if status.action == "drop" or status.action == "absent":
        return True
    # A generalised input reaches only a descriptor that takes the policy's label as is.
    return status.action == "generalise" and not (
        spec.role.value in ("descriptor", "input") and status.column.endswith(f".{spec.column}")
    )


def feature_statuses(config: WorkspaceConfig, plan: EnforcementPlan) -> list[FeatureStatus]:
    out: dict[str, FeatureStatus] = {}
    for name, spec in config.features.items():
        inputs: list[InputStatus] = []
        if spec.source is not None:
            sp = plan.sources.get(spec.source)
            for col in spec.inputs():
                action = sp.columns.get(col) if sp is not None else None
                if action is None:
                    inputs.append(
                        InputStatus(
                            f"{spec.source}.{col}", "absent", "source has no plan for this column"
                        )
                    )
                else:
                    inputs.append(
                        InputStatus(
                            f"{spec.source}.{col}", action.action, action.reason, action.article
                        )
                    )
        declared = plan.purpose in spec.purposes
        blocked = [i for i in inputs if _blocking(spec, i)]
        why = ""
        if not declared:
            why = f"not declared for {plan.purpose}"
        elif blocked:
            why = "; ".join(
                f"{i.column} {i.action}"
                + (f" by {i.reason}" if i.reason else "")
                + (f" ({i.article})" if i.article else "")
                for i in blocked
            )
        out[name] = FeatureStatus(
            name=name,
            role=spec.role.value,
            transform=spec.transform.value,
            declared_for_purpose=declared,
            inputs=inputs,
            terms=sorted(spec.terms or {}),
            available=declared and not blocked,
            why=why,
        )
    for name, spec in config.features.items():
        if spec.transform is Transform.COMBINE and out[name].available:
            ok = [t for t in spec.terms or {} if t in out and out[t].available]
            if not ok:
                st = out[name]
                out[name] = FeatureStatus(
                    **{**st.__dict__, "available": False, "why": "none of its terms is available"}
                )
    return list(out.values())


def refuse_contradictions(config: WorkspaceConfig, plan: EnforcementPlan) -> None:
    """Exit 2 (ConfigError) when a feature is declared for this purpose but the purpose's
    policy removes one of its inputs in every jurisdiction."""
    problems: list[str] = []
    for st in feature_statuses(config, plan):
        if not st.declared_for_purpose:
            continue
        spec = config.features[st.name]
        for i in st.inputs:
            if _blocking(spec, i) and i.reason in PURPOSE_WIDE_REASONS:
                problems.append(
                    f"features.{st.name}.purposes: declared for {plan.purpose}, but the policy "
                    f"drops {i.column} for this purpose ({i.reason}"
                    + (f", {i.article}" if i.article else "")
                    + f"); remove {plan.purpose} from its purposes"
                )
                break
    if problems:
        raise ConfigError("pgov.toml: " + "\n  ".join(problems))
