"""Where routed or activated data may go: KYC sinks (outbox, webhook) and activation
destinations (file, HTTP), as declared in pgov.toml.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutboxSink(_Strict):
    type: Literal["outbox"] = "outbox"
    path: str = "outbox"


class WebhookSink(_Strict):
    type: Literal["webhook"] = "webhook"
    url: str
    secret: str = Field(description="env:VAR or file:PATH holding the HMAC secret")
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0


Sink = Annotated[OutboxSink | WebhookSink, Field(discriminator="type")]


class _DestinationBase(_Strict):
    # Where the destination processes data (a region of the policy data, e.g. "EU", "US"):
    # outside the data's region, activation needs adequacy or a transfer mechanism.
    region: str
    # Transfer mechanism relied on when the region differs (e.g. "scc", "bcr", "dpf").
    transfer_mechanism: str | None = None
    # The contact channel the destination acts through ("email", "phone", "sms", "push",
    # "web", "content"): channels the policy suppresses stay suppressed.
    channel: str = "content"
    # Purposes whose personas may go here (empty: any).
    purposes: list[str] = Field(default_factory=list)
    # Only versions validated by an experiment may go here.
    require_validated: bool = False


class FileDestination(_DestinationBase):
    type: Literal["file"] = "file"
    path: str
    format: Literal["parquet", "csv"] = "parquet"


class HttpDestination(_DestinationBase):
    type: Literal["http"] = "http"
    url: str
    # env:VAR or file:PATH holding the HMAC secret that signs each request (optional).
    secret: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)


Destination = Annotated[FileDestination | HttpDestination, Field(discriminator="type")]
