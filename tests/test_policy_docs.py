"""Every `pgov` command in docs/policy.md's shell blocks runs, in order, on a fresh
workspace (WS) and exits 0."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from test_policy_support import make_ws, require_real_opa
from typer.testing import CliRunner

from engine.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "policy.md"


def _commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [ln.strip() for b in blocks for ln in b.splitlines() if ln.startswith("pgov ")]


def test_docs_list_the_policy_commands() -> None:
    cmds = " ".join(_commands())
    for needed in ("policy keygen", "policy build", "--input-out", "policy eval", "--action"):
        assert needed in cmds


@pytest.mark.slow
def test_every_policy_doc_command_runs(tmp_path: Path) -> None:
    require_real_opa()  # one of them is `pgov policy test --engine opa`
    ws = make_ws(tmp_path)
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        for cmd in _commands():
            args = shlex.split(cmd.replace("WS", str(ws.root)))[1:]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, f"{cmd}\n{result.output}"
    finally:
        os.chdir(old)
    assert (tmp_path / "input.json").is_file()
    assert (ws.root / "bundle.tar.gz").is_file()
