"""What the local pool may start, and when a running job may enter its next stage.

A pure ledger (no processes, no clock): engine/executors/local.py feeds it the jobs'
estimates and the stage events its children send, and does what it answers.

Why stages. A refresh's memory is high only in some stages: at 10M, kyc_aml, EU-DE's
steady peaks per stage are sources 4.4, enforce 7.6, features 7.6, segment 4.4, kyc 2.4
GiB. Reserving a job's whole peak for its whole life (the rule before) let the large kyc
jobs run one at a time beside a 10 GiB budget, and one job alone keeps about 1.2 of the two
cores busy. So each running job holds a *reservation*, and the reservations together never
exceed the budget:

- A job with stage peaks (memory.py, measured on an earlier run) reserves the largest peak
  of the stages it has still to run; as each stage ends its child says so over the pipe and
  the reservation shrinks. Without stage peaks, or after a stage the history does not name,
  it reserves its whole estimate (fail safe: the rule before).
- A job whose whole estimate fits beside the others' reservations starts *in full* (as
  before, largest first; small ones fill beside large ones).
- Otherwise one job may start *staged*, when every running job is in full: it reserves
  only the stage it is about to run and, at the end of each stage, waits (blocked, holding
  what it has, which is within what it reserved) until the next stage's peak fits. As soon
  as its whole remaining peak fits, it is in full. So the next large job's process start,
  policy and sources run while the previous one finishes its features, segment and kyc,
  and its enforce waits until the memory is there.

Weighed and not built (docs/performance.md, "Staged admission"): planning the whole
schedule up front (each large job paired with small ones, longest first with memory as a
constraint). With whole-job reservations, of the ten 10M kyc_aml jobs (4.5-8.4 GiB with the
margin against 9.65) only a few small pairs fit together at all (EU-FR or US-CA or BR with
SG or EU-NL, EU-IT or EU-ES with US-NY): the five largest run alone under any plan, so a
plan can only move those pairs around, where staging overlaps every hand-over between two
large jobs. Lowering the margin (memory.MARGIN): measured at 1M, a steady window reached
1.04x its estimate and a whole job 1.01x (EU-IT 0.78 GiB with one thread, then 0.86 with
two; BR 0.82 then 0.87 with one both times): repeat runs differ by up to 10 %, so 1.1 stays.

No deadlock: jobs in full never wait, their reservations only shrink until they end, and
at most one job is staged, so it waits only for jobs that will end; alone, its remaining
peak is at most its whole estimate, which fits the budget (a job larger than the budget
only ever runs alone, in full). No step is taken on an estimate the history does not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# A child's window after its last stage event (approval, delivery, exit).
TAIL = "exit"


@dataclass(frozen=True)
class Need:
    """One job's estimated peaks: the whole job, and per stage window if measured."""

    whole: int
    stages: tuple[tuple[str, int], ...] | None = None

    def first(self) -> int:
        """The peak up to the first stage event: what a staged start must reserve."""
        return self.stages[0][1] if self.stages else self.whole

    def _at(self, stage: str) -> int | None:
        names = [n for n, _ in self.stages or ()]
        return names.index(stage) if stage in names else None

    def remaining(self, done: str | None) -> int:
        """Largest peak of the windows after stage ``done`` ended (None: nothing ended yet).
        Unknown stage, or nothing known after it: the whole estimate."""
        if done is None:
            return self.whole
        i = self._at(done)
        if i is None or self.stages is None or i + 1 >= len(self.stages):
            return self.whole
        return max(b for _, b in self.stages[i + 1 :])

    def following(self, done: str) -> int:
        """The peak of the one window after stage ``done`` (unknown: the whole estimate)."""
        i = self._at(done)
        if i is None or self.stages is None or i + 1 >= len(self.stages):
            return self.whole
        return self.stages[i + 1][1]


@dataclass
class Slot:
    need: Need
    reserved: int
    full: bool  # reserves everything it has still to run: never waits
    done: str | None = None  # the last stage it said it finished
    waiting: bool = False  # blocked at the end of ``done`` until its next stage fits


@dataclass
class Ledger:
    """Reservations of the running jobs against the budget (None: no memory limit)."""

    budget: int | None
    slots: dict[int, Slot] = field(default_factory=dict)

    def committed(self, excluding: int | None = None) -> int:
        return sum(s.reserved for i, s in self.slots.items() if i != excluding)

    def fits(self, extra: int, excluding: int | None = None) -> bool:
        return self.budget is None or self.committed(excluding) + extra <= self.budget

    def staged_running(self) -> bool:
        return any(not s.full for s in self.slots.values())

    def start(self, job: int, need: Need, staged: bool) -> int:
        """Record a start; returns what it reserves."""
        reserved = need.first() if staged else need.whole
        self.slots[job] = Slot(need, reserved, full=not staged)
        return reserved

    def end(self, job: int) -> None:
        self.slots.pop(job, None)

    def stage_done(self, job: int, stage: str) -> bool:
        """A job finished ``stage``: may it go on now? (False: it waits; see settle)."""
        s = self.slots[job]
        s.done = stage
        if s.full:
            # Only ever less, except after a stage the history does not name: then the whole
            # estimate again (admission stops until that fits; nothing can be undone).
            s.reserved = s.need.remaining(stage)
            return True
        s.waiting = True
        self.settle()
        return not s.waiting

    def settle(self) -> list[int]:
        """Promote and release staged jobs as far as the budget allows, oldest first; returns
        the jobs that were waiting and may now go on."""
        released: list[int] = []
        for i, s in list(self.slots.items()):
            if s.full:
                continue
            rest = s.need.remaining(s.done)
            if self.fits(rest, excluding=i):
                s.reserved, s.full = rest, True
            elif s.waiting and s.done is not None:
                nxt = s.need.following(s.done)
                if not self.fits(nxt, excluding=i):
                    continue
                # A window's measured peak includes what the process held as it began, so
                # the next window's estimate covers what this job holds while it waits.
                s.reserved = nxt
            else:
                continue
            if s.waiting:
                s.waiting = False
                released.append(i)
        return released


def pick(
    pending: Sequence[int],
    needs: Sequence[Need],
    ledger: Ledger,
) -> tuple[int, bool] | None:
    """The next job to start and whether it starts staged, or None. ``pending`` is in the
    pool's order (largest first). In full: the first that fits beside the reservations.
    Staged: the first with stage peaks whose first window fits, if every running job is in
    full and its whole estimate alone fits the budget."""
    for i in pending:
        if ledger.fits(needs[i].whole):
            return i, False
    if ledger.staged_running() or not ledger.slots:
        return None
    for i in pending:
        n = needs[i]
        alone = ledger.budget is None or n.whole <= ledger.budget
        if n.stages and alone and ledger.fits(n.first()):
            return i, True
    return None
