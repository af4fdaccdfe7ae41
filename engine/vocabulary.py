"""The project's closed vocabularies: data classifications, purposes, column types, actor
roles and the privacy roles a column can play (the Rego bundle reads roles, never names).
"""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    DIRECT_IDENTIFIER = "direct_identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SPECIAL_CATEGORY = "special_category"
    SENSITIVE_PI = "sensitive_pi"
    FINANCIAL = "financial"
    BEHAVIOURAL = "behavioural"
    SCREENING = "screening"
    CONSENT = "consent"
    OUTCOME = "outcome"
    TECHNICAL = "technical"  # keys and jurisdiction tags: governance metadata, not about the person


class Purpose(StrEnum):
    MARKETING = "marketing_segmentation"
    CREDIT_RISK = "credit_risk_segmentation"
    KYC_AML = "kyc_aml"


class ColumnType(StrEnum):
    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"


class Role(StrEnum):
    REGIONAL_ANALYST = "regional_analyst"
    COMPLIANCE_OFFICER = "compliance_officer"
    KYC_OPERATIONS = "kyc_operations"
    DATA_ENGINEER = "data_engineer"


class PrivacyRole(StrEnum):
    """What a column means to the privacy rules. The Rego bundle reads roles, never column
    names: `input.roles = {role: column}` for the subjects source (docs/policy.md)."""

    DATE_OF_BIRTH = "date_of_birth"
    COUNTRY = "country"
    LAWFUL_BASIS_MARKETING = "lawful_basis_marketing"
    MARKETING_CONSENT = "marketing_consent"
    MARKETING_CONSENT_AT = "marketing_consent_at"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    OBJECTION_DIRECT_MARKETING = "objection_direct_marketing"
    DO_NOT_SELL_SHARE = "do_not_sell_share"
    GPC = "gpc"
    LIMIT_SENSITIVE_PI = "limit_sensitive_pi"
    DO_NOT_CALL = "do_not_call"
    OPT_OUT_REQUESTED = "opt_out_requested"
    ERASURE_REQUESTED = "erasure_requested"
    DELETION_REQUESTED = "deletion_requested"
    # On a requests table (any source with a subject column): one row per request; its type
    # ("erasure", "deletion", "opt_out") and date derive erasure_requested,
    # deletion_requested and opt_out_requested per subject.
    PRIVACY_REQUEST_TYPE = "privacy_request_type"
    PRIVACY_REQUEST_DATE = "privacy_request_date"


# Roles declared on a requests table; every other role sits on the subjects source.
REQUEST_ROLES = frozenset({PrivacyRole.PRIVACY_REQUEST_TYPE, PrivacyRole.PRIVACY_REQUEST_DATE})

# Roles a column of a given type may play (a consent flag must be a boolean, ...).
_ROLE_TYPES: dict[PrivacyRole, tuple[str, ...]] = {
    PrivacyRole.DATE_OF_BIRTH: ("date", "datetime"),
    PrivacyRole.COUNTRY: ("str",),
    PrivacyRole.LAWFUL_BASIS_MARKETING: ("str",),
    PrivacyRole.MARKETING_CONSENT_AT: ("date", "datetime"),
    PrivacyRole.PRIVACY_REQUEST_TYPE: ("str",),
    PrivacyRole.PRIVACY_REQUEST_DATE: ("date", "datetime"),
}


def role_types(role: PrivacyRole) -> tuple[str, ...]:
    return _ROLE_TYPES.get(role, ("bool",))
