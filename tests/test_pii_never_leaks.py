"""No raw identifier of the input appears in anything a refresh writes or logs.

Runs marketing and KYC refreshes (plus lineage verification, audit queries, KYC queue and
persona views) on the sample, then searches every file the workspace holds outside data/
and keys/ (versions, audit, logs, outbox, quarantine reports and sealed rows, kyc state)
and every captured stdout/stderr for each raw e-mail, phone, national id, name and address
of the input. Parquet files are searched both as bytes and decoded (they compress).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import polars as pl
import polars.selectors as cs
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.pseudonym.lifecycle import init_keys
from engine.report.browser import find_chromium
from engine.workspace import Workspace

IDENTIFIER_COLUMNS = ("email", "phone", "national_id", "full_name", "address")
runner = CliRunner()


def _identifiers(ws: Path) -> list[str]:
    crm = pl.read_parquet(ws / "data" / "crm.parquet", columns=list(IDENTIFIER_COLUMNS))
    values = pl.concat([crm[c].cast(pl.String) for c in IDENTIFIER_COLUMNS]).drop_nulls()
    # Very short values (a dirt-planted "x") would match anything; real identifiers are longer.
    return values.filter(values.str.len_chars() >= 6).unique().sort().to_list()


def _texts(path: Path) -> list[str]:
    raw = path.read_bytes()
    texts = [raw.decode("utf-8", errors="replace")]
    if path.suffix == ".parquet":
        # Numbers are searched as whole values (_numbers): the decimal digits of a random
        # 128-bit token body spell some 9-digit national id by chance in a few per cent of runs.
        df = pl.read_parquet(io.BytesIO(raw)).select(~cs.numeric())
        # Binary columns (the token vault's ciphertexts) have no JSON form: search them as hex,
        # and as the text their bytes would spell, so plaintext stored in a binary column is
        # found even where the file's compression hid its bytes.
        texts.append(df.with_columns(pl.col(pl.Binary).bin.encode("hex")).write_ndjson())
        for col in df.select(pl.col(pl.Binary)).get_columns():
            texts.append(b"\n".join(col.drop_nulls().to_list()).decode("utf-8", "replace"))
    if path.suffix == ".pdf":
        # PDF text streams are compressed: search the text a reader would see.
        from pypdf import PdfReader

        texts.append("".join(p.extract_text() for p in PdfReader(io.BytesIO(raw)).pages))
    return texts


def _numbers(path: Path) -> set[str]:
    """Every numeric cell of a Parquet file, as text: an identifier stored in a number
    column would be the whole value."""
    if path.suffix != ".parquet":
        return set()
    df = pl.read_parquet(path).select(cs.numeric().cast(pl.String))
    return {v for c in df.get_columns() for v in c.drop_nulls().unique().to_list()}


def _hits(texts: list[str], identifiers: list[str]) -> int:
    series = pl.Series(texts)
    return int(series.str.contains_any(identifiers).sum())


@pytest.fixture(scope="module")
def run(sample_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("pii") / "ws"
    shutil.copytree(sample_workspace, root)
    init_keys(Workspace.open(root))
    outputs: list[str] = []

    def pgov(*args: str) -> None:
        result = runner.invoke(app, list(args))
        outputs.append(result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)

    common = ["-w", str(root), "--as-of", "2026-11-01"]
    for jurisdiction, analyst in (("UK", "analyst-uk"), ("US-CA", "analyst-us")):
        pgov("-v", "refresh", "-j", jurisdiction, "-p", "marketing_segmentation",
             "-a", analyst, *common)  # fmt: skip
        pgov("-v", "refresh", "-j", jurisdiction, "-p", "kyc_aml", "-a", "compliance-lead",
             *common)  # fmt: skip
        pgov("refresh", "-j", jurisdiction, "-p", "kyc_aml", "-a", "compliance-lead", "--json",
             *common)  # fmt: skip
    pgov("refresh", "-j", "UK", "-p", "marketing_segmentation", "-a", "analyst-eu", *common)
    pgov("lineage", "verify", "--all", "-w", str(root))
    pgov("audit", "query", "-w", str(root), "--json")
    pgov("personas", "show", "UK/kyc_aml/v0001", "-w", str(root))
    pgov("kyc", "queue", "edd-review", "-w", str(root), "--json", "--actor", "kyc-ops")
    # Reports land inside the workspace so the file scan below covers them (HTML and PDF).
    reports = root / "reports"
    reports.mkdir()
    pgov("report", "US-CA/kyc_aml/latest", "-o", str(reports / "us-ca-kyc.html"), "-w", str(root))
    pgov("report", "UK/marketing_segmentation/v0001", "-o", str(reports / "uk-mkt.html"),
         "-w", str(root))  # fmt: skip
    pgov("report", "--trend", "UK/kyc_aml", "-o", str(reports / "uk-trend.html"), "-w", str(root))
    if find_chromium() is not None:
        pgov("report", "UK/kyc_aml/latest", "--pdf", "-o", str(reports / "uk-kyc.pdf"),
             "-w", str(root))  # fmt: skip
    return root, "\n".join(outputs)


def test_the_search_finds_identifiers_where_they_are(run: tuple[Path, str]) -> None:
    """The detector itself works: the raw source does contain the identifiers."""
    root, _ = run
    identifiers = _identifiers(root)
    assert len(identifiers) > 1000
    assert _hits(_texts(root / "data" / "crm.parquet"), identifiers) > 0


def test_the_search_finds_an_identifier_in_a_compressed_binary_column(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    """A vault segment's ciphertexts are a binary column: plaintext stored there would be
    found whatever the file's compression (zstd without statistics hides every byte of it as
    written, and the hex form hides it once read)."""
    root, _ = run
    identifiers = _identifiers(root)
    planted = pl.DataFrame({"c": [s.encode() for s in identifiers[:50]]}, schema={"c": pl.Binary})
    path = tmp_path / "seg.parquet"
    planted.write_parquet(path, compression="zstd", statistics=False)
    as_written, as_hex, *as_text = _texts(path)
    assert _hits([as_written, as_hex], identifiers) == 0
    assert _hits(as_text, identifiers) >= 1


def test_the_search_finds_an_identifier_stored_as_a_number(
    run: tuple[Path, str], tmp_path: Path
) -> None:
    """A digit-only identifier (a national id) written into a number column is found as a
    whole value, while the digits of a random token body (x) are not taken for it."""
    root, _ = run
    identifiers = _identifiers(root)
    digits = next(i for i in identifiers if i.isdigit() and not i.startswith("0"))
    path = tmp_path / "numbers.parquet"
    pl.DataFrame(
        {"n": [int(digits)], "x": [int("7" + digits + "3" * 20)]},
        schema={"n": pl.Int64, "x": pl.UInt128},
    ).write_parquet(path)
    assert _numbers(path) & set(identifiers) == {digits}
    assert _hits(_texts(path), identifiers) == 0


def test_no_written_file_contains_a_raw_identifier(run: tuple[Path, str]) -> None:
    root, _ = run
    identifiers = _identifiers(root)
    searched = 0
    leaks: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in ("data", "keys"):
            continue
        searched += 1
        if _hits(_texts(path), identifiers) or _numbers(path) & set(identifiers):
            leaks.append(rel.as_posix())
    assert searched > 20
    assert {p.split("/")[0] for p in [r.relative_to(root).as_posix() for r in root.rglob("*")]} >= {
        "versions",
        "audit",
        "logs",
        "outbox",
        "quarantine",
        "vault",  # the kyc token vault: HMAC tokens and AES-SIV ciphertexts only
    }
    assert leaks == []


def test_reports_are_written_and_searched(run: tuple[Path, str]) -> None:
    """The scan above covers the reports: they exist, and the detector finds an identifier
    planted in a copy of one (so a leak would show)."""
    root, _ = run
    reports = sorted((root / "reports").iterdir())
    assert {p.name for p in reports} >= {"us-ca-kyc.html", "uk-mkt.html", "uk-trend.html"}
    identifiers = _identifiers(root)
    html = (root / "reports" / "us-ca-kyc.html").read_text()
    assert "Persona version US-CA/kyc_aml" in html
    assert _hits([html], identifiers) == 0
    assert _hits([html.replace("</body>", identifiers[0] + "</body>")], identifiers) == 1
    pdf = root / "reports" / "uk-kyc.pdf"
    if find_chromium() is not None:
        assert "Persona version UK/kyc_aml" in _texts(pdf)[-1]


def test_no_log_or_console_output_contains_a_raw_identifier(run: tuple[Path, str]) -> None:
    root, output = run
    assert "source.loaded" in output  # -v sent the structured logs to the captured stream
    assert _hits([output], _identifiers(root)) == 0
