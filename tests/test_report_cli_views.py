"""Terminal views and the report's documented commands.

- every `pgov report` / `--version` / queue-paging command in the docs runs;
- a refresh on a terminal (a real pseudo-terminal) shows each stage with elapsed time; off a
  terminal the stages are `progress` events in the workspace log; --quiet silences both;
- `pgov ... | head -1` exits 0 without noise; `pgov --version`;
- `kyc queue` states its total, sorts by sla|score|tier in a total order and pages;
- `personas show` and `lineage show` fit 80 columns and carry what the issue asked for.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine import __version__
from engine.cli import app
from engine.pseudonym.lifecycle import init_keys
from engine.report.browser import find_chromium
from engine.workspace import Workspace

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"
PGOV = str(Path(sys.executable).with_name("pgov"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def pgov(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def ws(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("views") / "ws"
    shutil.copytree(sample_workspace, root)
    init_keys(Workspace.open(root))
    for as_of in ("2026-11-01", "2026-12-01"):
        pgov("--quiet", "refresh", "-j", "EU-DE", "-p", "kyc_aml", "-a", "compliance-lead",
             "--as-of", as_of, "-w", str(root))  # fmt: skip
    pgov("versions", "approve", "EU-DE/kyc_aml/v0002", "--actor", "compliance-deputy",
         "-w", str(root))  # fmt: skip
    return root


def _doc_commands(text: str, needle: str) -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    return [ln for ln in lines if ln.startswith("pgov ") and needle in ln]


def test_documented_report_commands_run(ws: Path, tmp_path: Path) -> None:
    commands = _doc_commands((DOCS / "compliance-officer.md").read_text(), "pgov report")
    commands += _doc_commands(README.read_text(), "pgov report")
    commands += _doc_commands(README.read_text(), "--version")
    commands += _doc_commands((DOCS / "kyc-operations.md").read_text(), "--offset")
    assert len(commands) >= 6
    for line in commands:
        args = line.split()[1:]
        args = [str(ws) if a in ("WS", "ws") else a for a in args]
        args = [str(tmp_path / a) if a.endswith((".html", ".pdf")) else a for a in args]
        args = ["EU-DE/kyc_aml/latest" if a.startswith("EU-DE/kyc_aml/v") else a for a in args]
        if "-w" not in args and args[0] not in ("--version",):
            args += ["-w", str(ws)]
        if "--pdf" in args and find_chromium() is None:
            pgov(*args, code=2)  # documented: refuses without Chromium
            continue
        pgov(*args)
    assert (tmp_path / "report.html").stat().st_size > 100_000
    assert (tmp_path / "trend.html").stat().st_size > 100_000


def _pty_run(args: list[str], cwd: Path) -> str:
    """Run pgov with stdout and stderr on a pseudo-terminal 80 columns wide."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(
        [PGOV, *args], stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd, env=env
    )
    os.close(terminal)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(controller)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode("utf-8", errors="replace").replace("\r", "\n"))


def test_refresh_on_a_terminal_shows_each_stage_with_elapsed_time(ws: Path) -> None:
    out = _pty_run(
        ["refresh", "-j", "EU-FR", "-p", "kyc_aml", "-a", "compliance-lead", "-w", str(ws)], ws
    )
    for stage in ("policy", "sources", "enforce", "features", "segment", "kyc", "store"):
        assert re.search(rf"EU-FR/kyc_aml\s+{stage}\s+\d+\.\d+s\s+\(elapsed\s+\d+\.\d+s\)", out)
    assert re.search(r"refresh EU-FR/kyc_aml: done in \d+\.\d+s", out)
    # The summary table fits 80 columns and cuts no id.
    table = [ln for ln in out.splitlines() if "verified" in ln and "EU-FR" in ln]
    assert table and all(len(ln.rstrip()) <= 80 for ln in table)
    assert "…" not in "\n".join(table)


def _progress_events(ws: Path) -> list[dict[str, object]]:
    lines = (ws / "logs" / "pgov.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "progress"]


def test_off_a_terminal_progress_goes_to_the_log_and_quiet_silences_it(ws: Path) -> None:
    before = len(_progress_events(ws))
    out = pgov("refresh", "-j", "EU-ES", "-p", "kyc_aml", "-a", "compliance-lead", "-w", str(ws))
    assert "elapsed" not in out
    events = _progress_events(ws)[before:]
    stages = [e.get("stage") for e in events if e.get("task") == "EU-ES/kyc_aml"]
    assert stages[:2] == ["policy", "sources"] and "store" in stages
    assert all(isinstance(e.get("elapsed"), float) for e in events if "stage" in e)
    before = len(_progress_events(ws))
    pgov("--quiet", "refresh", "-j", "EU-ES", "-p", "kyc_aml", "-a", "compliance-lead",
         "-w", str(ws))  # fmt: skip
    assert len(_progress_events(ws)) == before


def test_closed_pipe_exits_zero_quietly_and_version_prints(ws: Path) -> None:
    for cmd in (
        f"{PGOV} personas show EU-DE/kyc_aml/v0001 -w {ws} | head -1",
        f"{PGOV} audit query --json -w {ws} | head -1",
        f"{PGOV} --help | head -1",
    ):
        proc = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert proc.stderr == ""
    assert pgov("--version").strip() == __version__


def _queue(ws: Path, *extra: str) -> dict[str, object]:
    out = pgov("kyc", "queue", "standard-review", "-j", "EU-DE", "--actor", "kyc-ops", "--json",
               "-w", str(ws), *extra)  # fmt: skip
    doc: dict[str, object] = json.loads(out)
    return doc


def test_kyc_queue_shows_total_sorts_in_a_total_order_and_pages(ws: Path) -> None:
    full = _queue(ws)
    items = full["items"]
    assert isinstance(items, list) and full["total"] == len(items) > 20
    keys = [(i["sla_due"], -i["score"]) for i in items]
    assert keys == sorted(keys)  # same SLA date: highest score first, not token order
    page = _queue(ws, "--offset", "5", "--limit", "5")
    assert page["total"] == full["total"] and page["items"] == items[5:10]
    by_score = _queue(ws, "--sort", "score")["items"]
    assert isinstance(by_score, list)
    assert [i["score"] for i in by_score] == sorted((i["score"] for i in items), reverse=True)
    assert _queue(ws, "--sort", "score") == _queue(ws, "--sort", "score")
    tiers = [i["tier"] for i in _queue(ws, "--sort", "tier")["items"]]  # type: ignore[union-attr]
    rank = ["PROHIBITED", "EDD_SENIOR", "EDD", "CDD", "SDD"]
    assert [rank.index(t) for t in tiers] == sorted(rank.index(t) for t in tiers)
    text = pgov("kyc", "queue", "standard-review", "-j", "EU-DE", "--actor", "kyc-ops",
                "--limit", "3", "-w", str(ws))  # fmt: skip
    assert f"{full['total']} item(s) in the queue, showing 1-3" in text
    pgov("kyc", "queue", "standard-review", "--actor", "kyc-ops", "--sort", "nope",
         "-w", str(ws), code=2)  # fmt: skip


def test_personas_and_lineage_show_fit_80_columns_with_units_and_as_of(ws: Path) -> None:
    out = _pty_run(["personas", "show", "EU-DE/kyc_aml/v0002", "-w", str(ws)], ws)
    assert all(len(ln.rstrip()) <= 80 for ln in out.splitlines())
    assert "distinguishing" in out and "descriptors" in out and "σ" in out
    assert re.search(r"value_proxy \(money\)", out) and re.search(r"_rate \(%\)", out)
    out = _pty_run(["lineage", "show", "EU-DE/kyc_aml/v0002", "-w", str(ws)], ws)
    assert all(len(ln.rstrip()) <= 80 for ln in out.splitlines())
    assert "as of      2026-12-01" in out
    assert "segmentation.seed" in out and "row accounting" in out
    assert re.search(r"crm\s+\d+\s+\d+\s+\d+\s+\d+", out)


def _with_threshold(ws: Path, tmp_path: Path, value: str) -> Path:
    root = tmp_path / f"t{value}"
    shutil.copytree(ws, root)
    with (root / "pgov.toml").open("a") as f:
        f.write(f"\n[report]\ndrift_threshold = {value}\n")
    return root


def test_trend_flags_changes_beyond_the_declared_threshold_only(ws: Path, tmp_path: Path) -> None:
    from engine.report.trend import build_trend

    strict = build_trend(Workspace.open(_with_threshold(ws, tmp_path, "1e-9")), "EU-DE", "kyc_aml")
    assert strict.versions == ["v0001", "v0002"]
    assert strict.flags and all(f["version"] == "v0002" for f in strict.flags)
    assert all(abs(f["change"]) > 1e-9 for f in strict.flags)
    lax = build_trend(Workspace.open(_with_threshold(ws, tmp_path, "1.0")), "EU-DE", "kyc_aml")
    assert lax.flags == []
    out = tmp_path / "trend.html"
    bad = _with_threshold(ws, tmp_path, "0")
    pgov("report", "--trend", "EU-DE/kyc_aml", "-o", str(out), "-w", str(bad), code=2)
    assert not out.exists()
