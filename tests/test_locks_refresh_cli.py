"""`pgov refresh` of a jurisdiction and purpose another process is refreshing: exit 8, holder named.

Other jurisdictions and purposes are not blocked by that holder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_crash_refresh import ACTOR, AS_OF, _pgov, _sample_workspace
from test_locks_support import HolderProcess


@pytest.mark.slow
def test_refresh_of_a_locked_chain_exits_8_naming_the_holder(tmp_path: Path) -> None:
    ws = _sample_workspace(tmp_path / "ws", customers=1000)
    holder = HolderProcess(ws.root, "UK", "kyc_aml", actor="uk-night-batch")
    try:
        args = ["-a", ACTOR, "--as-of", AS_OF, "-w", str(ws.root)]
        locked = _pgov("refresh", "-j", "UK", "-p", "kyc_aml", *args)
        assert locked.returncode == 8, locked.stderr[-2000:]
        err = " ".join(locked.stderr.split())  # rich wraps long lines
        assert f"pid {holder.pid}" in err and "uk-night-batch" in err
        assert not ws.versions_dir("UK", "kyc_aml").exists() or not any(
            p for p in ws.versions_dir("UK", "kyc_aml").iterdir() if p.name.startswith("v")
        )
        other = _pgov("refresh", "-j", "SG", "-p", "kyc_aml", *args)
        assert other.returncode in (0, 7), other.stderr[-2000:]
    finally:
        holder.stop()
    after = _pgov("refresh", "-j", "UK", "-p", "kyc_aml", *args)
    assert after.returncode in (0, 7), after.stderr[-2000:]
