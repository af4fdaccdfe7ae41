"""The kyc_aml parts of a refresh that are not a stage of their own: the chain's previous
version (whose routing keeps tiers stable), this version's routing, and the kyc tokens the
governed frames publish (the vault must hold every one before anything carrying them is
published)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from engine.enforce import GovernedFrames
from engine.features import FeatureFrame
from engine.kyc.model import KycRouting
from engine.request import RefreshRequest
from engine.segment.model import Segmentation
from engine.store import PersonaVersion, load_version
from engine.workspace import Workspace


def predecessor_of(ws: Workspace, j: str, p: str) -> PersonaVersion | None:
    """The chain's latest version (None for the first): its routing is the previous one."""
    from engine.versions import latest_version

    # The last one only: listing the chain read every version's manifest (14 ms at 220).
    latest = latest_version(ws, j, p)
    return None if latest is None else load_version(Path(latest.path))


def route_customers(
    ws: Workspace,
    request: RefreshRequest,
    plan: Any,
    features: FeatureFrame,
    governed: GovernedFrames,
    seg: Segmentation,
    predecessor: PersonaVersion | None,
) -> KycRouting:
    """This version's KYC routing: the policy's ruleset over the features, the previous
    version's tiers for stability, then the jurisdiction's overrides."""
    from engine.errors import PolicyError
    from engine.kyc import route
    from engine.kyc.io import read_routing
    from engine.kyc.overrides import apply_overrides, load_overrides
    from engine.kyc.ruleset import KycRuleset
    from engine.kyc.tiering import previous_columns

    if plan.kyc_ruleset is None:
        raise PolicyError(
            "kyc_aml refresh without a KYC ruleset from policy; refusing",
            reasons=["kyc.ruleset_undefined"],
        )
    ruleset = KycRuleset.from_policy(plan.kyc_ruleset)
    previous: pl.DataFrame | None = None
    if predecessor is not None and (predecessor.path / "routing.parquet").is_file():
        previous = read_routing(predecessor.path, previous_columns)
    routing = route(
        features,
        governed,
        seg,
        ruleset,
        previous,
        request.as_of,
        ws.config.kyc.downgrade_cooldown_days,
    )
    return apply_overrides(routing, load_overrides(ws, request.jurisdiction), request.as_of)


def kyc_tokens_published(governed: GovernedFrames) -> dict[str, pl.Series]:
    """Key context -> the kyc tokens the governed frames carry (what the vault must open)."""
    from engine.enforce import SUBJECT

    # The subject tokens enforcement gathered come distinct already: not read back from
    # every row of every source (a unique() over every transaction at 10M).
    used: dict[str, list[pl.Series]] = {c: [s] for c, s in governed.subject_tokens.items()}
    for key, act in governed.column_actions.items():
        if act.get("action") != "pseudonymise" or act.get("domain") != "kyc":
            continue
        source = key[: -len(act["input"]) - 1]
        out = act["output"]
        if out == SUBJECT and source in governed.subject_token_sources:
            continue
        ctx = SUBJECT if out == SUBJECT else act["input"]
        frame = governed.frames.get(source)
        if frame is not None and out in frame.columns:
            used.setdefault(ctx, []).append(frame.get_column(out))
    return {ctx: pl.concat(parts).drop_nulls() for ctx, parts in used.items()}
