"""Parquet source integrity: a corrupted data page is bad input (exit 5), not a silent read.

Polars decodes Parquet without checking the page CRCs the format provides, so a flipped byte
in a page whose encoding survives it (plain or raw-literal data, definition levels) is read
as a different value with exit 0. Before a Parquet source is scanned:

1. **Page checksums** (when the writer stored them: parquet-mr/Spark by default, pyarrow with
   ``write_page_checksum=True``, `pgov sample --page-checksums`): every page header of every
   column chunk is walked from the footer's offsets and the CRC-32 of the page's bytes
   compared with the one in its header. Cheap: it reads the file once and decodes nothing.
2. **Footer statistics** (``full=True``, `pgov validate --deep`; for column chunks whose
   pages carry no CRC): the chunk is decoded with pyarrow and its null count and min/max are
   checked against the row group's statistics in the footer. This catches a flipped value
   byte that moves a value outside the recorded range or changes a null, and any page that no
   longer decodes. It cannot catch a flipped value that stays inside the range in a file
   without CRCs. It decodes the whole file (about 2.5 times Polars' own read), so a refresh
   does not run it; `pgov validate --deep` does (docs/bring-your-own-data.md).

Structural damage (page sizes that overrun their chunk, an unreadable footer) is caught in
both cases. The result is cached per file identity (device, inode, size, mtime and ctime in
ns), so the refreshes of one process check a file once; any rewrite changes the ctime.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog

from engine.errors import BadInputError

log = structlog.get_logger(__name__)

# Thrift compact protocol type ids (the encoding of Parquet page headers).
_STOP, _TRUE, _FALSE, _I8, _I16, _I32, _I64, _DOUBLE, _BINARY = 0, 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12


@dataclass(frozen=True)
class IntegrityReport:
    pages: int
    pages_with_crc: int
    chunks_stats_checked: int


class _Corrupt(Exception):
    pass


_RUNS = "page header runs past its column chunk"


def _varint(buf: Any, p: int, end: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        if p >= end:
            raise _Corrupt(_RUNS)
        b = buf[p]
        p += 1
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out, p
        shift += 7
        if shift > 70:
            raise _Corrupt("page header holds an overlong integer")


def _skip(buf: Any, p: int, end: int, ttype: int, depth: int) -> int:
    """Position after one value of thrift type `ttype` at `p`."""
    if depth > 32:
        raise _Corrupt("page header nests too deep")
    if ttype in (_TRUE, _FALSE):
        return p
    if ttype == _I8:
        if p >= end:
            raise _Corrupt(_RUNS)
        p += 1
    elif ttype in (_I16, _I32, _I64):
        p = _varint(buf, p, end)[1]
    elif ttype == _DOUBLE:
        p += 8
    elif ttype == _BINARY:
        n, p = _varint(buf, p, end)
        p += n
    elif ttype in (_LIST, _SET):
        if p >= end:
            raise _Corrupt(_RUNS)
        head = buf[p]
        p += 1
        size = head >> 4
        if size == 15:
            size, p = _varint(buf, p, end)
        for _ in range(size):
            p = _skip(buf, p, end, head & 0x0F, depth + 1)
    elif ttype == _MAP:
        size, p = _varint(buf, p, end)
        if size:
            if p >= end:
                raise _Corrupt(_RUNS)
            kv = buf[p]
            p += 1
            for _ in range(size):
                p = _skip(buf, p, end, kv >> 4, depth + 1)
                p = _skip(buf, p, end, kv & 0x0F, depth + 1)
    elif ttype == _STRUCT:
        while True:
            if p >= end:
                raise _Corrupt(_RUNS)
            head = buf[p]
            p += 1
            t = head & 0x0F
            if t == _STOP:
                break
            if not head >> 4:  # a long-form field id (zigzag varint)
                p = _varint(buf, p, end)[1]
            p = _skip(buf, p, end, t, depth + 1)
    else:
        raise _Corrupt(f"page header holds unknown thrift type {ttype}")
    if p > end:
        raise _Corrupt(_RUNS)
    return p


def _page_header(buf: Any, pos: int, end: int) -> tuple[int, int, int | None]:
    """(header length, compressed page size, crc or None) of the page header at ``pos``.

    Just enough of the thrift compact protocol to read a PageHeader and skip the rest,
    walked with plain functions over a local position (a reader object with a method call
    per byte took a third longer)."""
    p = pos
    last = 0
    got: dict[int, int] = {}
    while True:
        if p >= end:
            raise _Corrupt(_RUNS)
        head = buf[p]
        p += 1
        ttype = head & 0x0F
        if ttype == _STOP:
            break
        delta = head >> 4
        if delta:
            fid = last + delta
        else:
            n, p = _varint(buf, p, end)
            fid = (n >> 1) ^ -(n & 1)
        last = fid
        if fid in (2, 3, 4) and ttype == _I32:
            n, p = _varint(buf, p, end)
            got[fid] = (n >> 1) ^ -(n & 1)
        else:
            p = _skip(buf, p, end, ttype, 0)
    size = got.get(3)
    if size is None or size < 0 or 2 not in got:
        raise _Corrupt("page header lacks its page sizes")
    return p - pos, size, got.get(4)


def _chunk_pages(buf: Any, start: int, length: int) -> tuple[int, int]:
    """Walk one column chunk's pages; (pages, pages with a CRC). Raises _Corrupt."""
    pos, end = start, start + length
    pages = with_crc = 0
    while pos < end:
        hlen, size, crc = _page_header(buf, pos, end)
        body = pos + hlen
        if body + size > end:
            raise _Corrupt(f"page at byte {pos} overruns its column chunk")
        if crc is not None:
            with_crc += 1
            if zlib.crc32(buf[body : body + size]) != crc & 0xFFFFFFFF:
                raise _Corrupt(f"page at byte {pos} fails its CRC-32 (its bytes changed)")
        pages += 1
        pos = body + size
    return pages, with_crc


def _where(path: Path, rg: int, column: str) -> str:
    return f"{path}: row group {rg}, column '{column}'"


def _check_stats(path: Path, pf: Any, rg: int, columns: list[tuple[int, str]]) -> None:
    """Decode the named chunks and hold them to the footer's statistics."""
    import pyarrow as pa
    import pyarrow.compute as pc

    meta = pf.metadata.row_group(rg)
    try:
        table = pf.read_row_group(rg, columns=[name for _, name in columns])
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(
            f"{path}: row group {rg} does not decode ({str(exc).splitlines()[0][:160]}): "
            "the file is corrupted"
        ) from None
    for i, name in columns:
        stats = meta.column(i).statistics
        if stats is None:
            continue
        col = table.column(name)
        if stats.has_null_count and col.null_count != stats.null_count:
            raise BadInputError(
                f"{_where(path, rg, name)}: {col.null_count} nulls decoded but the footer "
                f"records {stats.null_count}: the data page is corrupted"
            )
        if not stats.has_min_max or col.null_count == len(col):
            continue
        try:
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            outside = lo < stats.min or hi > stats.max
        except (TypeError, pa.ArrowException):
            continue  # a type whose statistics we cannot compare (e.g. nested)
        if outside:
            raise BadInputError(
                f"{_where(path, rg, name)}: a decoded value lies outside the footer's "
                "min/max statistics: the data page is corrupted"
            )


@lru_cache(maxsize=256)
def _check_cached(
    path: str, dev: int, ino: int, size: int, mtime_ns: int, ctime_ns: int, full: bool
) -> IntegrityReport:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowException, OSError):
        # No footer to check pages against: the scan refuses the file in its own words
        # (naming the source), as it always has.
        return IntegrityReport(pages=0, pages_with_crc=0, chunks_stats_checked=0)
    with open(p, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            pages, with_crc, checked = _walk(p, pf, buf, size, full)
        finally:
            buf.release()
    return IntegrityReport(pages=pages, pages_with_crc=with_crc, chunks_stats_checked=checked)


def _walk(p: Path, pf: Any, buf: memoryview, size: int, full: bool) -> tuple[int, int, int]:
    md = pf.metadata
    pages = with_crc = checked = 0
    for rg in range(md.num_row_groups):
        rmeta = md.row_group(rg)
        no_crc: list[tuple[int, str]] = []
        for i in range(rmeta.num_columns):
            c = rmeta.column(i)
            start = c.dictionary_page_offset or c.data_page_offset
            if c.dictionary_page_offset is not None and c.data_page_offset < start:
                start = c.data_page_offset
            length = c.total_compressed_size
            if start < 4 or start + length > size:
                raise BadInputError(
                    f"{_where(p, rg, c.path_in_schema)}: column chunk lies outside the file"
                )
            try:
                n, k = _chunk_pages(buf, start, length)
            except _Corrupt as exc:
                raise BadInputError(f"{_where(p, rg, c.path_in_schema)}: {exc}") from None
            pages += n
            with_crc += k
            if k < n:
                no_crc.append((i, c.path_in_schema))
        if no_crc and full:
            _check_stats(p, pf, rg, no_crc)
            checked += len(no_crc)
    return pages, with_crc, checked


def check_parquet(path: Path, full: bool = False) -> IntegrityReport:
    """Refuse (exit 5, naming file, row group and column) a Parquet file whose pages fail
    their CRC or overrun their chunk; with ``full``, also chunks without CRCs that do not
    decode or contradict the footer's statistics."""
    try:
        st = path.stat()
    except OSError:
        # Not a file we can stat (missing, a glob): the scan reports it in its own words.
        return IntegrityReport(pages=0, pages_with_crc=0, chunks_stats_checked=0)
    if not path.is_file():
        return IntegrityReport(pages=0, pages_with_crc=0, chunks_stats_checked=0)
    report = _check_cached(
        str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, full
    )
    log.debug("parquet_integrity", pages=report.pages, pages_with_crc=report.pages_with_crc)
    return report
