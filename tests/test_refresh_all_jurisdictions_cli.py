"""`pgov refresh --all-jurisdictions`: one job per declared jurisdiction, --workers reaches the
local pool (at 10M customers one process at a time keeps memory to one jurisdiction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_actor_support import enrol_actors
from typer.testing import CliRunner

import engine.executor
from engine.cli import app
from engine.workspace import Workspace

DEFAULTS = Path(__file__).resolve().parents[1] / "engine" / "defaults" / "pgov.toml"


@pytest.mark.parametrize(("flag", "expected"), [([], None), (["--workers", "1"], 1)])
def test_workers_reach_the_local_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: int | None
) -> None:
    (tmp_path / "pgov.toml").write_text(DEFAULTS.read_text())
    enrol_actors(Workspace.open(tmp_path))  # the actors' credentials (engine/actors.py)
    seen: dict[str, Any] = {}

    def fake_run_all(root: Any, requests: Any, executor: Any, *args: Any, **kw: Any) -> list[Any]:
        seen.update(executor=executor, jurisdictions=[r.jurisdiction for r in requests], **kw)
        return []

    monkeypatch.setattr(engine.executor, "run_all", fake_run_all)
    res = CliRunner().invoke(
        app,
        ["refresh", "--all-jurisdictions", "-p", "kyc_aml", "-a", "compliance-lead",
         "--executor", "local", *flag, "-w", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen["executor"] == "local" and seen["max_workers"] == expected
    assert len(seen["jurisdictions"]) == 10


def test_negative_workers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pgov.toml").write_text(DEFAULTS.read_text())
    res = CliRunner().invoke(
        app,
        ["refresh", "--all-jurisdictions", "-p", "kyc_aml", "-a", "compliance-lead",
         "--workers", "-1", "-w", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 2
