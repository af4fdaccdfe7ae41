"""The 10M figures of issue 17, one command each, on an existing sample's data files.

    python bench/bench_tenm.py eu-de --data WS10M --purpose marketing_segmentation
    python bench/bench_tenm.py eu-de --data WS10M --purpose kyc_aml
    python bench/bench_tenm.py all   --data WS10M --purpose marketing_segmentation
    python bench/bench_tenm.py all   --data WS10M --purpose kyc_aml --steady
    python bench/bench_tenm.py ratio --data WS10M --small WS1M --purpose marketing_segmentation

WS10M / WS1M are sample workspaces made by ``bench/bench_sample.py --ten-million --keep DIR``
(and ``--customers 1000000 --keep DIR``). They are only read: each run makes a temporary
workspace next to them (``--tmp-parent``, default: the data workspace's parent) with its own
keys and actor credentials, whose sources are declared by absolute path to the sample's
files, and deletes it afterwards (``--keep`` keeps it).

``eu-de`` runs one jurisdiction's refresh (``bench/bench_refresh.py`` in a child process:
per-stage seconds and per-stage peak RSS). ``all`` runs the one command a user runs,
``pgov refresh --all-jurisdictions --executor local --workers 2 --memory-budget 10G``
(``--executor``, ``--workers`` and ``--memory-budget`` to change). ``ratio`` runs that same
command on the 1M and the 10M sample and prints time(10M)/time(1M) (target: <= 11).
``--steady`` runs the command twice on the same temporary workspace and reports both: the
first refresh of each chain (under kyc_aml the token vault files every kyc value once) and
a steady one (the values are in the vault already; the local pool estimates each job from
the peak it measured the first time), the figure a scheduled refresh sees.

Every run prints wall seconds, CPU seconds of all child processes (user + system, from
``getrusage(RUSAGE_CHILDREN)``), the peak RSS of the largest single process and the peak of
the whole process tree's summed RSS (sampled from /proc every 50 ms, pages shared between
processes counted once: see TreeMemory; the figure that says whether pool workers fit in
memory together), each job's peak, the jobs side by side at the tree's peak, the load
average before and after, the date and the commit measured.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The CLI of this checkout (PYTHONPATH points at it), whatever pgov is on PATH.
PGOV = [sys.executable, "-c", "from engine.cli import main; main()"]
AS_OF = "2026-11-01"  # the samples' as-of date (bench_sample.AS_OF)
TARGETS = {
    ("eu-de", "marketing_segmentation"): (30.0, 8.0),
    ("eu-de", "kyc_aml"): (45.0, 8.0),
    ("all", "marketing_segmentation"): (240.0, 10.0),
    ("all", "kyc_aml"): (360.0, 10.0),
}
# kyc_aml: the sample's compliance officer serves every jurisdiction. Marketing is a regional
# analyst's purpose (policy refuses it to compliance), and the sample's analysts each serve
# one region, so the temp workspace declares one analyst assigned to all ten (the policy's
# transfer rules still apply to it as to anyone).
# --steady: the labels of the first and the second run of the same command.
_RUNS = (" [first refresh]", " [steady: second refresh, same workspace]")
ALL_ACTORS = {"kyc_aml": "compliance-lead", "credit_risk_segmentation": "compliance-lead"}
ANALYST = "bench-analyst-all"


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _children_of() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name (field 2) may hold spaces: the ppid follows the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


@dataclass
class TreeMemory:
    """Peak of the summed memory of a process and all its descendants, and per-process peaks.

    The sum is of RSS, except that pages shared between processes count once: when two or
    more processes hold over BIG_KIB, their proportional set sizes (PSS, shared pages split
    between sharers) are read instead, at most every PSS_INTERVAL (reading one costs ~5 ms
    per 3 GiB). Without that, a process forked by a 6 GiB worker (a library running a
    command) shows the worker's 6 GiB again in its VmRSS until it execs or exits, and the
    tree looked 6 GiB larger than the memory used (measured: 12.0 GiB "peaks" of one 5.8
    GiB job and its fork).
    """

    root: int
    interval: float = 0.05
    tree_peak_kib: int = 0
    process_peak_kib: dict[int, int] = field(default_factory=dict)
    # Each process's memory at the moment of the tree's peak: which jobs were side by side.
    at_peak_kib: dict[int, int] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    BIG_KIB = 512 * 1024
    PSS_INTERVAL = 0.25

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last_pss = 0.0
        while not self._stop.is_set():
            kids = _children_of()
            todo, now = [self.root], {}
            while todo:
                pid = todo.pop()
                rss = _rss_kib(pid)
                now[pid] = rss
                self.process_peak_kib[pid] = max(self.process_peak_kib.get(pid, 0), rss)
                if rss and pid not in self.names:
                    self.names[pid] = _comm(pid)
                todo.extend(kids.get(pid, []))
            if sum(now.values()) > self.tree_peak_kib:
                big = [pid for pid, rss in now.items() if rss > self.BIG_KIB]
                if len(big) < 2:
                    self._peak(now)
                elif time.monotonic() - last_pss >= self.PSS_INTERVAL:
                    last_pss = time.monotonic()
                    self._peak({pid: _pss_kib(pid) if pid in big else r for pid, r in now.items()})
            time.sleep(self.interval)

    def _peak(self, now: dict[int, int]) -> None:
        total = sum(now.values())
        if total > self.tree_peak_kib:
            self.tree_peak_kib = total
            self.at_peak_kib = {pid: kib for pid, kib in now.items() if kib}


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"


@dataclass
class Measured:
    wall: float
    cpu: float
    tree_peak_gib: float
    process_peak_gib: float
    processes: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    returncode: int
    stdout: str
    # pid -> (peak RSS GiB of that process, its RSS GiB when the tree peaked)
    processes_gib: dict[int, tuple[float, float]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # pid -> command name


def measure(cmd: list[str], env: dict[str, str]) -> Measured:
    """Run cmd as a child; wall, CPU of all its descendants and memory, as described above."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    t = time.perf_counter()
    # Its own process group, so an interrupted bench stops the pool workers too.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    mem = TreeMemory(proc.pid)
    mem.start()
    try:
        out, _ = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    wall = time.perf_counter() - t
    mem.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN: the largest single descendant that has been waited for.
    biggest = max(after.ru_maxrss, max(mem.process_peak_kib.values(), default=0))
    return Measured(
        wall=wall,
        cpu=cpu,
        tree_peak_gib=mem.tree_peak_kib / 2**20,
        process_peak_gib=biggest / 2**20,
        processes=sum(1 for v in mem.process_peak_kib.values() if v > 0),
        load_before=load_before,
        load_after=os.getloadavg(),
        returncode=proc.returncode,
        stdout=out,
        processes_gib={
            pid: (peak / 2**20, mem.at_peak_kib.get(pid, 0) / 2**20)
            for pid, peak in mem.process_peak_kib.items()
            if peak
        },
        names=dict(mem.names),
    )


class TempWorkspace:
    """A workspace of our own over a sample's data files (symlinked, never written)."""

    def __init__(self, data_ws: Path, parent: Path, keep: bool) -> None:
        self.data_ws = data_ws.resolve()
        if not (self.data_ws / "pgov.toml").is_file():
            raise SystemExit(f"{self.data_ws} is not a workspace (no pgov.toml)")
        self.dir = Path(tempfile.mkdtemp(prefix="tmp-tenm-", dir=parent))
        self.root = self.dir / "ws"
        self.keep = keep
        self.env = dict(os.environ)
        # Actor credentials outside the workspace, and not in the user's home.
        self.env["PGOV_ACTOR_KEYS"] = str(self.dir / "actor-keys")
        self.env["PYTHONPATH"] = str(REPO)

    def __enter__(self) -> TempWorkspace:
        try:
            subprocess.run(
                [*PGOV, "init", str(self.root)], env=self.env, check=True, stdout=subprocess.DEVNULL
            )
            (self.root / "pgov.toml").write_text(self._pointed_config())
            subprocess.run(
                [*PGOV, "keys", "init", "-w", str(self.root)],
                env=self.env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        return self

    def _pointed_config(self) -> str:
        """The sample's pgov.toml with each source's relative path made absolute (a source
        must not be a link out of its workspace; an absolute path is declared on purpose)."""
        out, table = [], ""
        for line in (self.data_ws / "pgov.toml").read_text().splitlines():
            m = re.match(r"^\[+([^\]]+)\]+", line)
            if m:
                table = m.group(1).strip()
            m = re.match(r'^(\s*path\s*=\s*")([^"]+)"(.*)$', line)
            if m and table.startswith("sources.") and not Path(m.group(2)).is_absolute():
                line = f'{m.group(1)}{self.data_ws / m.group(2)}"{m.group(3)}'
            out.append(line)
        jurisdictions = re.search(r"^jurisdictions\s*=\s*(\[.*\])", "\n".join(out), re.M)
        if jurisdictions:
            out += ["", f"[actors.{ANALYST}]", 'roles = ["regional_analyst"]',
                    'home_region = "EU"', f"jurisdictions = {jurisdictions.group(1)}"]  # fmt: skip
        return "\n".join(out) + "\n"

    def __exit__(self, *exc: object) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"kept {self.root}")


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _customers(ws: Path) -> int | None:
    manifest = ws / "data" / "sample_manifest.json"
    try:
        n = json.loads(manifest.read_text()).get("customers")
        return int(n) if n else None
    except (OSError, ValueError, TypeError):
        return None


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _header(args: argparse.Namespace) -> None:
    print(
        f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_commit()}, "
        f"{platform.machine()}, cores {os.cpu_count()}, python {platform.python_version()}"
    )


def _report(label: str, m: Measured, target: tuple[float, float] | None) -> None:
    lb = "/".join(f"{x:.1f}" for x in m.load_before)
    la = "/".join(f"{x:.1f}" for x in m.load_after)
    print(
        f"RESULT {label}: wall {m.wall:.1f} s, cpu {m.cpu:.1f} s, peak RSS {m.tree_peak_gib:.2f} "
        f"GiB (process tree, shared pages once, {m.processes} processes), largest process "
        f"{m.process_peak_gib:.2f} GiB, load {lb} -> {la}, exit {m.returncode}"
    )
    if target is not None:
        seconds, gib = target
        ok = m.returncode == 0 and m.wall <= seconds and m.tree_peak_gib <= gib
        print(f"  target: <= {seconds:g} s and <= {gib:g} GiB: {'met' if ok else 'NOT met'}")


@contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    """Hold an exclusive flock on path (if given) only while one run measures, so others
    sharing the machine's memory through the same lock can run between two runs."""
    if path is None:
        yield
        return
    with open(path, "a") as fh:
        print(f"waiting for the lock {path}", flush=True)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_one(args: argparse.Namespace, data_ws: Path) -> list[Measured]:
    parent = args.tmp_parent or data_ws.resolve().parent
    with TempWorkspace(data_ws, parent, args.keep) as tw:
        if args.command == "eu-de":
            cmd = [
                sys.executable,
                str(REPO / "bench" / "bench_refresh.py"),
                "--workspace",
                str(tw.root),
                "--jurisdiction",
                args.jurisdiction,
                "--purpose",
                args.purpose,
            ]
        else:
            cmd = [
                *PGOV,
                "refresh",
                "--all-jurisdictions",
                "--purpose",
                args.purpose,
                "--actor",
                ALL_ACTORS.get(args.purpose, ANALYST),
                "--as-of",
                AS_OF,
                "--executor",
                args.executor,
                "--workers",
                str(args.workers),
                *(["--memory-budget", args.memory_budget] if args.executor == "local" else []),
                "--timeout",
                str(args.timeout),
                "-w",
                str(tw.root),
                "--json",
            ]
        print(
            f"running on {data_ws} ({_count(_customers(data_ws))} customers): "
            f"{' '.join(Path(c).name if c.startswith('/') else c for c in cmd[1:])}",
            flush=True,
        )
        with _locked(args.lock):
            m = measure(cmd, tw.env)
        _details(args, m)
        _timeline(args, tw.root)
        if not args.steady:
            return [m]
        # The same command again on the same workspace: every chain gets its second
        # version, the kyc token vault already holds every value (only new ones are
        # encrypted), and the local pool estimates each job from its measured first peak.
        print("steady: the same command again on the same workspace", flush=True)
        with _locked(args.lock):
            again = measure(cmd, tw.env)
        _details(args, again)
        _timeline(args, tw.root)
    return [m, again]


# The local pool's decisions, from the workspace's log (engine/executors/local.py).
_POOL_EVENTS = (
    "job_admitted",
    "job_waiting_at_stage",
    "job_stage_granted",
    "job_reestimated",
    "job_finished",
)


def _timeline(args: argparse.Namespace, root: Path) -> None:
    """The last fan-out's job timeline: when each job started (in full or staged, with what
    it reserved), waited for a stage's memory, went on, and ended; and how long two jobs or
    more were running at once."""
    if args.command != "all" or args.executor != "local":
        return
    try:
        lines = (root / "logs" / "pgov.jsonl").read_text().splitlines()
    except OSError:
        return
    events = []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "local_pool":
            events = []  # only the last fan-out
        elif e.get("event") in _POOL_EVENTS and "at_s" in e:
            events.append(e)
    if not events:
        return
    print("  job timeline (s from the pool's start):")
    spans: dict[str, list[float]] = {}
    for e in events:
        job, at = e["job"].split("/")[0], float(e["at_s"])
        kind = e["event"]
        if kind == "job_admitted":
            spans[job] = [at, at]
            how = "staged" if e.get("staged") else "in full"
            text = (
                f"start {how}, reserves {e.get('reserved_gib')} of {e.get('estimate_gib')} GiB, "
                f"threads {e.get('threads')}, beside {','.join(e.get('running') or []) or '-'}"
            )
        elif kind == "job_waiting_at_stage":
            text = f"waits after {e['stage']} (committed {e.get('committed_gib')} GiB)"
        elif kind == "job_stage_granted":
            text = f"goes on after {e['after']}, reserves {e.get('reserved_gib')} GiB"
        elif kind == "job_reestimated":
            staged = ", with stage windows" if e.get("staged") else ""
            text = (
                f"estimated again after {e['after'].split('/')[0]}: {e.get('from_gib')} -> "
                f"{e.get('estimate_gib')} GiB ({e.get('basis')}{staged})"
            )
            print(f"    {at:7.1f}  {job:<6} {text}")
            continue
        else:
            spans.setdefault(job, [at, at])[1] = at
            text = f"ends ({e.get('seconds')} s, ok={e.get('ok')})"
        print(f"    {at:7.1f}  {job:<6} {text}")
    points = sorted({t for span in spans.values() for t in span})
    together = sum(
        b - a
        for a, b in itertools.pairwise(points)
        if sum(1 for s0, s1 in spans.values() if s0 <= a and s1 >= b) >= 2
    )
    print(f"  two or more jobs running for {together:.1f} s of {points[-1] - points[0]:.1f} s")


def _details(args: argparse.Namespace, m: Measured) -> None:
    # At once (and flushed): a long --steady run shows its first figure while the second runs.
    print(
        f"  this run: wall {m.wall:.1f} s, cpu {m.cpu:.1f} s, tree peak {m.tree_peak_gib:.2f} "
        f"GiB, exit {m.returncode}",
        flush=True,
    )
    if args.command == "eu-de":
        print(m.stdout.rstrip(), flush=True)
        return
    try:
        rows = json.loads(m.stdout)
    except ValueError:
        rows = []
        print(m.stdout[-4000:])
    pids: dict[int, str] = {}
    for r in rows:
        pid = re.match(r"pid (\d+)", r.get("worker") or "")
        if pid:
            pids[int(pid.group(1))] = r["jurisdiction"]
        peak = m.processes_gib.get(int(pid.group(1)), (0.0, 0.0))[0] if pid else 0.0
        print(
            f"  {r['jurisdiction']:<6} {r['seconds']:>8.1f} s  peak {peak:5.2f} GiB  "
            f"ok={r['ok']} validity={r.get('validity')} exit={r['exit_code']} "
            f"worker={r.get('worker')}" + (f" error={r['error']}" if r.get("error") else "")
        )
    at_peak = sorted(
        (
            (pids.get(pid, f"pid {pid} ({m.names.get(pid, '?')})"), now)
            for pid, (_, now) in m.processes_gib.items()
            if now
        ),
        key=lambda x: -x[1],
    )
    print(
        "  at the tree's peak: "
        + ", ".join(f"{name} {gib:.2f} GiB" for name, gib in at_peak if gib >= 0.05),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("command", choices=["eu-de", "all", "ratio"])
    ap.add_argument("--data", type=Path, required=True, help="the 10M (or N) sample workspace")
    ap.add_argument("--small", type=Path, help="ratio: the 1M (or N/10) sample workspace")
    ap.add_argument(
        "--purpose",
        default="marketing_segmentation",
        choices=["marketing_segmentation", "kyc_aml", "credit_risk_segmentation"],
    )
    ap.add_argument("--jurisdiction", default="EU-DE", help="eu-de: which jurisdiction")
    ap.add_argument("--executor", default="local", choices=["sequential", "local"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--memory-budget",
        default="10G",
        help="local pool: pgov refresh --memory-budget (the issue's 10 GiB by default)",
    )
    ap.add_argument("--timeout", type=float, default=7200.0, help="per job, seconds")
    ap.add_argument("--tmp-parent", type=Path, help="where temp workspaces go")
    ap.add_argument("--keep", action="store_true", help="keep the temp workspace(s)")
    ap.add_argument(
        "--lock",
        type=Path,
        help="hold an exclusive flock on this file while each run measures (e.g. the 10M lock)",
    )
    ap.add_argument(
        "--steady",
        action="store_true",
        help="run the command a second time on the same temp workspace and report both: the "
        "first refresh of each chain (kyc_aml: the token vault files every value once) and a "
        "steady one (values already in the vault; the pool knows each job's measured peak)",
    )
    args = ap.parse_args()
    _header(args)
    if args.command == "ratio":
        if args.small is None:
            ap.error("ratio needs --small (the N/10 sample workspace)")
        args.command = "all"
        smalls = run_one(args, args.small)
        larges = run_one(args, args.data)
        labels = _RUNS if args.steady else ("",)
        for run, small, large in zip(labels, smalls, larges, strict=True):
            _report(f"all {args.purpose} on {args.small.name}{run}", small, None)
            _report(f"all {args.purpose} on {args.data.name}{run}", large, None)
            print(
                f"RESULT time(10M)/time(1M){run} {args.purpose} ({args.executor}, "
                f"{args.workers} workers): {large.wall / small.wall:.2f} wall, "
                f"{large.cpu / small.cpu:.2f} cpu (target <= 11)"
            )
        return
    runs = run_one(args, args.data)
    label = f"{args.jurisdiction if args.command == 'eu-de' else 'all'} {args.purpose}"
    if args.command == "all":
        label += f" ({args.executor}, {args.workers} workers)"
    key = (args.command, args.purpose)
    # The targets are for EU-DE of the 10M sample.
    ten_million = (_customers(args.data) or 0) >= 10_000_000
    target = TARGETS.get(key) if ten_million and args.jurisdiction == "EU-DE" else None
    for run, m in zip(_RUNS if args.steady else ("",), runs, strict=True):
        _report(label + run, m, target)
    failed = next((m.returncode for m in runs if m.returncode != 0), 0)
    if failed:
        raise SystemExit(failed)


if __name__ == "__main__":
    main()
