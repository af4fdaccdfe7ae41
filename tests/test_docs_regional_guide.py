"""Every command in docs/regional-guide-strategy-experiment-activation.md runs, in order, on
the workspace it creates; the TOML it shows is appended where the guide says to."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from persona_flow import plant_outcomes
from typer.testing import CliRunner

from engine.cli import app
from engine.workspace import Workspace

GUIDE = (
    Path(__file__).resolve().parent.parent / "docs/regional-guide-strategy-experiment-activation.md"
)
runner = CliRunner()


def _blocks() -> list[tuple[str, str]]:
    return re.findall(r"```(sh|toml)\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)


def _fix_master_key(ws: Path) -> None:
    """`keys init` draws a random master key, so tokens, and with them the row order the
    models see, differ run to run; at the guide's 3000 customers a gate can then fail by
    chance (seen: exit 7 about one run in twenty). A fixed key makes the test deterministic."""
    import hashlib
    import json

    path = ws / "keys" / "master.key"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["versions"]["1"]["key"] = hashlib.sha256(b"regional-guide-test").hexdigest()
    path.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")


@pytest.mark.slow
def test_every_guide_command_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pending_toml: list[str] = []
    ran: list[str] = []
    for lang, body in _blocks():
        if lang == "toml":
            # The predictive declaration is already the sample's; the others are additions.
            if not body.lstrip().startswith("[segmentation"):
                pending_toml.append(body)
            continue
        for line in body.strip().splitlines():
            args = shlex.split(line)
            assert args[0] == "pgov", line
            if pending_toml:
                with (tmp_path / "ws" / "pgov.toml").open("a", encoding="utf-8") as fh:
                    fh.write("\n" + "\n".join(pending_toml))
                pending_toml.clear()
            if args[1:3] == ["experiment", "analyse"]:
                # The campaign reports back: a strong planted response in the treatment arm.
                ws = Workspace.open(tmp_path / "ws")
                plant_outcomes(ws, args[3], "EU-DE", {"control": 0.1, "treatment": 0.4})
            res = runner.invoke(app, args[1:])
            assert res.exit_code == 0, f"{line}\n{res.output}"
            ran.append(" ".join(args[1:3]))
            if args[1:3] == ["keys", "init"]:
                _fix_master_key(tmp_path / "ws")
    assert {"experiment design", "experiment analyse", "experiment promote"} <= set(ran)
    assert any(r.startswith("activate") for r in ran)
    exported = list((tmp_path / "ws" / "exports" / "cms").rglob("*.csv"))
    assert exported, "the content drop received the audiences"
