"""Helpers for the lock and version tests (no tests here): a tiny workspace, a holder process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.config import parse_config
from engine.workspace import Workspace

JURISDICTIONS = ["EU-DE", "EU-FR", "UK", "US-CA", "SG", "BR"]

MINIMAL_CONFIG = {
    "jurisdictions": JURISDICTIONS,
    "subjects": "crm",
    "sources": {
        "crm": {
            "path": "data/crm.parquet",
            "key": ["customer_id"],
            "columns": {
                "customer_id": {"type": "str", "classification": "direct_identifier"},
                "jurisdiction": {"type": "str", "classification": "technical"},
            },
        }
    },
    "actors": {"alice": {"roles": ["regional_analyst"], "home_region": "EU"}},
}


def fake_workspace(root: Path) -> Workspace:
    """A Workspace over root without running `pgov init`: locks and versions need only paths."""
    root.mkdir(parents=True, exist_ok=True)
    return Workspace(root=root.resolve(), config=parse_config(MINIMAL_CONFIG, "test"))


def support_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


_HOLDER = """
import pathlib, sys, time
from engine.locks import refresh_lock
from test_locks_support import fake_workspace
root, j, p, actor = sys.argv[1:5]
ws = fake_workspace(pathlib.Path(root))
ready = pathlib.Path(root) / f"ready-{j}-{p}"
release = pathlib.Path(root) / f"release-{j}-{p}"
with refresh_lock(ws, j, p, actor=actor):
    ready.touch()
    while not release.exists():
        time.sleep(0.01)
"""


class HolderProcess:
    """A real process holding a refresh lock until told to release (or killed)."""

    def __init__(self, root: Path, jurisdiction: str, purpose: str, actor: str = "holder") -> None:
        fake_workspace(root)
        self.root = root
        self.ready = root / f"ready-{jurisdiction}-{purpose}"
        self.release_flag = root / f"release-{jurisdiction}-{purpose}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(root), jurisdiction, purpose, actor],
            env=support_env(),
        )
        # Readiness is signalled by a file, not guessed from a sleep.
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"lock holder exited early with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("lock holder never became ready")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.release_flag.touch()

    def wait_exit(self) -> int:
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.release()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
