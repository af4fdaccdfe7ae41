"""generate(): write a deterministic multi-source sample, its ground truth and its manifest."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from engine.errors import UsageError
from engine.sample import personas as P
from engine.sample import tables as T
from engine.sample.dirt import REASON, PlantedDirt, plant
from engine.sample.draws import Customers
from engine.store import file_sha256

SOURCES: tuple[str, ...] = (
    "crm",
    "bureau",
    "loans",
    "transactions",
    "app_events",
    "wallets",
    "screening",
    "surveys",
    "privacy_requests",
    "outcomes",
)
KEYS: dict[str, str] = {
    "crm": "customer_id",
    "bureau": "customer_id",
    "loans": "loan_id",
    "transactions": "txn_id",
    "app_events": "event_id",
    "wallets": "wallet_id",
    "screening": "customer_id",
    "surveys": "customer_id",
    "privacy_requests": "request_id",
    "outcomes": "customer_id",
}
GROUND_TRUTH = "ground_truth.parquet"
MANIFEST = "sample_manifest.json"
Format = Literal["parquet", "csv"]


@dataclass(frozen=True)
class SampleSummary:
    customers: int
    seed: int
    format: str
    dirt_rate: float
    as_of: date
    out: Path
    rows: dict[str, int]  # source -> rows written (dirt included)
    files: dict[str, str]  # file name -> sha256 of its bytes
    planted: list[PlantedDirt] = field(default_factory=list)
    seconds: float = 0.0

    def planted_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.planted:
            out[p.kind] = out.get(p.kind, 0) + p.count
        return out

    def to_json(self) -> dict[str, Any]:
        """Counts, row numbers, digests: nothing personal, safe for a manifest or --json."""
        data = asdict(self)
        data["out"] = str(self.out)
        data["as_of"] = self.as_of.isoformat()
        data["planted"] = [
            {**asdict(p), "rows": list(p.rows), "count": p.count} for p in self.planted
        ]
        data["planted_by_kind"] = self.planted_by_kind()
        return data


def _write(df: pl.DataFrame, path: Path, fmt: str, checksums: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        df.write_csv(tmp)
    else:
        # Modest row groups: with rows sorted by jurisdiction, min/max statistics let a
        # jurisdiction-scoped scan skip other jurisdictions' row groups entirely.
        group = int(min(100_000, max(256, df.height // 40)))
        # zstd level 1: a third less CPU than the default level for ~5 % larger files.
        # Page CRCs need pyarrow's writer (Polars' cannot write them), which costs about half
        # again the CPU and a quarter more disk: opt-in (`--page-checksums`).
        extra: dict[str, Any] = (
            {"use_pyarrow": True, "pyarrow_options": {"write_page_checksum": True}}
            if checksums
            else {}
        )
        df.write_parquet(
            tmp,
            compression="zstd",
            compression_level=1,
            statistics=True,
            row_group_size=group,
            **extra,
        )
    os.replace(tmp, path)


def _write_and_hash(df: pl.DataFrame, path: Path, fmt: str, checksums: bool = False) -> str:
    _write(df, path, fmt, checksums)
    return file_sha256(path)


def _write_part(df: pl.DataFrame, path: Path, fmt: str, header: bool) -> None:
    if fmt == "csv":
        df.write_csv(path, include_header=header)
    else:  # a scratch file, re-encoded by _join_parts: fast compression
        df.write_parquet(path, compression="lz4", statistics=False)


def _stream_with_checksums(parts: list[Path], out: Path, group: int) -> None:
    """Concatenate block files into one Parquet file with page CRCs, one row group in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            pf = pq.ParquetFile(part)
            for batch in pf.iter_batches(batch_size=group):
                if writer is None:
                    writer = pq.ParquetWriter(
                        out,
                        batch.schema,
                        compression="zstd",
                        compression_level=1,
                        write_statistics=True,
                        write_page_checksum=True,
                    )
                writer.write_table(pa.Table.from_batches([batch]), row_group_size=group)
        if writer is None:  # no rows at all: still a valid, empty file
            schema = pq.ParquetFile(parts[0]).schema_arrow
            pq.write_table(schema.empty_table(), out, write_page_checksum=True)
    finally:
        if writer is not None:
            writer.close()


def _join_parts(
    parts: list[Path], path: Path, fmt: str, height: int, checksums: bool = False
) -> str:
    """One source file from its block files, streamed so memory stays at one row group."""
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "csv":
        with tmp.open("wb") as out:
            for part in parts:  # the first part carries the header
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 22)
    else:
        group = int(min(100_000, max(256, height // 40)))
        if checksums:
            _stream_with_checksums(parts, tmp, group)
        else:
            pl.scan_parquet(parts).sink_parquet(
                tmp,
                compression="zstd",
                compression_level=1,
                statistics=True,
                row_group_size=group,
            )
    os.replace(tmp, path)
    shutil.rmtree(parts[0].parent, ignore_errors=True)
    return file_sha256(path)


def _dirt_rows(df: pl.DataFrame, before: int) -> dict[int, list[int]]:
    """Plan index -> 1-based row numbers in the written file of the rows dirt was planted in."""
    marks = (
        df.select(pl.col("_dirt"))
        .with_row_index("_r", offset=before + 1)
        .filter(pl.col("_dirt").is_not_null())
        .group_by("_dirt")
        .agg(pl.col("_r").sort())
    )
    return {int(d): [int(r) for r in rs] for d, rs in marks.iter_rows()}


# Sources with many rows per customer are drawn, planted and written per block of customers,
# so memory follows the block, not the sample (10M customers make ~235M transactions, about
# 45 GiB as one frame). One block reproduces the unblocked draws exactly.
BLOCK_CUSTOMERS = 1_000_000
BlockBuilder = Callable[[np.random.Generator, Customers, date, int], pl.DataFrame]
BLOCKED: dict[str, BlockBuilder] = {
    "transactions": lambda rng, c, as_of, first: T.transactions(rng, c, as_of, first_id=first),
    "app_events": lambda rng, c, as_of, first: T.app_events(rng, c, as_of, first_id=first),
}


def generate(
    customers: int,
    seed: int,
    out: Path,
    fmt: Format = "parquet",
    dirt_rate: float = 0.002,
    as_of: date = date(2026, 11, 1),
    progress: Callable[[str], None] | None = None,
    block_customers: int = BLOCK_CUSTOMERS,
    page_checksums: bool = False,
) -> SampleSummary:
    """Write one file per declared source plus ground truth and manifest into `out`;
    ``page_checksums``: Parquet sources carry page CRCs (engine/integrity.py checks them).

    Same arguments -> byte-identical files.
    """
    if customers < 1:
        raise UsageError("sample: --customers must be at least 1")
    if fmt not in ("parquet", "csv"):
        raise UsageError(f"sample: format must be parquet or csv, not '{fmt}'")
    if not 0 <= dirt_rate <= 0.5:
        raise UsageError("sample: --dirt-rate must be between 0 and 0.5")
    if block_customers < 1:
        raise UsageError("sample: the block size must be at least 1 customer")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    note = progress or (lambda _msg: None)
    rng = np.random.default_rng(seed)
    dirt_rng = np.random.default_rng([seed, 1])  # dirt draws never shift the clean data
    ext = "csv" if fmt == "csv" else "parquet"

    crm, cust = T.customers(rng, customers, as_of)
    builders: dict[str, Callable[[], pl.DataFrame]] = {
        "bureau": lambda: T.bureau(rng, cust, as_of),  # before loans: loans price on score
        "loans": lambda: T.loans(rng, cust, as_of),
        "wallets": lambda: T.wallets(rng, cust),
        "screening": lambda: T.screening(rng, cust, as_of),
        "surveys": lambda: T.surveys(rng, cust),
        "privacy_requests": lambda: T.privacy_requests(rng, cust, as_of),
        "outcomes": lambda: T.outcomes(rng, cust, as_of),
    }
    blocks = [
        (lo, min(customers, lo + block_customers)) for lo in range(0, customers, block_customers)
    ]
    rows: dict[str, int] = {}
    files: dict[str, str] = {}
    planted: list[PlantedDirt] = []
    screening_clean: pl.DataFrame | None = None
    orphan_base = customers
    # Encoding a Parquet file is mostly single-threaded: one writer thread encodes source i
    # while the main thread draws source i + 1. Draws stay in order, so bytes do not change.
    writes: list[tuple[str, Future[str]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-write") as writer:
        for name in SOURCES:
            note(f"building {name}")
            path = out / f"{name}.{ext}"
            found: dict[int, list[int]] = {}
            applied: dict[int, tuple[str, str]] = {}
            height = generated = 0
            parts: list[Path] = []
            pending: Future[None] | None = None
            for lo, hi in blocks if name in BLOCKED else [(0, customers)]:
                if name in BLOCKED:
                    df = BLOCKED[name](rng, cust.block(lo, hi), as_of, generated + 1)
                else:
                    df = crm if name == "crm" else builders[name]()
                generated += df.height
                if name == "screening":
                    screening_clean = df
                df, done = plant(df, name, dirt_rng, dirt_rate, fmt, as_of, orphan_base)
                orphan_base += df.height
                if KEYS[name] == "customer_id":  # orphans and duplicates change the key
                    df = df.sort(["jurisdiction", KEYS[name]], maintain_order=True)
                for i, found_rows in _dirt_rows(df, height).items():
                    found.setdefault(i, []).extend(found_rows)
                applied.update({i: (kind, fld) for i, kind, fld in done})
                df = df.drop("_dirt")
                height += df.height
                if len(blocks) == 1 or name not in BLOCKED:
                    note(f"writing {path.name}")
                    writes.append(
                        (path.name, writer.submit(_write_and_hash, df, path, fmt, page_checksums))
                    )
                else:
                    # One block in flight at most: the writer never queues the whole table.
                    if pending is not None:
                        pending.result()
                    part = out / f".{name}.parts" / f"{len(parts):05d}.{ext}"
                    part.parent.mkdir(exist_ok=True)
                    parts.append(part)
                    pending = writer.submit(_write_part, df, part, fmt, not parts[:-1])
                del df
            if parts:
                assert pending is not None
                pending.result()  # a failed block write surfaces here, not as a missing part
                note(f"writing {path.name}")
                writes.append(
                    (
                        path.name,
                        writer.submit(_join_parts, parts, path, fmt, height, page_checksums),
                    )
                )
            for i, (kind, fld) in sorted(applied.items()):
                planted.append(
                    PlantedDirt(kind, name, fld, f"{REASON[kind]}:{fld}", tuple(found.get(i, [])))
                )
            rows[name] = height
        for file_name, written in writes:
            files[file_name] = written.result()

    assert screening_clean is not None
    truth = pl.DataFrame(
        {
            "customer_id": cust.ids,
            "persona": pl.Series(list(P.NAMES)).gather(cust.persona),
            "planted_pep": screening_clean["pep"],
            "planted_sanctions": screening_clean["sanctions_hit"],
        }
    )
    truth.write_parquet(out / GROUND_TRUTH, compression="zstd")
    files[GROUND_TRUTH] = file_sha256(out / GROUND_TRUTH)
    summary = SampleSummary(
        customers=customers,
        seed=seed,
        format=fmt,
        dirt_rate=dirt_rate,
        as_of=as_of,
        out=out,
        rows=rows,
        files=files,
        planted=planted,
        seconds=round(time.perf_counter() - started, 3),
    )
    manifest = summary.to_json()
    manifest.pop("seconds")  # the manifest must be as reproducible as the data
    manifest.pop("out")
    (out / MANIFEST).write_text(
        json.dumps(manifest, sort_keys=True, indent=1) + "\n", encoding="utf-8"
    )
    return summary
