"""Enrol a hand-built workspace's actors the way `pgov keys init` does: enrolments are signed
by the workspace's signing key, so one is created first when the workspace has none."""

from __future__ import annotations

from engine.actors import enrol_all
from engine.workspace import Workspace
from lineage.signing import SigningKeyring


def enrol_actors(ws: Workspace, by: str = "test") -> list[str]:
    keys = ws.config.keys
    trust = ws.path(keys.trust_file)
    if not trust.is_file():
        SigningKeyring(ws.path(keys.signing_dir), trust).init()
    return enrol_all(ws, by)
