"""A verifier's own memory of the audit log: the newest checkpoint it has seen, kept OUTSIDE
the workspace.

Checkpoints inside the workspace only prove the log is consistent with itself: whoever can
write the workspace can roll the log back to an old checkpoint (and delete the versions
published since) and every file still agrees. A verifier that remembers the newest
checkpoint it saw catches that: the log must still contain that tree as a prefix. After a
clean verification the pin moves forward to the log's latest checkpoint (never back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import PgovError, UsageError
from lineage.checkpoint import parse_checkpoint, verify_checkpoint
from lineage.merkle import MerkleTree
from lineage.report import VerificationReport
from lineage.signing import TrustStore, atomic_write


def inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Pin:
    path: Path

    def check(
        self, trust: TrustStore, leaves: list[bytes], workspace: Path, rep: VerificationReport
    ) -> None:
        if inside(self.path, workspace):
            raise UsageError(
                f"{self.path}: a pinned checkpoint inside the workspace rolls back with it; "
                "keep it outside"
            )
        if not self.path.is_file():
            rep.passed(
                "pinned-checkpoint",
                f"no pinned checkpoint at {self.path} yet: trusting the log on first use "
                "(the pin is written after this verification)",
            )
            return
        try:
            vc = verify_checkpoint(self.path.read_bytes(), trust, str(self.path))
        except PgovError as exc:
            rep.failed("pinned-checkpoint", f"{self.path}: {exc.message}")
            return
        size, root = vc.checkpoint.size, vc.checkpoint.root
        if size > len(leaves):
            rep.failed(
                "pinned-checkpoint",
                f"the log holds {len(leaves)} entries but this verifier already saw a signed "
                f"checkpoint of {size}: the log was rolled back or truncated",
            )
            return
        if MerkleTree(leaves[:size]).root() != root:
            rep.failed(
                "pinned-checkpoint",
                f"the log's first {size} entries no longer hash to the checkpoint this verifier "
                "saw before: history was rewritten",
            )
            return
        rep.passed(
            "pinned-checkpoint",
            f"the log extends the checkpoint of {size} entries this verifier saw before",
        )

    def advance(self, latest: bytes | None) -> None:
        """Remember the log's latest checkpoint, if it is newer than the pinned one."""
        if latest is None:
            return
        new = parse_checkpoint(latest, "checkpoints/latest")[0]
        if self.path.is_file():
            old = parse_checkpoint(self.path.read_bytes(), str(self.path))[0]
            if old.size >= new.size:
                return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, latest)
