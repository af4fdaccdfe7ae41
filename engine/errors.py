"""Errors users see, each with a documented exit code.

Messages name the file, row and field that failed, never a raw value: a value may be
personal data, so errors carry locations and reason codes only.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    POLICY_DENIED = 3
    VERIFICATION_FAILED = 4
    BAD_INPUT = 5
    KEY_ERROR = 6
    GATE_FAILED = 7
    LOCKED = 8
    STORAGE = 9
    DELIVERY = 10


# Most severe first: the exit of a command that ran several jobs (refresh
# --all-jurisdictions) is the first code of this order that any job produced. Integrity and
# key problems outrank everything (nothing can be trusted); then storage; then an undelivered
# legal obligation; then crashes; then refusals; a lock (retry later) and a version stored as
# invalid (by design) come last. Documented in the README exit-code table.
SEVERITY: tuple[ExitCode, ...] = (
    ExitCode.VERIFICATION_FAILED,
    ExitCode.KEY_ERROR,
    ExitCode.STORAGE,
    ExitCode.DELIVERY,
    ExitCode.INTERNAL,
    ExitCode.POLICY_DENIED,
    ExitCode.BAD_INPUT,
    ExitCode.USAGE,
    ExitCode.LOCKED,
    ExitCode.GATE_FAILED,
)


def most_severe(codes: list[int]) -> int:
    """The aggregate exit code of several jobs (0 when every job was 0)."""
    present = {int(c) for c in codes if int(c) != 0}
    if not present:
        return 0
    for code in SEVERITY:
        if int(code) in present:
            return int(code)
    return int(ExitCode.INTERNAL)


class PgovError(Exception):
    """Base of every error shown to a user (the CLI prints the message, no traceback)."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class UsageError(PgovError):
    exit_code = ExitCode.USAGE


class ConfigError(PgovError):
    """pgov.toml is missing or invalid; message names the file and the key."""

    exit_code = ExitCode.USAGE


class BadInputError(PgovError):
    """Input data cannot be read at all (missing file, wrong format, missing column)."""

    exit_code = ExitCode.BAD_INPUT


class PolicyDenied(PgovError):
    """The policy layer refused (including every engine failure: fail closed)."""

    exit_code = ExitCode.POLICY_DENIED

    def __init__(self, message: str, *, reasons: list[str] | None = None) -> None:
        self.reasons = list(reasons or [])
        super().__init__(message, reason=self.reasons[0] if self.reasons else None)


class PolicyError(PolicyDenied):
    """The policy engine failed or answered something unusable: treated as a deny."""


class VerificationFailed(PgovError):
    exit_code = ExitCode.VERIFICATION_FAILED


class KeyMaterialError(PgovError):
    """A key is missing, short, malformed, of unknown version or has loose permissions."""

    exit_code = ExitCode.KEY_ERROR


class GateFailed(PgovError):
    exit_code = ExitCode.GATE_FAILED


class LockedError(PgovError):
    """Another refresh of the same jurisdiction and purpose holds the lock."""

    exit_code = ExitCode.LOCKED


class StorageError(PgovError):
    """The disk is full or an I/O error happened; nothing was left half-written."""

    exit_code = ExitCode.STORAGE


class DeliveryFailed(PgovError):
    """A sink or activation destination refused or could not be reached after every retry
    (dead letter): visible, audited, never silent."""

    exit_code = ExitCode.DELIVERY


# Errors that mean "the storage could not take it" rather than a bug: disk or quota full,
# I/O error, read-only filesystem.
STORAGE_ERRNOS = frozenset({28, 5, 122, 30})  # ENOSPC, EIO, EDQUOT, EROFS


def storage_error(exc: BaseException) -> StorageError | BaseException:
    """A StorageError (exit 9) for a full disk or an I/O error; anything else as is.

    Polars (Rust) reports a full disk inside its own error type, with the OS error number in
    the message ("... No space left on device (os error 28)"): that is a full disk too."""
    import errno
    import os
    import re

    if not isinstance(exc, OSError):
        m = re.search(r"\(os error (\d+)\)", str(exc))
        if m is None or int(m.group(1)) not in STORAGE_ERRNOS:
            return exc
        code = int(m.group(1))
        return StorageError(
            f"storage full or I/O error ({errno.errorcode.get(code, 'EIO')}: "
            f"{os.strerror(code)}); nothing was half-written: free space and run the command "
            "again"
        )
    if exc.errno not in STORAGE_ERRNOS:
        return exc
    where = f" writing {os.path.basename(str(exc.filename))}" if exc.filename else ""
    name = errno.errorcode.get(exc.errno or 0, "EIO")
    return StorageError(
        f"storage full or I/O error{where} ({name}: {exc.strerror}); nothing was half-written: "
        "free space and run the command again"
    )


class InfrastructureError(PgovError):
    """The execution environment cannot run the job (e.g. no Dask worker serves a region):
    a deployment/configuration problem, not a policy decision."""

    exit_code = ExitCode.USAGE


def exit_code_of(exc: BaseException) -> int:
    """The README exit code an exception stands for (disk full / I/O error -> 9)."""
    import errno

    if isinstance(exc, PgovError):
        return int(exc.exit_code)
    if isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
    ):
        return int(ExitCode.STORAGE)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return int(ExitCode.INTERNAL)
