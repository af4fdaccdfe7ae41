"""A corrupted Parquet data page is bad input (exit 5, naming the file), not a silent read.

The corruption is real: one byte flipped inside a data page of a generated file, located from
the footer's offsets and the page header, exactly what a bad disk or transfer does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.errors import BadInputError
from engine.integrity import _page_header, check_parquet

runner = CliRunner()
N = 3000


def _write(path: Path, checksums: bool) -> None:
    table = pa.table(
        {
            "id": pa.array(range(N), pa.int64()),
            "amount": pa.array([i % 500 for i in range(N)], pa.int64()),
            "note": pa.array([f"n{i % 7}" if i % 5 else None for i in range(N)]),
        }
    )
    pq.write_table(
        table,
        path,
        compression="none",
        use_dictionary=False,
        row_group_size=1000,
        write_page_checksum=checksums,
    )


def _last_value_offset(path: Path, column: str, rg: int = 1) -> int:
    """Byte offset of the last 8-byte value in the first data page of a column chunk."""
    md = pq.read_metadata(path)
    row_group = md.row_group(rg)
    chunk = next(
        row_group.column(i)
        for i in range(row_group.num_columns)
        if row_group.column(i).path_in_schema == column
    )
    data = path.read_bytes()
    start = chunk.data_page_offset
    hlen, size, _ = _page_header(data, start, start + chunk.total_compressed_size)
    return start + hlen + size - 8  # PLAIN int64, little endian: the last value's low byte


def _flip(path: Path, offset: int, mask: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_polars_reads_a_flipped_value_silently_which_is_why_we_check(tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _write(f, checksums=True)
    before = pl.read_parquet(f)
    _flip(f, _last_value_offset(f, "amount") + 7, 0x40)  # high byte of the last value
    after = pl.read_parquet(f)  # no error from Polars
    assert not after.equals(before)


def test_a_flipped_byte_in_a_page_with_a_crc_is_refused_naming_file_row_group_and_column(
    tmp_path: Path,
) -> None:
    f = tmp_path / "t.parquet"
    _write(f, checksums=True)
    report = check_parquet(f)
    assert report.pages == report.pages_with_crc > 0
    _flip(f, _last_value_offset(f, "amount"), 0x01)  # 999 -> 998: inside the statistics
    with pytest.raises(BadInputError) as err:
        check_parquet(f)
    msg = err.value.message
    assert str(f) in msg and "row group 1" in msg and "'amount'" in msg and "CRC-32" in msg
    assert err.value.exit_code == 5 and "\n" not in msg


def test_without_crcs_the_statistics_catch_a_value_pushed_out_of_range_but_not_one_inside(
    tmp_path: Path,
) -> None:
    f = tmp_path / "t.parquet"
    _write(f, checksums=False)
    assert check_parquet(f, full=True).pages_with_crc == 0
    inside = tmp_path / "inside.parquet"
    shutil.copy(f, inside)
    _flip(inside, _last_value_offset(inside, "amount"), 0x01)
    # The documented limit: no CRC, the flipped value stays within min/max: not detectable.
    check_parquet(inside, full=True)
    _flip(f, _last_value_offset(f, "amount") + 7, 0x40)
    check_parquet(f)  # a refresh's check reads no values: only structure and CRCs
    with pytest.raises(BadInputError, match=r"row group 1, column 'amount'.*min/max"):
        check_parquet(f, full=True)


def test_a_page_header_that_overruns_its_chunk_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    _write(f, checksums=False)
    md = pq.read_metadata(f)
    start = md.row_group(0).column(0).data_page_offset
    data = f.read_bytes()
    # Header: 0x15 type, 0x15 uncompressed size (varint), 0x15 compressed size (varint).
    pos = start + 3
    while data[pos] & 0x80:
        pos += 1
    assert data[pos + 1] == 0x15
    _flip(f, pos + 2, 0x40)  # the chunk's only page now claims 32 bytes more than it has
    with pytest.raises(BadInputError, match=r"row group 0, column 'id'"):
        check_parquet(f)


def test_a_null_flipped_in_the_definition_levels_is_caught_by_the_null_count(
    tmp_path: Path,
) -> None:
    f = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"x": pa.array([None if i % 3 == 0 else i for i in range(600)], pa.int64())}),
        f,
        compression="none",
        use_dictionary=False,
        write_page_checksum=False,
    )
    md = pq.read_metadata(f)
    chunk = md.row_group(0).column(0)
    data = f.read_bytes()
    start = chunk.data_page_offset
    hlen, _, _ = _page_header(data, start, start + chunk.total_compressed_size)
    # v1 data page: 4-byte length of the RLE/bit-packed definition levels, then the levels.
    _flip(f, start + hlen + 4 + 2, 0x01)
    with pytest.raises(BadInputError, match="nulls decoded but the footer records"):
        check_parquet(f, full=True)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity") / "ws"
    assert (
        runner.invoke(app, ["init", str(root), "--sample", "400", "--page-checksums"]).exit_code
        == 0
    )
    assert runner.invoke(app, ["keys", "init", "-w", str(root)]).exit_code == 0
    return root


def test_the_sample_writes_page_checksums_in_every_source_when_asked(ws: Path) -> None:
    from engine.workspace import Workspace

    w = Workspace.open(ws)
    files = [w.path(s.path) for s in w.config.sources.values() if s.format == "parquet"]
    assert len(files) >= 5
    for f in files:
        r = check_parquet(f)
        assert r.pages == r.pages_with_crc > 0, f.name


def test_refresh_of_a_source_with_a_corrupted_page_exits_5_naming_the_file(
    ws: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    f = copy / "data" / "crm.parquet"
    md = pq.read_metadata(f)
    chunk = md.row_group(0).column(0)
    data = f.read_bytes()
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    hlen, size, _ = _page_header(data, start, start + chunk.total_compressed_size)
    _flip(f, start + hlen + size // 2, 0x10)
    res = runner.invoke(
        app,
        ["refresh", "-j", "EU-DE", "-p", "kyc_aml", "-a", "compliance-lead",
         "--as-of", "2026-11-01", "-w", str(copy)],
    )  # fmt: skip
    assert res.exit_code == 5, res.output
    assert "crm.parquet" in res.output and "CRC-32" in res.output
    assert not list((copy / "versions").glob("EU-DE/*/v0*"))  # nothing published
    log = runner.invoke(app, ["audit", "query", "--type", "refresh_failed", "-w", str(copy)])
    assert "crm.parquet" in log.output or "BadInputError" in log.output, log.output


def test_validate_deep_checks_statistics_of_files_without_crcs(ws: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    f = copy / "data" / "screening.parquet"
    pl.read_parquet(f).write_parquet(f, compression="uncompressed", statistics=True)
    base = ["validate", "-j", "EU-DE", "--as-of", "2026-11-01", "-w", str(copy)]
    # (a 400-customer sample quarantines above its declared shares: exit 5 for that reason)
    res = runner.invoke(app, [*base, "--deep", "--json"])
    info = json.loads(res.stdout[: res.stdout.rindex("}") + 1])["integrity"]
    assert info["screening"]["pages_with_crc"] == 0 and info["screening"]["stats_checked"] > 0
    assert info["crm"]["pages_with_crc"] == info["crm"]["pages"] > 0
    assert "CRC-32" not in res.output
    shallow = runner.invoke(app, base)
    assert "run with --deep" in shallow.output
    crm = copy / "data" / "crm.parquet"
    chunk = pq.read_metadata(crm).row_group(0).column(0)
    _flip(crm, (chunk.dictionary_page_offset or chunk.data_page_offset) + 40, 0x08)
    bad = runner.invoke(app, base)
    assert bad.exit_code == 5 and "crm.parquet: row group 0" in bad.output, bad.output


def test_the_default_sample_has_no_page_checksums_and_still_passes_the_check(
    tmp_path: Path,
) -> None:
    root = tmp_path / "plain"
    assert runner.invoke(app, ["init", str(root), "--sample", "200"]).exit_code == 0
    r = check_parquet(root / "data" / "crm.parquet")
    assert r.pages > 0 and r.pages_with_crc == 0
