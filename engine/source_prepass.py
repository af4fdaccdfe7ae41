"""A source's pre-pass: the rows its contract pass must mark before it runs, computed over
one scan or taken from the sealed pre-pass cache (engine/prepass_cache.py).

The pre-pass finds the rows of duplicated keys (engine/source_keys.py) and, per column that
references another source, the orphan rows (engine/source_refs.py). The answer is a list of
row numbers that depends only on the bytes of the source's file and of the files of the
sources it references (their valid rows are what orphans are checked against), on those
sources' declarations, the jurisdiction and the as-of date (a parent row dated after it is
not valid), and on the engine code and Polars version that compute it: `inputs_key` digests
exactly that. On a steady refresh of unchanged files the answer is the same every time, so
`Prepasses` looks it up when the sources stage starts and the scans are not run again.

Looking up must not read a file: the file digests used are those already known for each
file's current state (`source_files.known_digest`: this process's memo or the sealed
file-digest cache). An answer is used only when each file was then read from the very state
its digest was known for; the answers computed on a miss are stored at the end of the stage
under the digests bound to the states their rows were read from. A file with no known digest
(its first refresh, a new file, PGOV_DIGEST_CACHE=off in a fresh process) is a miss.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache

import polars as pl

from engine.config import SourceSpec
from engine.contracts import DTYPES
from engine.digest_cache import DigestCache, StatKey
from engine.errors import BadInputError
from engine.prepass_cache import FORMAT, Prepass, PrepassCache
from engine.source_files import ROW, known_digest, source_file
from engine.source_keys import duplicate_rows, increasing_query
from engine.source_order import upstream
from engine.source_refs import joinable, orphan_query
from engine.workspace import Workspace

# The code the answer comes from: a change to any of these modules is a change of inputs.
_CODE = (
    "engine.contracts",
    "engine.source_files",
    "engine.source_keys",
    "engine.source_prepass",
    "engine.source_refs",
    "engine.sources",
)
# An answer marking more rows than this is not stored: its entry would be tens of MB of
# JSON to parse on every refresh (a source that dirty is rare, and a refresh of it mostly
# fails its quarantine gate).
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class PrepassRows:
    """The pre-pass answer as the contract pass marks it: `_row` numbers."""

    duplicated: pl.Series
    orphans: dict[str, pl.Series]  # referencing column -> its orphan rows


@dataclass(frozen=True)
class Hit:
    state: StatKey  # the source file's state the answer's digest was known for
    entry: Prepass


def joined(spec: SourceSpec, valid_refs: Mapping[str, pl.Series]) -> list[str]:
    """The referencing columns whose orphans an anti join finds (engine/source_refs.py)."""
    return [
        col
        for col, cspec in spec.columns.items()
        if cspec.references and joinable(DTYPES[cspec.type], valid_refs[cspec.references])
    ]


def compute(
    lf: pl.LazyFrame,
    spec: SourceSpec,
    typed: Mapping[str, pl.Expr],
    valid_refs: Mapping[str, pl.Series],
    increasing: bool | None,
) -> PrepassRows:
    """The pre-pass over one scan: the single-column key's order and each reference's
    orphan rows in one collect, then the duplicate keys. Raises Polars' errors."""
    single = len(spec.key) == 1 and increasing is None
    pre = [increasing_query(lf, typed[spec.key[0]])] if single else []
    cols = joined(spec, valid_refs)
    pre += [
        orphan_query(lf, ROW, typed[c], valid_refs[spec.columns[c].references or ""]) for c in cols
    ]
    got = pl.collect_all(pre) if pre else []
    orphans = {c: got[single + i][ROW] for i, c in enumerate(cols)}
    duplicated = duplicate_rows(
        lf,
        ROW,
        [typed[k] for k in spec.key],
        increasing=bool(got[0].item()) if single else bool(increasing),
    )
    return PrepassRows(duplicated, orphans)


def from_entry(entry: Prepass, cols: list[str], dtype: pl.DataType) -> PrepassRows | None:
    """A cached answer as row Series; None when its shape does not fit the source's joined
    columns (then it is recomputed)."""
    if len(entry.orphans) != len(cols):
        return None
    return PrepassRows(
        pl.Series(ROW, entry.duplicates, dtype=dtype),
        {c: pl.Series(ROW, rows, dtype=dtype) for c, rows in zip(cols, entry.orphans, strict=True)},
    )


def as_entry(rows: PrepassRows) -> Prepass:
    """Row numbers only, sorted (an anti join's output order is not fixed)."""
    return Prepass(
        tuple(rows.duplicated.sort().to_list()),
        tuple(tuple(s.sort().to_list()) for s in rows.orphans.values()),
    )


@cache
def _code_digest() -> str:
    h = hashlib.sha256()
    for module in _CODE:
        found = importlib.util.find_spec(module)
        origin = found.origin if found is not None else None
        h.update(module.encode() + b"\0")
        if origin is not None:
            with open(origin, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def slot(name: str, jurisdiction: str) -> str:
    """The cache's entry for a source in a jurisdiction (each answer replaces the last)."""
    return f"{name}|{jurisdiction}"


def inputs_key(
    ws: Workspace, name: str, jurisdiction: str, as_of: date, digests: Mapping[str, str]
) -> str:
    """The digest of everything `name`'s pre-pass answer depends on (`digests`: the content
    sha256 of each file in `upstream(ws, name)`)."""
    material = {
        "format": FORMAT,
        "code": _code_digest(),
        "polars": pl.__version__,
        "source": name,
        "jurisdiction": jurisdiction,
        "as_of": as_of.isoformat(),
        "sources": {
            n: {"sha256": digests[n], "spec": ws.source(n).model_dump(mode="json")}
            for n in upstream(ws, name)
        },
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


class Prepasses:
    """One sources stage's use of the cache: every source's entry looked up when the stage
    starts, used only for the file states it was keyed on, the answers computed on a miss
    stored when the stage ends."""

    def __init__(
        self,
        ws: Workspace,
        jurisdiction: str,
        as_of: date,
        cache: PrepassCache | None,
        digests: DigestCache | None,
    ) -> None:
        self.ws, self.jurisdiction, self.as_of, self.cache = ws, jurisdiction, as_of, cache
        self._found: dict[str, tuple[dict[str, StatKey], Prepass]] = {}
        self._computed: dict[str, Prepass] = {}
        if cache is None:
            return
        known = {}
        for name in ws.config.sources:
            try:
                known[name] = known_digest(source_file(ws, name), digests)
            except BadInputError:  # the source's read reports it, in load order
                known[name] = None
        for name in ws.config.sources:
            up = upstream(ws, name)
            files = {n: d for n in up if (d := known[n]) is not None}
            if len(files) < len(up):
                continue
            shas = {n: d.sha256 for n, d in files.items()}
            inputs = inputs_key(ws, name, jurisdiction, as_of, shas)
            entry = cache.lookup(slot(name, jurisdiction), inputs)
            if entry is not None:
                self._found[name] = ({n: d.key for n, d in files.items()}, entry)

    def cached(self, name: str) -> bool:
        """Whether `name` has an entry (its early key-order query is then not asked)."""
        return name in self._found

    def hit(self, name: str, read_from: Mapping[str, StatKey]) -> Hit | None:
        """`name`'s cached answer if the sources it references were read from the states it
        was keyed on (its own state is compared when its read starts: `sources._load_one`)."""
        found = self._found.get(name)
        if found is None:
            return None
        states, entry = found
        if any(read_from.get(n) != s for n, s in states.items() if n != name):
            return None
        return Hit(states[name], entry)

    def computed(self, name: str, rows: PrepassRows | None) -> None:
        """Note a source's answer (None: it came from the cache)."""
        if rows is None or self.cache is None:
            return
        marked = len(rows.duplicated) + sum(len(s) for s in rows.orphans.values())
        if marked <= MAX_ROWS:
            self._computed[name] = as_entry(rows)

    def store(self, digests: Mapping[str, str]) -> None:
        """Store the answers computed, under the digests of the bytes their rows were read
        from (`FileDigests.bound`)."""
        if self.cache is None:
            return
        for name, entry in self._computed.items():
            inputs = inputs_key(self.ws, name, self.jurisdiction, self.as_of, digests)
            self.cache.store(slot(name, self.jurisdiction), inputs, entry)
        self._computed.clear()
