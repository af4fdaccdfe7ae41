"""Ending `pgov` without the interpreter's teardown (engine/process_exit.py): what a command
wrote is all there once the process has exited, and the exit code is the command's.

Every test runs a real process: `exit_now` ends the process it runs in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from test_byod_support import AS_OF, credit_table

from engine.errors import ExitCode

PGOV = [sys.executable, "-c", "from engine.cli import main; main()"]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_buffered_writes_and_atexit_handlers_survive_and_the_code_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "buffered.txt"
    marker = tmp_path / "atexit.txt"
    done = _run(
        """
        import atexit, sys
        from pathlib import Path
        from engine.process_exit import exit_now
        out, marker = Path(sys.argv[1]), Path(sys.argv[2])
        atexit.register(marker.write_text, "handler ran")
        fh = out.open("w")  # never flushed nor closed by the script
        fh.write("x" * 100_000 + "end")
        print("to stdout", end="")  # no newline: still in the buffer
        exit_now(3)
        sys.exit(99)  # not reached
        """,
        str(out),
        str(marker),
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "to stdout"
    assert out.read_text() == "x" * 100_000 + "end"
    assert marker.read_text() == "handler ran"


def test_a_file_opened_before_the_heap_is_frozen_is_still_flushed(tmp_path: Path) -> None:
    # engine/heap.py freezes what lives for good; frozen objects leave gc.get_objects(), the
    # list exit_now walks to flush open files.
    out = tmp_path / "frozen.txt"
    done = _run(
        """
        import gc, sys
        from pathlib import Path
        from engine.process_exit import exit_now
        fh = Path(sys.argv[1]).open("w")
        fh.write("y" * 50_000 + "end")
        gc.freeze()
        assert fh not in gc.get_objects()
        exit_now(0)
        """,
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "y" * 50_000 + "end"


def test_a_thread_still_working_makes_it_return_and_the_exit_is_normal(tmp_path: Path) -> None:
    out = tmp_path / "thread.txt"
    done = _run(
        """
        import sys, threading
        from pathlib import Path
        from engine.process_exit import exit_now
        go = threading.Event()
        def work():
            go.wait(60)
            Path(sys.argv[1]).write_text("thread finished")
        threading.Thread(target=work).start()  # not a daemon: the process waits for it
        exit_now(0)
        print("returned")
        go.set()
        sys.exit(4)
        """,
        str(out),
    )
    assert (done.returncode, done.stdout.strip()) == (4, "returned"), done.stderr
    assert out.read_text() == "thread finished"


def test_pgov_refresh_outputs_verify_after_the_process_exits(tmp_path: Path) -> None:
    root = credit_table(tmp_path / "ws", n=600)
    args = ["refresh", "-w", str(root), "-j", "UK", "-p", "credit_risk_segmentation",
            "-a", "analyst", "--as-of", AS_OF, "--json"]  # fmt: skip
    done = subprocess.run(
        [*PGOV, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, ExitCode.GATE_FAILED), done.stderr
    summary = json.loads(done.stdout)
    assert summary["verified"] is True
    # Read back by other processes: the version, its lineage and the audit log are whole.
    verify = subprocess.run(
        [*PGOV, "lineage", "verify", "--all", "-w", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    audit = subprocess.run(
        [*PGOV, "audit", "verify", "-w", str(root)], capture_output=True, text=True, timeout=300
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    version = Path(summary["path"])
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["version_id"] == summary["version_id"]
    # The structured log written through a file object kept open: every line complete.
    lines = (root / "logs" / "pgov.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)


def test_a_refused_command_keeps_its_exit_code_and_message(tmp_path: Path) -> None:
    root = credit_table(tmp_path / "ws", n=200)
    args = ["refresh", "-w", str(root), "-j", "XX", "-p", "credit_risk_segmentation",
            "-a", "analyst", "--as-of", AS_OF]  # fmt: skip
    done = subprocess.run(
        [*PGOV, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == ExitCode.USAGE
    assert "unknown jurisdiction 'XX'" in done.stderr
