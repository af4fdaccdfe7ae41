"""Sources: lazy scans of each declared source, scoped to one jurisdiction, checked against
their data contracts. Valid rows go on; bad rows go to quarantine with reason codes.

Contract (owned here, consumed by enforce):
    load_sources(ws, jurisdiction, as_of) -> SourceFrames

How a source is read:
  * one lazy scan per file (parquet / csv / ndjson) with `_row` (1-based data row number in
    the file; a CSV header is not counted) and the jurisdiction predicate pushed into the
    scan, so Parquet row groups of other jurisdictions are skipped by their statistics;
  * the file's columns must be exactly the declared ones: a missing column or an undeclared
    extra column is a BadInputError (undeclared data must not flow);
  * every contract check is a Polars expression; a row failing any check is quarantined with
    every reason it failed ("type:credit_score", "orphan:customer_id", ...); one collect per
    source; input_rows == valid_rows + quarantined_rows, always.

Key uniqueness: every row of a duplicated key is quarantined (`duplicate_key:<key>`): two
rows claiming the same customer or loan are ambiguous, and picking one would be a guess.
Uniqueness is checked within the jurisdiction being loaded (other jurisdictions' rows are
never read). References (`references = "crm.customer_id"`) are checked against the *valid*
rows of the referenced source: a child row of a quarantined customer is an orphan too.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import phonenumbers
import polars as pl
import structlog

from engine.config import ColumnSpec, ColumnType, SourceSpec
from engine.errors import BadInputError, ConfigError, UsageError
from engine.integrity import check_parquet
from engine.workspace import Workspace

log = structlog.get_logger("pgov.sources")

ROW = "_row"
KEY_HASH = "__key_hash"
REASONS = "_reasons"

DTYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STR: pl.String(),
    ColumnType.INT: pl.Int64(),
    ColumnType.FLOAT: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.DATE: pl.Date(),
    ColumnType.DATETIME: pl.Datetime("us"),
}

_EMAIL = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# E.164 with optional separators, or a national number with a trunk 0.
_PHONE = r"^(?:\+[1-9][0-9]{6,14}|0[0-9]{6,13})$"
_COUNTRIES: tuple[str, ...] = tuple(sorted(phonenumbers.SUPPORTED_REGIONS))
_BOOLS = {"true": True, "false": False, "1": True, "0": False}
FORMATS = ("email", "phone", "country", "iso_date")


@dataclass(frozen=True)
class SourceAccounting:
    source: str
    input_rows: int  # rows of this jurisdiction read from the file
    valid_rows: int
    quarantined_rows: int
    # reason code -> rows; a row failing several checks counts under each reason,
    # and once in quarantined_rows.
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def balanced(self) -> bool:
        return self.input_rows == self.valid_rows + self.quarantined_rows


@dataclass(frozen=True)
class SourceFrame:
    name: str
    spec: SourceSpec
    # Valid rows only, columns cast to their declared types, plus `_row` (1-based row
    # number in the source file) for accounting.
    frame: pl.DataFrame
    # Quarantined rows: original columns as read (strings where types failed), `_row`,
    # `_reasons` (list[str] of "reason_code:field").
    quarantine: pl.DataFrame
    input_digest: str  # sha256 of the source file's bytes
    path: str  # workspace-relative path
    accounting: SourceAccounting


@dataclass(frozen=True)
class SourceFrames:
    jurisdiction: str
    as_of: date
    frames: dict[str, SourceFrame]
    # The source whose rows are the data subjects (WorkspaceConfig.subjects).
    subjects: str

    def released(self) -> SourceFrames:
        """The same sources with their rows dropped (schemas, digests and accounting kept).

        Once enforcement has produced the governed frames and the quarantine is sealed,
        lineage needs only this metadata; holding the raw rows for the rest of the refresh
        would double its memory at scale.
        """
        return replace(
            self,
            frames={
                n: replace(f, frame=f.frame.clear(), quarantine=f.quarantine.clear())
                for n, f in self.frames.items()
            },
        )


# ------------------------------------------------------------------ reading


@lru_cache(maxsize=64)
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes (cached per size and mtime: refreshes re-read files)."""
    st = path.stat()
    return _digest_cached(str(path), st.st_size, st.st_mtime_ns)


def scan(path: Path, fmt: str) -> pl.LazyFrame:
    """The raw lazy scan with `_row`; CSV is read as text so the contract does the typing."""
    if fmt == "parquet":
        check_parquet(path)  # a corrupted page is bad input, not a silent read (integrity.py)
        return pl.scan_parquet(path, row_index_name=ROW, row_index_offset=1)
    if fmt == "csv":
        return pl.scan_csv(
            path, infer_schema=False, row_index_name=ROW, row_index_offset=1, encoding="utf8"
        )
    if fmt == "ndjson":
        return pl.scan_ndjson(
            path, row_index_name=ROW, row_index_offset=1, infer_schema_length=None
        )
    raise ConfigError(f"{path}: unknown source format '{fmt}'")  # pragma: no cover


def source_file(ws: Workspace, name: str) -> Path:
    """A source's file; a relative declaration must stay inside the workspace once links are
    followed (a symlink out of it would read data nobody declared)."""
    spec = ws.source(name)
    path = ws.path(spec.path)
    if not Path(spec.path).is_absolute() and path.exists():
        real = path.resolve()
        if not real.is_relative_to(ws.root.resolve()):
            raise BadInputError(
                f"{spec.path}: source '{name}' is a link that leaves the workspace (to "
                f"{real}); refusing to read it: declare an absolute path if that is intended"
            )
    return path


def scoped_scan(ws: Workspace, name: str, jurisdiction: str) -> pl.LazyFrame:
    """Lazy scan of one source with the jurisdiction predicate inside the scan."""
    spec = ws.source(name)
    lf = scan(source_file(ws, name), spec.format)
    return lf.filter(pl.col(spec.jurisdiction_column) == jurisdiction)


def _schema(lf: pl.LazyFrame, rel: str, name: str, fmt: str) -> pl.Schema:
    try:
        return lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadInputError(
            f"{rel}: source '{name}' is not readable as {fmt} ({type(exc).__name__})"
        ) from None


def _check_columns(schema: pl.Schema, spec: SourceSpec, rel: str, name: str) -> None:
    present = [c for c in schema.names() if c != ROW]
    missing = [c for c in spec.columns if c not in present]
    extra = [c for c in present if c not in spec.columns]
    if missing:
        hint = ""
        if any(ch in c for c in present for ch in ";\t|"):
            hint = " (the header looks split on another delimiter: CSV sources must use ',')"
        raise BadInputError(
            f"{rel}: source '{name}' lacks declared column(s): {', '.join(missing)}{hint}"
        )
    if extra:
        raise BadInputError(
            f"{rel}: source '{name}' has undeclared column(s): {', '.join(extra)}; declare "
            "them with a classification in pgov.toml or remove them (undeclared data must "
            "not flow)"
        )


# ------------------------------------------------------------------ typing


def _typed(col: str, raw: pl.DataType, spec: ColumnSpec, rel: str, name: str) -> pl.Expr:
    """The column cast to its declared type; a value that does not fit becomes null."""
    target = DTYPES[spec.type]
    c = pl.col(col)
    if raw == target:
        expr = c
    elif raw == pl.String:
        s = c.str.strip_chars()
        if spec.type == ColumnType.STR:
            expr = c
        elif spec.type == ColumnType.INT:
            expr = s.cast(pl.Int64, strict=False)
        elif spec.type == ColumnType.FLOAT:
            expr = s.cast(pl.Float64, strict=False)
        elif spec.type == ColumnType.BOOL:
            expr = s.str.to_lowercase().replace_strict(
                _BOOLS, default=None, return_dtype=pl.Boolean
            )
        elif spec.type == ColumnType.DATE:
            expr = s.str.to_date("%Y-%m-%d", strict=False)
        else:
            expr = pl.coalesce(
                s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us"),
                s.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"),
            )
    elif spec.type == ColumnType.STR and (raw == pl.Categorical or isinstance(raw, pl.Enum)):
        expr = c.cast(pl.String)
    elif spec.type == ColumnType.INT and raw.is_integer():
        expr = c.cast(pl.Int64, strict=False)
    elif spec.type == ColumnType.INT and raw.is_float():
        expr = pl.when(c == c.round()).then(c.cast(pl.Int64, strict=False))
    elif spec.type == ColumnType.FLOAT and raw.is_numeric():
        expr = c.cast(pl.Float64)
    elif spec.type == ColumnType.DATETIME and isinstance(raw, pl.Datetime):
        if raw.time_zone is not None:  # timestamps are stored as naive UTC
            expr = c.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(target)
        else:
            expr = c.cast(target)
    elif spec.type == ColumnType.DATETIME and raw == pl.Date:
        expr = c.cast(target)
    else:
        raise BadInputError(
            f"{rel}: source '{name}' column '{col}' is stored as {raw}; the contract says "
            f"{spec.type.value}"
        )
    if spec.type == ColumnType.FLOAT:
        expr = pl.when(expr.is_finite()).then(expr)  # NaN and infinities are not amounts
    return expr


def _format_ok(expr: pl.Expr, fmt: str, rel: str, name: str, col: str) -> pl.Expr:
    if fmt == "email":
        return expr.str.contains(_EMAIL)
    if fmt == "phone":
        return expr.str.replace_all(r"[ ()./-]", "").str.contains(_PHONE)
    if fmt == "country":
        return expr.is_in(pl.Series(_COUNTRIES).implode())
    if fmt == "iso_date":
        return expr.str.to_date("%Y-%m-%d", strict=False).is_not_null()
    raise ConfigError(
        f"{rel}: source '{name}' column '{col}' names unknown format '{fmt}' "
        f"(known: {', '.join(FORMATS)})"
    )


def _checks(
    col: str,
    raw: pl.Expr,
    typed: pl.Expr,
    spec: ColumnSpec,
    as_of: date,
    rel: str,
    name: str,
) -> list[tuple[str, pl.Expr]]:
    """(reason code, boolean expression true where the row fails) per check."""
    out: list[tuple[str, pl.Expr]] = []

    def reason(code: str, failed: pl.Expr) -> None:
        out.append((f"{code}:{col}", failed))

    missing = raw.is_null()
    if spec.type == ColumnType.STR:
        missing = missing | (typed.cast(pl.String).str.strip_chars() == "").fill_null(False)
    if spec.required:
        reason("required", missing)
    reason("type", raw.is_not_null() & typed.is_null())
    present = typed.is_not_null()
    if spec.min is not None or spec.max is not None:
        if spec.type not in (ColumnType.INT, ColumnType.FLOAT):
            raise ConfigError(f"{rel}: source '{name}' column '{col}': min/max need int or float")
        low = typed < spec.min if spec.min is not None else pl.lit(False)
        high = typed > spec.max if spec.max is not None else pl.lit(False)
        reason("range", present & (low | high))
    if spec.format is not None:
        if spec.type != ColumnType.STR:
            raise ConfigError(f"{rel}: source '{name}' column '{col}': format needs type str")
        reason("format", present & ~missing & ~_format_ok(typed, spec.format, rel, name, col))
    if spec.allowed is not None:
        allowed = pl.Series(spec.allowed, dtype=pl.String).implode()
        reason("not_allowed", present & ~typed.cast(pl.String).is_in(allowed))
    if spec.not_future:
        if spec.type == ColumnType.DATE:
            reason("future", typed > pl.lit(as_of))
        elif spec.type == ColumnType.DATETIME:
            # Anything on the refresh day itself is allowed; the day after is the future.
            limit = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
            reason("future", typed >= pl.lit(limit, dtype=pl.Datetime("us")))
        else:
            raise ConfigError(f"{rel}: source '{name}' column '{col}': not_future needs a date")
    return out


# ------------------------------------------------------------------ loading


def _load_one(
    ws: Workspace,
    name: str,
    jurisdiction: str,
    as_of: date,
    valid_refs: dict[str, pl.Series],
    digests: ThreadPoolExecutor,
) -> SourceFrame:
    spec = ws.source(name)
    path = source_file(ws, name)
    rel = spec.path
    if not path.is_file():
        raise BadInputError(f"{rel}: source '{name}' file not found")
    lf = scan(path, spec.format)
    schema = _schema(lf, rel, name, spec.format)
    _check_columns(schema, spec, rel, name)
    lf = lf.filter(pl.col(spec.jurisdiction_column) == jurisdiction)

    typed: dict[str, pl.Expr] = {}
    cast_cols: dict[str, str] = {}  # declared column -> name of its typed copy
    for col, cspec in spec.columns.items():
        expr = _typed(col, schema[col], cspec, rel, name)
        if schema[col] == DTYPES[cspec.type] and cspec.type != ColumnType.FLOAT:
            typed[col] = pl.col(col)
        else:
            cast_cols[col] = f"__typed__{col}"
            typed[col] = pl.col(cast_cols[col])
        if col in cast_cols:
            lf = lf.with_columns(expr.alias(cast_cols[col]))

    checks: list[tuple[str, pl.Expr]] = []
    for col, cspec in spec.columns.items():
        checks += _checks(col, pl.col(col), typed[col], cspec, as_of, rel, name)
        if cspec.references:
            ref = valid_refs[cspec.references]
            orphan = typed[col].is_not_null() & ~typed[col].is_in(ref.implode())
            checks.append((f"orphan:{col}", orphan))
    # A background thread hashes the file while Polars scans it (hashlib releases the GIL).
    digest = digests.submit(file_digest, path)
    keys = [typed[k] for k in spec.key]
    key = keys[0] if len(keys) == 1 else pl.struct(keys)
    # Duplicate keys are marked after the scan (see _mark_duplicates): a hash per key here.
    key_hash = pl.when(pl.all_horizontal([k.is_not_null() for k in keys])).then(key.hash())
    dup_at = len(checks)
    checks.append((f"duplicate_key:{'+'.join(spec.key)}", pl.lit(False)))
    for k in spec.key:  # a key is always required, declared so or not
        if not spec.columns[k].required:
            checks.append((f"required:{k}", typed[k].is_null()))
    # One boolean column per check: cheap for millions of valid rows; the list of reason
    # codes is built only for the few rows that failed.
    flags = [f"__check{i}" for i in range(len(checks))]
    lf = lf.with_columns(
        [failed.fill_null(False).alias(f) for f, (_, failed) in zip(flags, checks, strict=True)]
    ).with_columns(pl.any_horizontal(flags).alias("__bad"), key_hash.alias(KEY_HASH))

    try:
        df = _mark_duplicates(lf.collect(), key, flags[dup_at])
    except pl.exceptions.PolarsError as exc:
        # The message may quote a value: only its type is shown.
        raise BadInputError(
            f"{rel}: source '{name}' could not be read as {spec.format} "
            f"({type(exc).__name__}); check the delimiter (','), the encoding (UTF-8) and "
            "that every row has the declared columns"
        ) from None
    bad = df["__bad"]
    valid = df.filter(~bad).select(ROW, *[typed[c].alias(c) for c in spec.columns]).sort(ROW)
    failed = df.filter(bad)
    codes = [code for code, _ in checks]
    reason_list = pl.concat_list(
        [pl.when(pl.col(f)).then(pl.lit(code)) for f, code in zip(flags, codes, strict=True)]
    ).list.drop_nulls()
    quarantine = failed.select(ROW, *spec.columns, reason_list.alias(REASONS)).sort(ROW)
    sums = failed.select([pl.col(f).sum().alias(f) for f in flags]).row(0) if flags else ()
    tally: dict[str, int] = {}
    for code, n in zip(codes, sums, strict=True):
        if n:
            tally[code] = tally.get(code, 0) + int(n)
    accounting = SourceAccounting(
        source=name,
        input_rows=df.height,
        valid_rows=valid.height,
        quarantined_rows=quarantine.height,
        quarantine_reasons=dict(sorted(tally.items())),
    )
    assert accounting.balanced()
    log.info(
        "source.loaded",
        source=name,
        jurisdiction=jurisdiction,
        input_rows=accounting.input_rows,
        valid_rows=accounting.valid_rows,
        quarantined_rows=accounting.quarantined_rows,
    )
    return SourceFrame(
        name=name,
        spec=spec,
        frame=valid,
        quarantine=quarantine,
        input_digest=digest.result(),
        path=rel,
        accounting=accounting,
    )


def _mark_duplicates(df: pl.DataFrame, key: pl.Expr, flag: str) -> pl.DataFrame:
    """Set `flag` (and `__bad`) on every row whose non-null key occurs more than once.

    Polars' hash-table `is_duplicated` on millions of string keys was most of the scan's
    time. Here the keys' 64-bit hashes are sorted (cheap): when no hash repeats, which is
    the normal case, no key repeats either and nothing else is done. Rows whose hash
    repeats are only candidates (two keys can share a hash): the exact key comparison runs
    on those few rows alone, so the answer is exactly `is_duplicated`'s.
    """
    hashes = df[KEY_HASH]
    df = df.drop(KEY_HASH)
    ordered = hashes.drop_nulls().sort().to_numpy()  # Polars' sort uses both cores
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated) == 0:
        return df
    candidate = hashes.is_in(pl.Series(repeated, dtype=hashes.dtype).implode()).fill_null(False)
    rows = df.with_row_index("__i").filter(candidate)
    exact = rows.filter(key.is_duplicated())["__i"].to_numpy()
    mark = np.zeros(df.height, dtype=bool)
    mark[exact] = True
    marks = pl.Series(flag, mark)
    return df.with_columns(marks, (pl.col("__bad") | marks).alias("__bad"))


def _load_order(ws: Workspace) -> list[str]:
    """Sources in an order where each comes after the sources it references."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(f"{ws.config_path}: source references form a cycle at '{name}'")
        visiting.add(name)
        for cspec in ws.source(name).columns.values():
            if cspec.references:
                ref = cspec.references.partition(".")[0]
                if ref != name:
                    visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in ws.config.sources:
        visit(name)
    return order


def load_sources(ws: Workspace, jurisdiction: str, as_of: date) -> SourceFrames:
    """Every declared source, this jurisdiction only, split into valid and quarantined rows."""
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
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgov-digest") as digests:
        for name in _load_order(ws):
            frames[name] = _load_one(ws, name, jurisdiction, as_of, valid_refs, digests)
            for ref in needed:
                src, _, col = ref.partition(".")
                if src == name:
                    valid_refs[ref] = frames[name].frame[col]
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
