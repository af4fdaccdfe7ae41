"""Every command in docs/bring-your-own-data.md runs, in order, from one CSV file to a
signed, verified persona version; its pgov.toml block is the file the walk-through uses."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from test_byod_support import credit_frame, pgov

DOC = Path(__file__).resolve().parents[1] / "docs" / "bring-your-own-data.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_byod_walkthrough_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    credit_frame(800, 5, "UK").write_csv(tmp_path / "applicants.csv")
    (toml,) = _blocks("toml")
    commands = [line for block in _blocks("sh") for line in block.splitlines() if line.strip()]
    assert len(commands) >= 8
    ran: list[str] = []
    for line in commands:
        argv = shlex.split(line)
        if argv[0] == "cp":
            shutil.copyfile(argv[1], argv[2])
        else:
            assert argv[0] == "pgov", f"docs command not understood by this test: {line}"
            code, out = pgov(*argv[1:])
            assert code == 0, f"{line}\n{out}"
            ran.append(argv[1])
        if argv[:2] == ["pgov", "init"]:
            # The walk-through replaces the sample declaration with the lender's own.
            (tmp_path / argv[2] / "pgov.toml").write_text(toml, encoding="utf-8")
    assert ran == ["init", "keys", "validate", "features", "refresh", "personas", "lineage"]
    assert (tmp_path / "lender" / "versions" / "UK" / "credit_risk_segmentation" / "v0001").is_dir()
