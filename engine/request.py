"""RefreshRequest: who asks for which refresh, where, for what purpose, as of when."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from engine.config import Purpose


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str
    jurisdiction: str
    purpose: Purpose
    # The refresh date: ages, retention and review dates are computed as of this day, so a
    # rerun with the same as_of and seed reproduces the same outputs.
    as_of: date
    seed: int = Field(default=7, ge=0)
    # The id of the actor's signed request this refresh runs under (engine/actors.py). A
    # fan-out job runs in another process or on another machine: it carries the parent's
    # request so every entry it writes names it. Not an input of the computation.
    signed_request: str | None = None
