"""Fake refreshes for the executor, version and Dask tests (no tests here).

Module-level functions so they pickle by reference into pool processes and Dask workers.
They publish like the real store: under the refresh lock, staged then renamed into place,
a manifest naming the predecessor and the sha256 of its statement bytes, and a
DSSE-shaped statement (unsigned: the chain checks do not verify signatures).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from test_locks_support import MINIMAL_CONFIG

from engine.errors import PolicyDenied
from engine.locks import refresh_lock
from engine.request import RefreshRequest
from engine.versions import next_version_id
from engine.workspace import Workspace


def write_workspace(root: Path, jurisdictions: list[str] | None = None) -> Path:
    cfg = dict(MINIMAL_CONFIG)
    if jurisdictions is not None:
        cfg["jurisdictions"] = jurisdictions
    root.mkdir(parents=True, exist_ok=True)
    (root / "pgov.toml").write_text(tomli_w.dumps(cfg), encoding="utf-8")
    return root


@dataclass(frozen=True)
class FakeResult:
    manifest: dict[str, Any]
    path: Path


def publish(
    ws: Workspace,
    jurisdiction: str,
    purpose: str,
    actor: str = "tester",
    hold_until: Path | None = None,
) -> FakeResult:
    with refresh_lock(ws, jurisdiction, purpose, wait_seconds=60, actor=actor):
        chain = ws.versions_dir(jurisdiction, purpose)
        chain.mkdir(parents=True, exist_ok=True)
        vid = next_version_id(ws, jurisdiction, purpose)
        prev_dirs = sorted(p for p in chain.iterdir() if p.name.startswith("v"))
        predecessor = None
        if prev_dirs:
            prev = prev_dirs[-1]
            predecessor = {
                "version": prev.name,
                "statement_sha256": hashlib.sha256(
                    (prev / "statement.dsse.json").read_bytes()
                ).hexdigest(),
            }
        manifest = {
            "version_id": vid,
            "jurisdiction": jurisdiction,
            "purpose": purpose,
            "actor": actor,
            "validity": "valid",
            "predecessor": predecessor,
            "customers": 3,
            "ran_in_pid": os.getpid(),
        }
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [],
            "predicateType": "https://personagov.example/lineage/v1",
            "predicate": {"persona_version": vid, "predecessor": predecessor},
        }
        envelope = {
            "payload": base64.b64encode(json.dumps(statement).encode()).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [],
        }
        stage = chain / ".staging" / uuid.uuid4().hex
        stage.mkdir(parents=True)
        (stage / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (stage / "statement.dsse.json").write_text(json.dumps(envelope), encoding="utf-8")
        if hold_until is not None:
            _wait_for(hold_until)
        final = chain / vid
        os.rename(stage, final)
        return FakeResult(manifest=manifest, path=final)


def fake_refresh(ws: Workspace, request: RefreshRequest) -> FakeResult:
    return publish(ws, request.jurisdiction, request.purpose.value, request.actor)


def denying_refresh(ws: Workspace, request: RefreshRequest) -> FakeResult:
    if request.jurisdiction == "UK":
        raise PolicyDenied("actor may not run here", reasons=["access.region_mismatch"])
    return fake_refresh(ws, request)


def crashing_refresh(ws: Workspace, request: RefreshRequest) -> FakeResult:
    raise RuntimeError("boom")


def _wait_for(flag: Path) -> None:
    """Block until flag exists (bounded, so a test never hangs)."""
    import time

    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def blocking_refresh(ws: Workspace, request: RefreshRequest) -> FakeResult:
    """Holds its worker until `<workspace>/release` appears, before taking any lock."""
    _wait_for(ws.root / "release")
    return fake_refresh(ws, request)


def stalling_publish_refresh(ws: Workspace, request: RefreshRequest) -> FakeResult:
    """Stalls mid-publish (lock held, version staged, not renamed) until `release` appears."""
    (ws.root / f"staged-{request.jurisdiction}").touch()
    return publish(
        ws, request.jurisdiction, request.purpose.value, request.actor, ws.root / "release"
    )
