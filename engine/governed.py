"""The governed frames: what enforcement hands to every later stage (features, segmentation,
kyc, lineage), with the row accounting, the column-level actions and the subject tokens and
positions that let later stages group by subject without re-hashing tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

SUBJECT = "customer_id"  # the output name of every source's subject column
SUBJECT_EXCLUDED = "subject_excluded"
SUBJECT_UNKNOWN = "subject_unknown"
JURISDICTION_MISMATCH = "jurisdiction_mismatch"
# The pseudonymisation domain whose tokens are reversible (filed in the token vault).
REVERSIBLE_DOMAIN = "kyc"


@dataclass(frozen=True)
class SourceRowAccounting:
    source: str
    input_rows: int
    quarantined: int
    excluded: int  # distinct rows excluded by any rule
    kept: int
    # reason code -> rows excluded by that rule (a row can count under several reasons)
    excluded_by_reason: dict[str, int] = field(default_factory=dict)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.input_rows == self.kept + self.excluded + self.quarantined


@dataclass(frozen=True)
class GovernedFrames:
    jurisdiction: str
    purpose: str
    # Governed rows per source: dropped columns absent, identifiers replaced by tokens
    # (the subject column `customer_id` holds the pseudonym in every source, so they join),
    # quasi-identifiers generalised, excluded rows removed. `_row` is removed.
    frames: dict[str, pl.DataFrame]
    accounting: dict[str, SourceRowAccounting]
    plan_digest: str
    # Which pseudonymisation domain `customer_id` tokens belong to ("marketing" or "kyc").
    subject_domain: str
    # Per output column: what happened to it (for column-level lineage):
    # {"source.column": {"action": "pseudonymise", "domain": "kyc", "method": "aes_siv", ...}}
    column_actions: dict[str, dict[str, str]] = field(default_factory=dict)
    # Key context -> the distinct kyc-domain subject tokens the frames carry, and the sources
    # whose subject column they cover. The token vault files exactly the tokens a version
    # publishes; reading them back from every source's subject column means a unique() over
    # every transaction, while enforce knows which subjects kept any row.
    subject_tokens: dict[str, pl.Series] = field(default_factory=dict)
    subject_token_sources: frozenset[str] = frozenset()
    # Per source whose subject column was tokenised from the per-subject table: the rows'
    # subject positions (engine/features groups on them).
    subject_positions: dict[str, SubjectPositions] = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectPositions:
    """Which subject each row of one governed frame belongs to, as a number: the row's
    position in `tokens`, the subject column's token per subject (so `tokens[at]` is the
    frame's subject column). Grouping and joining by subject on these 4-byte numbers costs a
    fraction of hashing the 40+ byte tokens. Valid only for `frame` itself (the same object):
    a reader checks that before it trusts `at`."""

    frame: pl.DataFrame
    at: pl.Series  # UInt32 per row; null where the row has no subject
    tokens: pl.Series


class TokenSource(Protocol):
    """What enforce needs from engine.pseudonym.Pseudonymiser."""

    def token_expr(
        self,
        column: str,
        domain: str,
        normaliser: str | None = None,
        *,
        key_column: str | None = None,
    ) -> pl.Expr: ...
