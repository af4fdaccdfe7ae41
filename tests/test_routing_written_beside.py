"""A kyc_aml refresh writes routing.parquet (and its JSON files) on a thread of its own while
the version's other files are written (engine/refresh_outputs.py): the manifest still lists
every file with its digest, in path order, and a routing write that fails fails the refresh
closed: nothing is published, and the failure is the refresh's."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import date
from pathlib import Path

import pytest

import engine.refresh_outputs as outputs
from engine.config import Purpose
from engine.kyc.model import KycRouting
from engine.pseudonym.lifecycle import init_keys
from engine.refresh import run_refresh
from engine.request import RefreshRequest
from engine.store import file_sha256
from engine.versions import list_versions
from engine.workspace import Workspace

REQUEST = RefreshRequest(actor="compliance-lead", jurisdiction="UK",
                         purpose=Purpose.KYC_AML, as_of=date(2026, 11, 1))  # fmt: skip


def _ws(sample_workspace: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(sample_workspace, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    init_keys(ws)
    return ws


def test_routing_written_on_its_own_thread_and_listed_in_the_manifest(
    sample_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(sample_workspace, tmp_path)
    threads: list[str] = []
    real = outputs.write_routing

    def write(routing: KycRouting, directory: Path) -> list[Path]:
        threads.append(threading.current_thread().name)
        return real(routing, directory)

    monkeypatch.setattr(outputs, "write_routing", write)
    version = run_refresh(ws, REQUEST).version.path
    assert len(threads) == 1 and threads[0].startswith("routing-write")
    listed = json.loads((version / "manifest.json").read_bytes())["outputs"]
    assert {"routing.parquet", "queues.json", "ruleset.json"} <= set(listed)
    assert list(listed) == sorted(listed, key=Path)
    for name, digest in listed.items():
        assert file_sha256(version / name) == digest, name
    # Every file of the version but the ones written after the manifest (it, the lineage
    # events, the signed statement) is listed.
    later = {"manifest.json", "openlineage.json", "openlineage-start.json", "statement.dsse.json"}
    assert set(listed) == {p.name for p in version.iterdir() if p.name not in later}


def test_a_failed_routing_write_fails_the_refresh_closed(
    sample_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _ws(sample_workspace, tmp_path)
    started = threading.Event()
    rest_done = threading.Event()
    real_rest = outputs._write_rest

    def rest(stage: Path, built: outputs.BuiltVersion) -> None:
        real_rest(stage, built)
        rest_done.set()

    def full_disk(routing: KycRouting, directory: Path) -> list[Path]:
        started.set()
        # Fails after the other files are written: the refresh must still not sign them.
        rest_done.wait(timeout=30)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_write_rest", rest)
    monkeypatch.setattr(outputs, "write_routing", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_refresh(ws, REQUEST)
    assert started.is_set()
    assert list_versions(ws, "UK", "kyc_aml") == []
    chain = ws.versions_dir("UK", "kyc_aml")
    assert not list(chain.rglob("statement.dsse.json"))
