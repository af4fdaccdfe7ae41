"""`pgov report` pages load in a real browser: every chart drawn, no console error, no
network request, every section present; for every version of the demo workspace.

Chromium is Debian's package (`make test` installs it), driven through Playwright's Python
client with `executable_path`; Playwright's own browser download is not used. Screenshots are
kept under build/test-artefacts/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.report.browser import find_chromium
from engine.workspace import Workspace

runner = CliRunner()
ARTEFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artefacts"
VERSION_SECTIONS = ("request", "policy", "accounting", "columns", "personas", "governance")


def pgov(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium on this machine and it could not be installed (make test tries)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo workspace plus what a report's governance section shows: a second KYC
    version (diff), an approval and a re-identification."""
    root = tmp_path_factory.mktemp("report") / "demo"
    pgov("demo", "-w", str(root), "--customers", "3000")
    w = ["-w", str(root)]
    pgov("refresh", "-j", "UK", "-p", "kyc_aml", "-a", "compliance-lead",
         "--as-of", "2026-12-01", *w)  # fmt: skip
    pgov("versions", "approve", "UK/kyc_aml/v0002", "--actor", "compliance-deputy", *w)
    pgov("reidentify", "--queue", "edd-review", "--version-dir",
         str(root / "versions" / "UK" / "kyc_aml" / "v0002"), "--actor", "kyc-ops",
         "--reason", "EDD file review", "--case", "AML-2026-0042", *w)  # fmt: skip
    return root


def load(browser: Any, page_file: Path, shot: Path | None = None) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    console: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    url = page_file.resolve().as_uri()
    page.goto(url)
    page.wait_for_function(
        "Number(document.body.dataset.chartsRendered) + Number(document.body.dataset.chartsFailed)"
        " >= Number(document.body.dataset.chartsExpected)",
        timeout=60_000,
    )
    state = page.evaluate(
        """() => ({
        expected: Number(document.body.dataset.chartsExpected),
        failed: Number(document.body.dataset.chartsFailed),
        charts: Array.from(document.querySelectorAll('.chart')).map(d => ({
            id: d.id,
            marks: d.querySelectorAll('svg path, svg rect, svg line, svg text').length,
            canvas: d.querySelectorAll('canvas').length})),
        sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
        text: document.body.innerText})"""
    )
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    state["console"] = console
    state["requests"] = [r for r in requests if r != url]
    return state


def assert_drawn(state: dict[str, Any]) -> None:
    assert state["expected"] >= 3
    assert state["failed"] == 0
    assert len(state["charts"]) == state["expected"]
    for chart in state["charts"]:
        assert chart["marks"] > 10 or chart["canvas"] > 0, chart
    errors = [m for m in state["console"] if m.startswith(("error", "pageerror"))]
    assert errors == []
    assert state["requests"] == []


@pytest.mark.slow
def test_every_demo_version_report_renders_all_sections_and_charts(
    browser: Any, demo: Path, tmp_path: Path
) -> None:
    from engine.cli.lineage_cmd import all_versions

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    versions = all_versions(Workspace.open(demo))
    assert len(versions) >= 21
    for vdir in versions:
        ref = "/".join(vdir.parts[-3:])
        out = tmp_path / (ref.replace("/", "_") + ".html")
        pgov("report", ref, "-o", str(out), "-w", str(demo))
        shot = ARTEFACTS / "report-UK-kyc_aml-v0002.png" if ref == "UK/kyc_aml/v0002" else None
        state = load(browser, out, shot)
        assert_drawn(state)
        kyc = vdir.parts[-2] == "kyc_aml"
        assert set(state["sections"]) == set(VERSION_SECTIONS) | ({"kyc"} if kyc else set())
        assert ref in state["text"]
    assert (ARTEFACTS / "report-UK-kyc_aml-v0002.png").stat().st_size > 10_000


def test_report_shows_diff_approval_reidentification_and_proofs(
    browser: Any, demo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "uk.html"
    pgov("report", "UK/kyc_aml/current", "-o", str(out), "-w", str(demo))
    state = load(browser, out)
    assert_drawn(state)
    ids = {c["id"] for c in state["charts"]}
    assert {"chart-migration", "chart-tiers", "chart-reasons", "chart-queues"} <= ids
    text = state["text"]
    assert "compliance-deputy" in text  # the approval
    assert "kyc-ops" in text and "revealed" in text  # the re-identification
    assert "Previous version v0001" in text
    assert "verified" in text and "Lineage verification: passed" in text
    assert "2026-12-01" in text  # as-of


def test_trend_report_renders_and_flags_drift(browser: Any, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "trend.html"
    pgov("report", "--trend", "UK/kyc_aml", "-o", str(out), "-w", str(demo))
    state = load(browser, out)
    assert_drawn(state)
    assert "drift_threshold" in state["text"]


def test_report_pdf_is_printed_by_chromium(browser: Any, demo: Path, tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    out = tmp_path / "uk.pdf"
    pgov("report", "UK/kyc_aml/v0002", "--pdf", "-o", str(out), "-w", str(demo))
    reader = pypdf.PdfReader(str(out))
    text = "".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= 3
    assert "Persona version UK/kyc_aml/v0002" in text
    assert "Reason codes by frequency" in text  # chart titles are drawn text in the PDF


def test_unverifiable_version_is_refused_with_exit_4_and_audited(
    demo: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(demo, ws)
    personas = ws / "versions" / "BR" / "kyc_aml" / "v0001" / "personas.json"
    doc = json.loads(personas.read_bytes())
    doc["personas"][0]["size"] += 1  # a quiet edit after signing
    personas.write_text(json.dumps(doc))
    out = tmp_path / "r.html"
    pgov("report", "BR/kyc_aml/v0001", "-o", str(out), "-w", str(ws), code=4)
    assert not out.exists()
    log = pgov("audit", "query", "--type", "report_refused", "--json", "-w", str(ws))
    assert "BR/kyc_aml/v0001" in log
