"""Fan jurisdiction refreshes out: sequentially, to a local process pool, or to Dask.

One job = one jurisdiction's whole refresh, run where the workspace is (shared storage),
returning only its manifest (ids, digests, counts): customer data never travels through
the scheduler, the client or this process. On Dask each job is a single task that needs
the worker resource of its jurisdiction's region, so only that region's workers run it
(data residency); a jurisdiction whose region has no worker fails closed at once, and a
task still unfinished at the timeout is cancelled and reported failed.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import structlog

from engine.errors import ExitCode, InfrastructureError, PgovError, UsageError, exit_code_of
from engine.executors.regions import region_of, resource_name
from engine.request import RefreshRequest

log = structlog.get_logger(__name__)

ExecutorKind = Literal["sequential", "local", "dask"]
EXECUTORS: tuple[str, ...] = ("sequential", "local", "dask")
# Anything with this shape: (Workspace, RefreshRequest) -> object with `.manifest: dict`.
RefreshFn = Callable[[Any, RefreshRequest], Any]


@dataclass(frozen=True)
class JobOutcome:
    jurisdiction: str
    purpose: str
    region: str
    ok: bool
    manifest: dict[str, Any] | None
    error: str | None
    # Who ran it: the Dask worker address, or "pid N on HOST" for local/sequential.
    worker: str | None
    seconds: float
    # The exit code this job alone would have given (README table): 0, 7 for a version
    # stored invalid, 10 for a dead letter, the error's own code otherwise.
    exit_code: int = 0
    dead_lettered: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "jurisdiction": self.jurisdiction,
            "purpose": self.purpose,
            "region": self.region,
            "ok": self.ok,
            "manifest": self.manifest,
            "error": self.error,
            "worker": self.worker,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
            "dead_lettered": self.dead_lettered,
        }


def _default_refresh() -> RefreshFn:
    # Resolved lazily on the worker: importing the whole pipeline is the worker's job, and
    # tests swap in a fake without touching this module.
    from engine.heap import held

    with held():  # modules that live until the worker exits (engine/heap.py)
        from engine.refresh import run_refresh

    return cast(RefreshFn, run_refresh)


def _where() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()} on {socket.gethostname()}"


def _worker_serves(region: str) -> bool:
    """On a Dask worker: does it advertise this region? Elsewhere: nothing to check."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return True
    resources = getattr(worker.state, "total_resources", None) or {}
    return float(resources.get(resource_name(region), 0)) >= 1


def raised_at(exc: BaseException) -> str:
    """Where an exception was raised, as code locations only (no value leaves with them):
    the innermost frame of this project's code and, when it differs, the innermost frame
    overall (a library's), each `path:line in function`."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    root = Path(__file__).resolve().parents[1]

    def project_path(f: traceback.FrameSummary) -> str | None:
        try:
            rel = Path(f.filename).resolve().relative_to(root)
        except ValueError:
            return None
        # A virtual environment inside the checkout holds libraries, not our code.
        return rel.as_posix() if rel.parts[0] in ("engine", "lineage", "tests", "bench") else None

    def show(f: traceback.FrameSummary) -> str:
        name = project_path(f)
        if name is None:
            parts = Path(f.filename).parts
            cut = max((i for i, p in enumerate(parts) if p.endswith("-packages")), default=-1)
            name = "/".join(parts[cut + 1 :]) if cut >= 0 else parts[-1]
        return f"{name}:{f.lineno} in {f.name}"

    ours = [f for f in frames if project_path(f) is not None]
    shown = [show(ours[-1])] if ours else []
    if not ours or ours[-1] is not frames[-1]:
        shown.append(show(frames[-1]))
    return " -> ".join(shown)


def _takes_progress(fn: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is p.VAR_KEYWORD for p in params)


def run_job(
    ws_root: str,
    request: dict[str, Any],
    region: str,
    refresh_fn: RefreshFn | None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run one refresh where this function runs; return only a small summary dict.

    ``progress`` (the local pool's stage hook) is passed to a refresh function that takes
    one (engine.refresh.run_refresh does); it may block between stages.

    Never raises: exceptions may carry objects that do not pickle, and an error message is
    all the caller needs (PgovError messages carry locations and reasons, never values).
    """
    from engine.workspace import Workspace

    started = time.perf_counter()
    where = _where()
    try:
        if not _worker_serves(region):
            # Defence in depth: the scheduler should never place it here.
            raise InfrastructureError(
                f"worker {where} does not serve region {region}; refusing to run"
            )
        req = RefreshRequest.model_validate(request)
        ws = Workspace.open(ws_root)
        # Pool processes and Dask workers start with structlog unconfigured, which prints
        # unredacted to stdout: give them the workspace's redacting JSON log, as the CLI does.
        import structlog

        from engine.logs import configure_logging

        if not structlog.is_configured():
            configure_logging(ws, ws.logs_dir / "pgov.jsonl", "INFO")
        fn = refresh_fn or _default_refresh()
        from engine.actors import under_request

        with under_request(req.signed_request):  # the parent's signed request (run_cmd)
            if progress is not None and _takes_progress(fn):
                result = cast(Any, fn)(ws, req, progress=progress)
            else:
                result = fn(ws, req)
        manifest = dict(result.manifest)
        dead = int(getattr(result, "dead_lettered", 0) or 0)
        code = ExitCode.OK
        if dead:
            code = ExitCode.DELIVERY
        elif manifest.get("validity") == "invalid":
            code = ExitCode.GATE_FAILED
        return {
            "manifest": manifest,
            "error": None,
            "worker": where,
            "seconds": time.perf_counter() - started,
            "exit_code": int(code),
            "dead_lettered": dead,
        }
    except PgovError as exc:
        error = f"{exc.__class__.__name__}: {exc.message}"
        code = exc.exit_code
    except Exception as exc:
        # An exception that is not one of ours is a bug: say where it was raised, so a rare
        # one (a race between pool workers) can be traced from the one line a fan-out prints.
        where_raised = raised_at(exc)
        log.error("job_crashed", error_type=exc.__class__.__name__, raised_at=where_raised)
        error = f"{exc.__class__.__name__}: {exc} [raised at {where_raised}]"
        code = ExitCode(exit_code_of(exc))
    return {
        "manifest": None,
        "error": error,
        "worker": where,
        "seconds": time.perf_counter() - started,
        "exit_code": int(code),
    }


def _outcome(req: RefreshRequest, region: str, summary: dict[str, Any]) -> JobOutcome:
    return JobOutcome(
        jurisdiction=req.jurisdiction,
        purpose=req.purpose.value,
        region=region,
        ok=summary.get("error") is None and summary.get("manifest") is not None,
        manifest=summary.get("manifest"),
        error=summary.get("error"),
        worker=summary.get("worker"),
        seconds=float(summary.get("seconds", 0.0)),
        exit_code=int(summary.get("exit_code", ExitCode.INTERNAL if summary.get("error") else 0)),
        dead_lettered=int(summary.get("dead_lettered", 0)),
    )


def _failed(
    req: RefreshRequest,
    region: str,
    error: str,
    seconds: float = 0.0,
    code: ExitCode = ExitCode.INTERNAL,
) -> JobOutcome:
    return JobOutcome(
        req.jurisdiction, req.purpose.value, region, False, None, error, None, seconds, int(code)
    )


def run_all(
    ws_root: Path,
    requests: Sequence[RefreshRequest],
    executor: ExecutorKind = "sequential",
    scheduler: str | None = None,
    timeout: float = 600.0,
    refresh_fn: RefreshFn | None = None,
    *,
    regions: Mapping[str, str] | None = None,
    max_workers: int | None = None,
    memory_budget: str | int | None = None,
) -> list[JobOutcome]:
    """Run every request (one job each) and return their outcomes in request order.

    ``timeout`` bounds each job from submission (queueing behind other jobs of the same
    region counts). ``regions`` overrides the jurisdiction -> region rule for Dask.
    ``max_workers`` and ``memory_budget`` (bytes or "10G"; default $PGOV_MEMORY_BUDGET, else
    80 % of the memory available) shape the local pool (engine/executors/local.py).
    A failed job never stops the others; the caller decides what a partial failure means.
    """
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor '{executor}'; choose one of {', '.join(EXECUTORS)}")
    if timeout <= 0:
        raise UsageError("timeout must be positive")
    root = str(Path(ws_root).resolve())
    reqs = list(requests)
    region_list = [region_of(r.jurisdiction, regions) for r in reqs]
    log.info("fan_out", executor=executor, jobs=len(reqs), regions=sorted(set(region_list)))
    if executor == "sequential":
        outcomes = [
            _outcome(r, g, run_job(root, r.model_dump(mode="json"), g, refresh_fn))
            for r, g in zip(reqs, region_list, strict=True)
        ]
    elif executor == "local":
        outcomes = _run_local(
            root, reqs, region_list, timeout, refresh_fn, max_workers, memory_budget
        )
    else:
        if not scheduler:
            raise UsageError("--executor dask needs --scheduler ADDRESS (see 'pgov cluster local')")
        outcomes = _run_dask(root, reqs, region_list, scheduler, timeout, refresh_fn)
    _record_placements(root, executor, reqs, outcomes)
    return outcomes


def _record_placements(
    root: str, executor: str, reqs: list[RefreshRequest], outcomes: list[JobOutcome]
) -> None:
    """One audit entry per job: where it ran (or why not). Residency evidence for auditors."""
    from engine.audit import record
    from engine.workspace import Workspace

    ws = Workspace.open(root)
    for req, o in zip(reqs, outcomes, strict=True):
        record(
            ws,
            "refresh_placement",
            req.actor,
            jurisdiction=o.jurisdiction,
            purpose=o.purpose,
            executor=executor,
            region=o.region,
            worker=o.worker,
            ok=o.ok,
            version_id=(o.manifest or {}).get("version_id"),
            error=o.error,
            exit_code=o.exit_code,
        )


def _run_local(
    root: str,
    reqs: list[RefreshRequest],
    region_list: list[str],
    timeout: float,
    refresh_fn: RefreshFn | None,
    max_workers: int | None,
    memory_budget: str | int | None,
) -> list[JobOutcome]:
    from engine.executors.local import run_local

    summaries = run_local(
        root, reqs, region_list, timeout, run_job, refresh_fn, max_workers, memory_budget
    )
    return [_outcome(r, g, s) for r, g, s in zip(reqs, region_list, summaries, strict=True)]


def _served_regions(client: Any) -> dict[str, list[str]]:
    """region -> worker addresses advertising it, from the scheduler's view right now."""
    info = client.scheduler_info(n_workers=-1)
    served: dict[str, list[str]] = {}
    for address, w in info.get("workers", {}).items():
        for name, amount in (w.get("resources") or {}).items():
            if name.startswith("region-") and float(amount) >= 1:
                served.setdefault(name.removeprefix("region-"), []).append(address)
    return served


def _run_dask(
    root: str,
    reqs: list[RefreshRequest],
    region_list: list[str],
    scheduler: str,
    timeout: float,
    refresh_fn: RefreshFn | None,
) -> list[JobOutcome]:
    from distributed import Client
    from distributed import TimeoutError as DaskTimeout

    try:
        client = Client(scheduler, timeout=min(timeout, 30.0), set_as_default=False)
    except (OSError, DaskTimeout) as exc:
        raise UsageError(f"cannot reach Dask scheduler at {scheduler}: {exc}") from None
    with client:
        served = _served_regions(client)
        log.info("dask_regions", served={r: len(a) for r, a in sorted(served.items())})
        futures: dict[int, Any] = {}
        results: dict[int, JobOutcome] = {}
        for i, (r, g) in enumerate(zip(reqs, region_list, strict=True)):
            if g not in served:
                # Fail closed now rather than leave a task pending forever. A deployment
                # problem (exit 2), not a policy decision.
                results[i] = _failed(
                    r,
                    g,
                    f"no Dask worker serves region {g} (resource {resource_name(g)}); "
                    f"{r.jurisdiction} not run. Serving: {', '.join(sorted(served)) or 'none'}",
                    code=ExitCode.USAGE,
                )
                continue
            futures[i] = client.submit(
                run_job,
                root,
                r.model_dump(mode="json"),
                g,
                refresh_fn,
                resources={resource_name(g): 1},
                pure=False,
                key=f"pgov-refresh-{r.jurisdiction}-{r.purpose.value}-{os.urandom(4).hex()}",
            )
        started = time.monotonic()
        for i, fut in futures.items():
            r, g = reqs[i], region_list[i]
            remaining = max(0.0, started + timeout - time.monotonic())
            try:
                results[i] = _outcome(r, g, fut.result(timeout=remaining))
            except (TimeoutError, DaskTimeout):
                fut.cancel()
                results[i] = _failed(
                    r,
                    g,
                    f"not finished within {timeout:g}s on region {g} (no free worker, or the "
                    "worker left); cancelled, failing closed. A refresh already running "
                    "there may still publish: check 'pgov versions list'.",
                    timeout,
                )
            except Exception as exc:
                results[i] = _failed(r, g, f"{exc.__class__.__name__}: {exc}")
        return [results[i] for i in range(len(reqs))]
