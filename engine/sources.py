"""Sources: lazy scans of each declared source, scoped to one jurisdiction, checked against
their data contracts. Valid rows go on; bad rows go to quarantine with reason codes.

Contract (owned here, consumed by enforce):
    load_sources(ws, jurisdiction, as_of, keep=None) -> SourceFrames

How a source is read (one streaming pass per source):
  * one lazy scan per file (parquet / csv / ndjson) with `_row` (1-based data row number in
    the file; a CSV header is not counted) and the jurisdiction predicate pushed into the
    scan, so Parquet row groups of other jurisdictions are skipped by their statistics;
  * the file's columns must be exactly the declared ones: a missing column or an undeclared
    extra column is a BadInputError (undeclared data must not flow);
  * every contract check is a Polars expression (engine/contracts.py) evaluated in that one
    lazy query; a row failing any check is quarantined with every reason it failed
    ("type:credit_score", "orphan:customer_id", ...); input_rows == valid_rows +
    quarantined_rows, always;
  * `keep` (engine/enforce_subjects.py `needed_columns`) names the columns later stages
    use: the valid rows carry only those. Every declared column is still read and checked,
    so a row's fate and the quarantine accounting never depend on the purpose, and
    quarantined rows keep every column as read, for repair.

Key uniqueness: every row of a duplicated key is quarantined (`duplicate_key:<key>`): two
rows claiming the same customer or loan are ambiguous, and picking one would be a guess.
A duplicate is a property of the whole source, not of a row, so the key columns alone are
read first (engine/source_keys.py); the pass then marks those rows like any other check.
Those pre-pass answers (duplicate and orphan row numbers) are reused from a sealed cache
for files a refresh has read before (engine/source_prepass.py, engine/prepass_cache.py).
Uniqueness is checked within the jurisdiction being loaded (other jurisdictions' rows are
never read). References (`references = "crm.customer_id"`) are checked against the *valid*
rows of the referenced source: a child row of a quarantined customer is an orphan too.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from functools import partial
from pathlib import Path

import polars as pl
import structlog

from engine.config import ColumnType
from engine.contracts import DTYPES, FORMATS, check_exprs, typed_expr
from engine.digest_cache import DigestCache
from engine.errors import BadInputError, UsageError
from engine.integrity import check_parquet
from engine.prepass_cache import PrepassCache
from engine.source_files import (
    ROW,
    FileDigests,
    StatKey,
    check_columns,
    check_unchanged,
    file_digest,
    read_schema,
    read_state,
    scan,
    scoped_scan,
    source_file,
)
from engine.source_frames import SourceAccounting, SourceFrame, SourceFrames
from engine.source_keys import KeyOrder, key_order
from engine.source_order import file_size, load_order, waves
from engine.source_prepass import Hit, Prepasses, PrepassRows, compute, from_entry, joined
from engine.source_refs import marked
from engine.workspace import Workspace

log = structlog.get_logger("pgov.sources")

REASONS = "_reasons"
# Sources of one wave read at once (threads: Polars releases the GIL while it reads).
READERS = 2

__all__ = [
    "DTYPES",
    "FORMATS",
    "REASONS",
    "ROW",
    "SourceAccounting",
    "SourceFrame",
    "SourceFrames",
    "file_digest",
    "load_sources",
    "scan",
    "scoped_scan",
    "source_file",
]


def _load_one(
    ws: Workspace,
    name: str,
    jurisdiction: str,
    as_of: date,
    valid_refs: dict[str, pl.Series],
    walks: ThreadPoolExecutor,
    keep: Collection[str] | None,
    key_order: Future[KeyOrder | None] | None = None,
    hit: Hit | None = None,
) -> tuple[SourceFrame, StatKey, PrepassRows | None]:
    """The source's rows, the file state they were read from (its digest is bound to that
    state once taken: `load_sources`) and its pre-pass answer if computed. `key_order`:
    `source_keys.key_order`'s answer, asked before the source's references were loaded;
    `hit`: the pre-pass cache's answer; each used only if taken from the same state."""
    spec = ws.source(name)
    path = source_file(ws, name)
    if not path.is_file():
        raise BadInputError(f"{spec.path}: source '{name}' file not found")
    # A background thread walks a Parquet file's pages (integrity.py) while Polars reads
    # it. A corrupted page still refuses the source, and its error wins over whatever the
    # read made of that page.
    intact = walks.submit(check_parquet, path) if spec.format == "parquet" else None
    read_from = read_state(path)
    early = key_order.result() if key_order is not None else None
    increasing = early.increasing if early is not None and early.state == read_from else None
    hit = hit if hit is not None and hit.state == read_from else None
    try:
        loaded, rows = _read_one(
            ws, name, path, jurisdiction, as_of, valid_refs, keep, increasing, hit
        )
    except BaseException:
        if intact is not None and isinstance(err := intact.exception(), BadInputError):
            raise err from None
        raise
    if intact is not None:
        intact.result()
    check_unchanged(path, read_from)  # written while Polars read it: refused
    return loaded, read_from, rows


def _read_one(
    ws: Workspace,
    name: str,
    path: Path,
    jurisdiction: str,
    as_of: date,
    valid_refs: dict[str, pl.Series],
    keep: Collection[str] | None,
    increasing: bool | None = None,
    hit: Hit | None = None,
) -> tuple[SourceFrame, PrepassRows | None]:
    """The source's rows, and its pre-pass answer when it was computed (None: `hit`)."""
    spec = ws.source(name)
    rel = spec.path
    lf = scan(path, spec.format, check=False)
    schema = read_schema(lf, rel, name, spec.format)
    check_columns(schema, spec, rel, name)
    lf = lf.filter(pl.col(spec.jurisdiction_column) == jurisdiction)

    typed: dict[str, pl.Expr] = {}
    for col, cspec in spec.columns.items():
        expr = typed_expr(col, schema[col], cspec, rel, name)
        if schema[col] == DTYPES[cspec.type] and cspec.type != ColumnType.FLOAT:
            typed[col] = pl.col(col)
        else:  # cast once, into a column the checks and the output share
            typed[col] = pl.col(f"__typed__{col}")
            lf = lf.with_columns(expr.alias(f"__typed__{col}"))

    def unreadable(exc: Exception) -> BadInputError:
        # A Polars message may quote a value: only its type is shown.
        return BadInputError(
            f"{rel}: source '{name}' could not be read as {spec.format} "
            f"({type(exc).__name__}); check the delimiter (','), the encoding (UTF-8) and "
            "that every row has the declared columns"
        )

    # Pre-pass: duplicate keys and orphans, from the sealed cache for bytes it has seen
    # (`hit`) or one collect over one scan (engine/source_prepass.py).
    rows = None if hit is None else from_entry(hit.entry, joined(spec, valid_refs), schema[ROW])
    computed = None
    if rows is None:
        try:
            rows = computed = compute(lf, spec, typed, valid_refs, increasing)
        except pl.exceptions.PolarsError as exc:
            raise unreadable(exc) from None
    orphans, duplicated = rows.orphans, rows.duplicated

    checks: list[tuple[str, pl.Expr]] = []
    for col, cspec in spec.columns.items():
        checks += check_exprs(col, pl.col(col), typed[col], cspec, as_of, rel, name)
        if col in orphans:
            checks.append((f"orphan:{col}", marked(orphans[col], ROW)))
        elif cspec.references:
            ref = valid_refs[cspec.references]
            orphan = typed[col].is_not_null() & ~typed[col].is_in(ref.implode())
            checks.append((f"orphan:{col}", orphan))
    checks.append((f"duplicate_key:{'+'.join(spec.key)}", marked(duplicated, ROW)))
    for k in spec.key:  # a key is always required, declared so or not
        if not spec.columns[k].required:
            checks.append((f"required:{k}", typed[k].is_null()))
    # One boolean column per check: cheap for millions of valid rows; the list of reason
    # codes is built only for the few rows that failed.
    flags = [f"__check{i}" for i in range(len(checks))]
    lf = lf.with_columns(
        [failed.fill_null(False).alias(f) for f, (_, failed) in zip(flags, checks, strict=True)]
    ).with_columns(pl.any_horizontal(flags).alias("__bad"))
    carried = [c for c in spec.columns if keep is None or c in keep]
    # One pass, two outputs: the valid rows' carried columns (typed) and the failed rows'
    # every column as read with their check marks. `collect_all` runs both queries in one
    # streaming graph over one scan (the shared part is computed once), so the valid rows
    # are built directly, never as a filtered copy of a frame holding every row (that copy
    # doubled the stage's peak memory at scale).
    bad = pl.col("__bad")
    valid_lf = lf.filter(~bad).select(ROW, *[typed[c].alias(c) for c in carried])
    failed_lf = lf.filter(bad).select(ROW, *spec.columns, *flags)
    try:
        valid, failed = pl.collect_all([valid_lf, failed_lf])
    except pl.exceptions.PolarsError as exc:
        raise unreadable(exc) from None
    if not valid[ROW].is_sorted():  # a streaming collect need not keep row order
        valid = valid.sort(ROW)
    codes = [code for code, _ in checks]
    reason_list = pl.concat_list(
        [pl.when(pl.col(f)).then(pl.lit(code)) for f, code in zip(flags, codes, strict=True)]
    ).list.drop_nulls()
    quarantine = failed.select(ROW, *spec.columns, reason_list.alias(REASONS)).sort(ROW)
    sums = failed.select([pl.col(f).sum().alias(f) for f in flags]).row(0)
    tally: dict[str, int] = {}
    for code, n in zip(codes, sums, strict=True):
        if n:
            tally[code] = tally.get(code, 0) + int(n)
    accounting = SourceAccounting(
        source=name,
        input_rows=valid.height + quarantine.height,
        valid_rows=valid.height,
        quarantined_rows=quarantine.height,
        quarantine_reasons=dict(sorted(tally.items())),
    )
    log.info(
        "source.loaded",
        source=name,
        jurisdiction=jurisdiction,
        input_rows=accounting.input_rows,
        valid_rows=accounting.valid_rows,
        quarantined_rows=accounting.quarantined_rows,
        carried_columns=len(carried),
        prepass="run" if computed is not None else "cached",
    )
    frame = SourceFrame(
        name=name,
        spec=spec,
        frame=valid,
        quarantine=quarantine,
        input_digest="",  # _load_one: from the background thread
        path=rel,
        accounting=accounting,
        uncarried=frozenset(spec.columns) - set(carried),
    )
    return frame, computed


def load_sources(
    ws: Workspace,
    jurisdiction: str,
    as_of: date,
    keep: Mapping[str, Collection[str]] | None = None,
    digest_cache: DigestCache | None = None,
    prepass_cache: PrepassCache | None = None,
) -> SourceFrames:
    """Every declared source, this jurisdiction only, split into valid and quarantined rows.

    `keep` maps a source to the columns its valid rows carry (all declared columns for a
    source it does not name); every column is read and checked either way. `digest_cache`
    (a refresh passes the workspace's) lets an unchanged file's digest be reused, and
    `prepass_cache` the pre-pass answer for unchanged files (engine/source_prepass.py).
    """
    if jurisdiction not in ws.config.jurisdictions:
        raise UsageError(
            f"{ws.config_path}: jurisdiction '{jurisdiction}' is not declared "
            f"(declared: {', '.join(ws.config.jurisdictions)})"
        )
    frames: dict[str, SourceFrame] = {}
    valid_refs: dict[str, pl.Series] = {}
    needed = {
        c.references for s in ws.config.sources.values() for c in s.columns.values() if c.references
    }
    order = load_order(ws)
    read_from: dict[str, StatKey] = {}

    def carried(name: str) -> set[str] | None:
        carry = None if keep is None or name not in keep else set(keep[name])
        if carry is not None:  # what other sources' references are checked against
            carry |= {r.partition(".")[2] for r in needed if r.partition(".")[0] == name}
        return carry

    # Every file's digest is queued at once on its own thread (FileDigests), so hashing runs
    # beside the whole stage's reads instead of holding each source until its own file is
    # hashed; the digests are bound to the states the rows were read from at the end.
    files = [(name, partial(source_file, ws, name)) for name in order]
    with (
        FileDigests(files, digest_cache) as digests,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgov-pages") as walks,
        ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="pgov-source") as readers,
    ):
        early: dict[str, Future[KeyOrder | None]] = {}
        prepasses = Prepasses(ws, jurisdiction, as_of, prepass_cache, digest_cache)
        cut = waves(ws, order)
        for i, wave in enumerate(cut):
            # A wave's sources reference only loaded sources: they are read side by side, the
            # largest file first so the small ones fill the other core instead of queueing
            # behind it (their fixed costs are mostly the calling thread's, not the scan's).
            # Results are taken in load order, so the first failure in that order is the
            # error, as when they were read one by one.
            refs = dict(valid_refs)
            started = {
                name: readers.submit(
                    _load_one,
                    ws,
                    name,
                    jurisdiction,
                    as_of,
                    refs,
                    walks,
                    carried(name),
                    early.get(name),
                    prepasses.hit(name, read_from),
                )
                for name in sorted(wave, key=partial(file_size, ws), reverse=True)
            }
            if i == 0:  # later waves' key orders, queued behind the first wave's reads
                early = {
                    name: readers.submit(key_order, ws, name, jurisdiction)
                    for later in cut[1:]
                    for name in sorted(later, key=partial(file_size, ws), reverse=True)
                    if not prepasses.cached(name)
                }
            try:
                for name in wave:
                    frames[name], read_from[name], rows = started[name].result()
                    prepasses.computed(name, rows)
            except BaseException:
                for future in started.values():
                    future.cancel()
                for asked in early.values():
                    asked.cancel()
                raise
            for ref in needed:
                src, _, col = ref.partition(".")
                if src in wave:
                    valid_refs[ref] = frames[src].frame[col]
        frames = {name: frames[name] for name in order}
        bound: dict[str, str] = {}
        for name in order:
            # The rows read and the digest recorded must describe the same bytes.
            taken = digests.bound(name, source_file(ws, name), read_from[name])
            frames[name] = replace(frames[name], input_digest=taken.sha256)
            bound[name] = taken.sha256
        prepasses.store(bound)
    return SourceFrames(
        jurisdiction=jurisdiction, as_of=as_of, frames=frames, subjects=ws.config.subjects
    )


def unscoped_rows(ws: Workspace) -> dict[str, int]:
    """Rows per source whose jurisdiction is null or undeclared: no scoped scan reads them.

    Reads only the jurisdiction column; a data-engineer check, not part of a refresh.
    """
    declared = pl.Series(ws.config.jurisdictions, dtype=pl.String).implode()
    out: dict[str, int] = {}
    for name, spec in ws.config.sources.items():
        path = source_file(ws, name)
        if not path.is_file():
            raise BadInputError(f"{spec.path}: source '{name}' file not found")
        jcol = pl.col(spec.jurisdiction_column)
        lf = scan(path, spec.format).select(jcol.cast(pl.String))
        try:
            n = lf.filter(jcol.is_null() | ~jcol.is_in(declared)).select(pl.len()).collect().item()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise BadInputError(
                f"{spec.path}: source '{name}' is not readable as {spec.format} "
                f"({type(exc).__name__})"
            ) from None
        out[name] = int(n)
    return out
