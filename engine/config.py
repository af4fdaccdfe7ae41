"""pgov.toml: the workspace's declared sources, jurisdictions, purposes, actors, keys and sinks.

pydantic validates it at the edge; every error names the file, the key path and what was
expected, so a data engineer can fix a declaration without reading code.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.conditions import Condition
from engine.destinations import (
    Destination as Destination,
)
from engine.destinations import (
    FileDestination as FileDestination,
)
from engine.destinations import (
    HttpDestination as HttpDestination,
)
from engine.destinations import (
    OutboxSink as OutboxSink,
)
from engine.destinations import (
    Sink as Sink,
)
from engine.destinations import (
    WebhookSink as WebhookSink,
)
from engine.errors import ConfigError
from engine.features.spec import FeatureSpec, check_features
from engine.segmentation_spec import (
    PredictiveSpec as PredictiveSpec,
)
from engine.segmentation_spec import (
    PurposeSegmentation as PurposeSegmentation,
)
from engine.segmentation_spec import (
    SegmentationSpec as SegmentationSpec,
)
from engine.segmentation_spec import (
    ValueSpec as ValueSpec,
)
from engine.vocabulary import (
    REQUEST_ROLES as REQUEST_ROLES,
)
from engine.vocabulary import (
    Classification as Classification,
)
from engine.vocabulary import (
    ColumnType as ColumnType,
)
from engine.vocabulary import (
    PrivacyRole as PrivacyRole,
)
from engine.vocabulary import (
    Purpose as Purpose,
)
from engine.vocabulary import (
    Role as Role,
)
from engine.vocabulary import (
    role_types as role_types,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    type: ColumnType
    classification: Classification
    required: bool = False
    min: float | None = None
    max: float | None = None
    # Named formats the contract checks: "email", "phone", "country", "iso_date".
    format: str | None = None
    allowed: list[str] | None = None
    # "not_future": dates after the refresh date are invalid.
    not_future: bool = False
    # "crm.customer_id": the value must exist in that source's key column.
    references: str | None = None
    # What the column means to the privacy rules (consent, objection, date of birth, ...).
    role: PrivacyRole | None = None

    @model_validator(mode="after")
    def _role_type(self) -> ColumnSpec:
        if self.role is not None and self.type.value not in role_types(self.role):
            raise ValueError(
                f"role '{self.role.value}' needs a column of type "
                f"{' or '.join(role_types(self.role))}, not {self.type.value}"
            )
        return self


class SourceSpec(_Strict):
    path: str
    format: Literal["parquet", "csv", "ndjson"] = "parquet"
    key: list[str]
    jurisdiction_column: str = "jurisdiction"
    # Column linking each row to its data subject (the customer); on the subjects source
    # it is the subject's own key.
    subject_column: str = "customer_id"
    # `pgov validate` exits 5 when more than this share of the source's rows is quarantined
    # (and always when every row is).
    max_quarantine_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # Date column whose age the retention rules measure, if any.
    record_date_column: str | None = None
    # Rows matching this condition are live records (an active loan is a running contract):
    # retention does not expire them however old their record date. Condition language of
    # engine.conditions, e.g. {field = "status", op = "in", value = ["active"]}.
    open_when: Condition | None = None
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _declared(self) -> SourceSpec:
        for name in [*self.key, self.jurisdiction_column, self.subject_column]:
            if name not in self.columns:
                raise ValueError(
                    f"column '{name}' is named as key/jurisdiction/subject but not declared"
                )
        if self.record_date_column and self.record_date_column not in self.columns:
            raise ValueError(f"record_date_column '{self.record_date_column}' is not declared")
        if self.open_when is not None:
            if not self.record_date_column:
                raise ValueError("open_when needs a record_date_column to exempt from")
            unknown = sorted(self.open_when.fields() - set(self.columns))
            if unknown:
                raise ValueError(f"open_when names undeclared column(s): {', '.join(unknown)}")
        return self


class ActorSpec(_Strict):
    roles: list[Role]
    home_region: str
    jurisdictions: list[str] = Field(default_factory=list)


class JurisdictionData(_Strict):
    """A jurisdiction the bundle does not ship (or a correction to one), as data: merged
    over the bundle's data.json in the decision input, so lineage records it."""

    country: str = Field(pattern=r"^[A-Z]{2}$")
    region: str = Field(min_length=1)
    # One of the bundle's regimes (gdpr, uk_gdpr, ccpa, us_baseline, lgpd, pdpa); the
    # bundle checks it and denies an unknown one.
    regime: str = Field(min_length=1)
    digital_consent_age: int | None = Field(default=None, ge=0, le=21)
    # Actor regions that may work on this jurisdiction's data without a transfer mechanism.
    adequacy: list[str] = Field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class KeysSpec(_Strict):
    # Master pseudonymisation key: "env:VAR", "file:PATH" or "kms:PROVIDER:REF".
    master: str = "file:keys/master.key"
    signing_dir: str = "keys/signing"
    trust_file: str = "keys/trust.json"
    # How new kyc-domain tokens are made: "vault" (keyed HMAC token + encrypted token vault,
    # vectorised) or "siv" (AES-SIV ciphertext as the token, one call per value). Tokens of
    # both kinds always re-identify; a workspace whose KYC chains must keep linking across
    # the upgrade keeps "siv" until its next key rotation (docs/keys.md).
    kyc_tokens: Literal["vault", "siv"] = "vault"


class PolicySpec(_Strict):
    engine: Literal["embedded", "opa"] = "embedded"
    # Empty = the bundle that ships with the package.
    bundle: str = ""
    opa_url: str = "http://127.0.0.1:8181"
    timeout_seconds: float = 5.0
    # A workspace bundle (`bundle` set) must be signed (`pgov policy build`); it is verified
    # with this public key before any decision, embedded or OPA. Paths are workspace-relative.
    verification_key: str = "keys/policy-bundle.pub.pem"
    signing_key: str = "keys/policy-bundle.key"


class AutoApproval(_Strict):
    """A declared class of versions approved by policy (recorded as an approval by policy)."""

    name: str
    purposes: list[Purpose]
    jurisdictions: list[str] = Field(default_factory=list)  # empty: every jurisdiction


class ApprovalSpec(_Strict):
    # Versions of these classes become current at publish when valid and verified.
    auto: list[AutoApproval] = Field(default_factory=list)


class KycSpec(_Strict):
    downgrade_cooldown_days: int = 90


class ReportSpec(_Strict):
    # `pgov report --trend` flags a change between consecutive versions larger than this:
    # relative for KPIs, absolute (in share points) for persona sizes and the tier mix.
    drift_threshold: float = Field(default=0.1, gt=0.0, le=1.0)


class OpenLineageSpec(_Strict):
    # Where copies of the run events go (e.g. Marquez: http://host:5000); empty: nowhere.
    url: str = ""
    endpoint: str = "api/v1/lineage"
    timeout_seconds: float = Field(default=5.0, gt=0)


class WorkspaceConfig(_Strict):
    name: str = "personagov"
    jurisdictions: list[str]
    # The source whose rows are the data subjects (customers); no source name is special.
    subjects: str
    sources: dict[str, SourceSpec]
    # Declared features (docs/segmentation.md): what segmentation, KPIs and KYC facts read.
    features: dict[str, FeatureSpec] = Field(default_factory=dict)
    actors: dict[str, ActorSpec]
    # [jurisdiction_data.XX]: jurisdictions declared as data (docs/policy.md).
    jurisdiction_data: dict[str, JurisdictionData] = Field(default_factory=dict)
    keys: KeysSpec = KeysSpec()
    policy: PolicySpec = PolicySpec()
    segmentation: SegmentationSpec = SegmentationSpec()
    kyc: KycSpec = KycSpec()
    report: ReportSpec = ReportSpec()
    sinks: list[Sink] = Field(default_factory=lambda: list[Sink]([OutboxSink()]))
    # Activation destinations (pgov activate VERSION --destination NAME).
    destinations: dict[str, Destination] = Field(default_factory=dict)
    openlineage: OpenLineageSpec = OpenLineageSpec()
    approval: ApprovalSpec = ApprovalSpec()

    @model_validator(mode="after")
    def _subjects_declared(self) -> WorkspaceConfig:
        if self.subjects not in self.sources:
            raise ValueError(
                f"subjects: '{self.subjects}' is not a declared source "
                f"(declared: {', '.join(sorted(self.sources))})"
            )
        self._check_roles()
        for name, src in self.sources.items():
            for col, spec in src.columns.items():
                if spec.references:
                    ref_src, _, ref_col = spec.references.partition(".")
                    if ref_src not in self.sources or ref_col not in self.sources[ref_src].columns:
                        raise ValueError(
                            f"sources.{name}.columns.{col}.references: '{spec.references}' "
                            "is not a declared source column"
                        )
        problems = check_features(self.features, self.sources, self.subjects)
        if problems:
            raise ValueError("; ".join(f"{path}: {msg}" for path, msg in problems))
        return self

    def _check_roles(self) -> None:
        """A role is declared at most once, and where the rules can read it."""
        seen: dict[PrivacyRole, str] = {}
        for name, src in self.sources.items():
            for col, spec in src.columns.items():
                if spec.role is None:
                    continue
                where = f"sources.{name}.columns.{col}.role"
                if spec.role in seen:
                    raise ValueError(
                        f"{where}: role '{spec.role.value}' is already declared at "
                        f"{seen[spec.role]}"
                    )
                seen[spec.role] = where
                if spec.role not in REQUEST_ROLES and name != self.subjects:
                    raise ValueError(
                        f"{where}: role '{spec.role.value}' must be on a column of the "
                        f"subjects source '{self.subjects}'"
                    )
        date_at = seen.get(PrivacyRole.PRIVACY_REQUEST_DATE)
        type_at = seen.get(PrivacyRole.PRIVACY_REQUEST_TYPE)
        if date_at and type_at and date_at.split(".")[1] != type_at.split(".")[1]:
            raise ValueError(
                f"{date_at}: privacy_request_date must be on the same source as "
                "privacy_request_type"
            )

    def role_columns(self) -> dict[PrivacyRole, tuple[str, str]]:
        """role -> (source, column) for every declared role."""
        return {
            spec.role: (name, col)
            for name, src in self.sources.items()
            for col, spec in src.columns.items()
            if spec.role is not None
        }

    @model_validator(mode="after")
    def _actor_jurisdictions_declared(self) -> WorkspaceConfig:
        # An actor scoped to a jurisdiction the workspace does not have is a typo or a stale
        # declaration; accepting it would let a later jurisdiction inherit the grant silently.
        for name, actor in self.actors.items():
            unknown = sorted(set(actor.jurisdictions) - set(self.jurisdictions))
            if unknown:
                raise ValueError(
                    f"actors.{name}.jurisdictions: {', '.join(repr(j) for j in unknown)} "
                    f"not declared in jurisdictions ({', '.join(self.jurisdictions)})"
                )
        return self


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after",)) or "(top level)"


def parse_config(data: dict[str, Any], origin: str) -> WorkspaceConfig:
    try:
        return WorkspaceConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{origin}: invalid configuration"]
        for err in exc.errors(include_url=False, include_input=True):
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not err["loc"] and msg.startswith(("features.", "subjects:")):
                # Cross-field checks name their own key paths, one per problem.
                lines += [f"  - {part}" for part in msg.split("; ") if part]
                continue
            got = err.get("input")
            # Name the bad value when it is a short word (a type name, an enum choice): the
            # configuration holds no personal data, and "expected one of ..." alone does
            # not say which line is wrong.
            shown = (
                f" (got {got!r})"
                if isinstance(got, str | int | float | bool) and len(str(got)) <= 60
                else ""
            )
            lines.append(f"  - {_loc(err['loc'])}: {msg}{shown}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path) -> WorkspaceConfig:
    if not path.is_file():
        raise ConfigError(f"{path}: no workspace configuration here (run 'pgov init DIR' first)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    # Features may live in a features.toml beside pgov.toml ([features.<name>] tables).
    extra = path.with_name("features.toml")
    if extra.is_file():
        try:
            more = tomllib.loads(extra.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{extra}: not valid TOML: {exc}") from None
        unknown = sorted(set(more) - {"features"})
        if unknown:
            raise ConfigError(f"{extra}: only [features.<name>] tables belong here, not {unknown}")
        features = dict(data.get("features", {}))
        twice = sorted(set(features) & set(more.get("features", {})))
        if twice:
            raise ConfigError(
                f"{extra}: features.{twice[0]}: declared twice (also in {path.name}); "
                "nothing was written"
            )
        data["features"] = {**features, **more.get("features", {})}
    return parse_config(data, str(path))
