"""How much memory a jurisdiction's refresh needs, so the local pool never overcommits.

A refresh holds one jurisdiction's governed rows in memory, so its peak grows with the data
of that jurisdiction: every source's rows, sized from the files' footers before anything
runs (engine/executors/sizing.py). Each local-pool job runs in a fresh process and reports
its peak resident set (``ru_maxrss``); the pool keeps the last figure per (jurisdiction,
purpose) in ``logs/job-memory.json`` (counts and bytes only: no personal data) and the next
fan-out estimates each job from it:

1. the job's own last peak, grown with its data (bytes, else subjects) since;
2. else a process's base plus its data bytes times the largest peak per data byte any
   measured job of this workspace needed (same purpose first);
3. else the base plus its data bytes times ``DEFAULT_PEAK_PER_DATA_BYTE`` (measured on the
   10M sample, docs/performance.md), until a job of this workspace has been measured;
4. else (sources not sizeable) the base plus subjects times ``DEFAULT_BYTES_PER_SUBJECT``.

Each job also reports its peak per refresh stage (the window that ends as each stage ends,
``exit`` for what follows the last one; the larger of the last two runs' per window, at most
the whole): kept beside the whole peak, scaled like it, they let
the pool (engine/executors/admission.py) reserve for a running job only what its remaining
stages need. A job estimated by the workspace rate (2.) gets windows too: the shares of the
whole peak this purpose's measured jobs had per stage (`stage_shape`). A job without any is
reserved its whole peak for its whole life.

The pool learns inside a fan-out as well: when a job ends, the jobs still waiting that had
no figure of their own (3., 4.) are estimated again from it (`learn`), so a new workspace's
first fan-out runs on measured rates and windows after its first job, not on the default
rate to the end.

The pool then starts the largest job that fits the memory budget next to those running.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import UsageError
from engine.executors.sizing import JurisdictionSize

log = structlog.get_logger(__name__)

HISTORY = "job-memory.json"
ENV_BUDGET = "PGOV_MEMORY_BUDGET"
# Peak RSS of a whole refresh above BASE_BYTES per byte of the jurisdiction's source data
# (uncompressed), measured on the 10M sample (docs/performance.md, "Local pool at 10M":
# 5.04-5.15 for nine of the ten marketing jobs, 5.56 for US-NY). Only used before this
# workspace has a figure of its own. kyc_aml: first refreshes of the ten jobs at 10M after
# the fourth session's memory work measured 4.04-4.76 (EU-FR; "Staged admission"), so 4.76
# plus a tenth; it was 6.6, which put EU-DE, UK, EU-FR and US-CA over a 10 GiB budget
# (alone, last) on a new workspace's first fan-out.
DEFAULT_PEAK_PER_DATA_BYTE = {"kyc_aml": 5.25}
DEFAULT_PEAK_PER_DATA_BYTE_OTHER = 5.2
# Per data subject, when the sources cannot be sized (EU-DE of the 10M sample, 1.6M subjects).
DEFAULT_BYTES_PER_SUBJECT = 8 * 1024
# A worker process before it reads any row (Python, Polars, scikit-learn, the policy engine),
# so small jurisdictions' rates do not inflate large ones' estimates.
BASE_BYTES = 256 * 2**20
# An estimate is a forecast, not a promise: keep a margin.
MARGIN = 1.1
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """'10G', '10GiB', '512M', '1.5g', '2000000000' -> bytes. Refuses anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"memory budget '{text}' is not a size such as 10G or 512M")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def available_bytes() -> int | None:
    """MemAvailable of this host (Linux), or None where /proc/meminfo says nothing."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resolve_budget(budget: str | int | None) -> int | None:
    """An explicit budget (bytes or a size string), else $PGOV_MEMORY_BUDGET, else 80 % of the
    memory available now; None when none of these is known (no memory limit applied)."""
    if isinstance(budget, int):
        if budget <= 0:
            raise UsageError("memory budget must be positive")
        return budget
    text = budget or os.environ.get(ENV_BUDGET, "")
    if text:
        return parse_size(text)
    avail = available_bytes()
    return int(avail * 0.8) if avail else None


@dataclass(frozen=True)
class Estimate:
    bytes: int | None  # None: nothing to go by (the job gets an equal share of the budget)
    subjects: int | None
    basis: str  # "measured", "workspace rate", "default rate", "subjects rate" or "unknown"
    data_bytes: int | None = None  # the jurisdiction's source data (sizing.py)
    # Per stage, in the order the stages end: the estimated peak of each stage's window,
    # scaled like ``bytes`` (margin, growth). None: not measured per stage.
    stages: tuple[tuple[str, int], ...] | None = None


# Writers of the history wait at most this long for each other (a write takes milliseconds).
LOCK_TIMEOUT_S = 30.0


class StagePeak(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    stage: str = Field(pattern=r"^[a-z][a-z_]{0,31}$")
    peak_bytes: int = Field(gt=0)


class JobPeak(BaseModel):
    """One measured job in the history file: checked on the way in, since the file is
    written by other processes (and may be edited by hand). Stage peaks must name each
    stage once and none may exceed the whole peak, else the entry is refused whole."""

    model_config = ConfigDict(extra="ignore", strict=True)
    subjects: int | None = Field(default=None, ge=0)
    data_bytes: int | None = Field(default=None, ge=0)
    peak_bytes: int = Field(gt=0)
    stages: list[StagePeak] | None = Field(default=None, min_length=1, max_length=32)
    # The windows of the run before, kept because one run's window can be low for the next:
    # at 10M the steady kyc refresh's `store` window came out 1.15x the first refresh's.
    earlier_stages: list[StagePeak] | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _stages_agree(self) -> JobPeak:
        for windows in (self.stages, self.earlier_stages):
            names = [s.stage for s in windows or ()]
            if len(set(names)) != len(names):
                raise ValueError("a stage is named twice")
        if self.stages is not None and max(s.peak_bytes for s in self.stages) > self.peak_bytes:
            raise ValueError("a stage peak exceeds the job's peak")
        return self


def _history_path(root: Path) -> Path:
    return root / "logs" / HISTORY


def load_history(root: Path) -> dict[str, dict[str, Any]]:
    """Every well-formed entry of the history; an unreadable file or entry is skipped with a
    warning (its job is then estimated as if never measured), never a crash mid fan-out."""
    path = _history_path(root)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("job_memory_unreadable", path=str(path), error=exc.__class__.__name__)
        return {}
    if not isinstance(data, dict):
        log.warning("job_memory_unreadable", path=str(path), error="not a JSON object")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, entry in data.items():
        try:
            if not re.fullmatch(r"[^/]+/[^/]+", key):
                raise ValueError("key is not jurisdiction/purpose")
            peak = JobPeak.model_validate(entry).model_dump()
            for kept in ("stages", "earlier_stages"):
                if peak[kept] is None:
                    del peak[kept]  # measured before stage peaks were kept, or a first run
            out[key] = peak
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["type"] if isinstance(exc, ValidationError) else str(exc)
            log.warning("job_memory_entry_ignored", path=str(path), job=key, reason=reason)
    return out


def record_peaks(
    root: Path,
    measured: Sequence[tuple[str, str, int | None, int | None, int]],
    stages: Mapping[str, Sequence[tuple[str, int]]] | None = None,
) -> None:
    """(jurisdiction, purpose, subjects, data bytes, peak bytes) of finished jobs into the
    history, with each job's stage peaks where ``stages`` has them ("J/P" -> [(stage,
    bytes)] in order; a job without replaces any stage peaks it had; the windows it had
    are kept beside the new ones as the run before's, see `estimate`). Read, update and
    replace happen under a lock, through a temporary file of this writer's own: two
    fan-outs finishing together on one workspace neither lose each other's figures nor
    leave a file half of one and half of the other."""
    if not measured:
        return
    path = _history_path(root)
    tmp = path.with_name(f".{HISTORY}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            history = load_history(root)
            for j, p, subjects, data_bytes, peak in measured:
                learn(history, j, p, subjects, data_bytes, peak, (stages or {}).get(f"{j}/{p}"))
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(history, indent=1, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except (OSError, Timeout, ValidationError, ValueError) as exc:  # never fail a fan-out
        log.warning("job_memory_not_recorded", error=exc.__class__.__name__)
    finally:
        tmp.unlink(missing_ok=True)


def learn(
    history: dict[str, dict[str, Any]],
    jurisdiction: str,
    purpose: str,
    subjects: int | None,
    data_bytes: int | None,
    peak: int,
    stages: Sequence[tuple[str, int]] | None = None,
) -> None:
    """One finished job's figures into ``history`` (as load_history gives it), in place: the
    file's entry (record_peaks) and, inside a fan-out, what the jobs still waiting are
    estimated from once it ends (engine/executors/local.py)."""
    key = f"{jurisdiction}/{purpose}"
    before = history.get(key, {}).get("stages") if stages else None
    history[key] = JobPeak(
        subjects=None if subjects is None else int(subjects),
        data_bytes=None if data_bytes is None else int(data_bytes),
        peak_bytes=int(peak),
        stages=None if not stages else [StagePeak(stage=n, peak_bytes=int(b)) for n, b in stages],
        earlier_stages=None if not before else [StagePeak.model_validate(w) for w in before],
    ).model_dump(exclude_none=True)


def stage_shape(history: dict[str, dict[str, Any]], purpose: str) -> list[tuple[str, float]] | None:
    """Per stage window, the largest share of its job's whole peak among this purpose's
    measured jobs (either of their last two runs), or None when none was measured per stage
    or they do not name the same stages in the same order. A job never measured itself is
    given these shares of its own whole estimate: a forecast like the workspace rate it is
    scaled by, taken at its most cautious (the base of a small job makes its first windows
    a larger share than a large job's)."""
    shapes: list[list[tuple[str, float]]] = []
    for key, h in history.items():
        if key.rsplit("/", 1)[-1] != purpose or not h.get("stages"):
            continue
        earlier = {w["stage"]: w["peak_bytes"] for w in h.get("earlier_stages") or ()}
        shapes.append(
            [
                (w["stage"], max(w["peak_bytes"], earlier.get(w["stage"], 0)) / h["peak_bytes"])
                for w in h["stages"]
            ]
        )
    if not shapes:
        return None
    names = [n for n, _ in shapes[0]]
    if any([n for n, _ in s] != names for s in shapes):
        return None
    return [(n, min(1.0, max(s[i][1] for s in shapes))) for i, n in enumerate(names)]


def estimate(
    jobs: Sequence[tuple[str, str]],
    history: dict[str, dict[str, Any]],
    sizes: Mapping[str, JurisdictionSize],
) -> list[Estimate]:
    """One estimate per (jurisdiction, purpose), in order."""

    def rate(purpose: str | None) -> float | None:
        rates = [
            max(0, h["peak_bytes"] - BASE_BYTES) / h["data_bytes"]
            for key, h in history.items()
            if h.get("data_bytes")
            and h.get("peak_bytes")
            and (purpose is None or key.rsplit("/", 1)[-1] == purpose)
        ]
        return max(rates) if rates else None

    out: list[Estimate] = []
    for j, p in jobs:
        size = sizes.get(j)
        n = size.subjects if size else None
        data = size.data_bytes if size else None
        own = history.get(f"{j}/{p}")
        if own and own.get("peak_bytes"):
            peak = float(own["peak_bytes"])
            if data and own.get("data_bytes"):
                peak *= max(1.0, data / own["data_bytes"])
            elif n and own.get("subjects"):
                peak *= max(1.0, n / own["subjects"])
            whole = int(peak * MARGIN)
            scale = whole / float(own["peak_bytes"])
            per_stage = own.get("stages")
            # Each window is the larger of the last two runs' (a run's windows vary more than
            # its whole peak), never above the whole estimate: admission's promise that a job
            # alone fits the budget rests on no window exceeding it.
            earlier = {w["stage"]: w["peak_bytes"] for w in own.get("earlier_stages") or ()}
            staged = (
                tuple(
                    (
                        st["stage"],
                        min(whole, int(max(st["peak_bytes"], earlier.get(st["stage"], 0)) * scale)),
                    )
                    for st in per_stage
                )
                if per_stage
                else None
            )
            out.append(Estimate(whole, n, "measured", data, staged))
            continue
        if size is None:
            out.append(Estimate(None, None, "unknown"))
            continue
        r = rate(p) or rate(None)
        if data and r is not None:
            whole = int((BASE_BYTES + data * r) * MARGIN)
            shape = stage_shape(history, p)
            windows = None if shape is None else tuple((s, int(f * whole)) for s, f in shape)
            out.append(Estimate(whole, n, "workspace rate", data, windows))
        elif data:
            per = DEFAULT_PEAK_PER_DATA_BYTE.get(p, DEFAULT_PEAK_PER_DATA_BYTE_OTHER)
            out.append(Estimate(int(BASE_BYTES + data * per), n, "default rate", data))
        else:
            b = BASE_BYTES + (n or 0) * DEFAULT_BYTES_PER_SUBJECT
            out.append(Estimate(b, n, "subjects rate", data))
    return out


def remember_jobs(
    root: Path,
    keys: list[tuple[str, str]],
    estimates: list[Estimate],
    results: dict[int, dict[str, Any]],
) -> None:
    """Every job that ended well into the history file: its whole peak and its windows."""
    measured = [
        (j, p, e.subjects, e.data_bytes, int(results[i]["peak_rss_bytes"]))
        for i, ((j, p), e) in enumerate(zip(keys, estimates, strict=True))
        if results.get(i, {}).get("peak_rss_bytes") and results[i].get("error") is None
    ]
    stages = {
        "/".join(keys[i]): results[i]["stage_peaks"]
        for i in range(len(keys))
        if results.get(i, {}).get("stage_peaks") and results[i].get("error") is None
    }
    record_peaks(root, measured, stages)
    for j, p, _, _, peak in measured:
        log.info("job_memory", job=f"{j}/{p}", peak_gib=round(peak / 2**30, 2))
