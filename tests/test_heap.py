"""The collector kept off what a refresh process keeps for good (engine/heap.py): imports
under `held` leave nothing for the next collection to walk, the switch turns it all off,
and a refresh publishes the same bytes either way.

Each case runs in a process of its own: freezing cannot be undone for the test process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from test_byod_support import AS_OF, credit_table

from engine.errors import ExitCode

PROBE = """
import gc, json, os, sys
from engine import heap
before = gc.get_freeze_count()
with heap.held():
    off_inside = not gc.isenabled()
    junk = [[i] for i in range(50_000)]  # tracked containers, as a module's import builds
frozen = gc.get_freeze_count() - before
with heap.held():
    try:
        with heap.held():
            raise KeyError("inner")
    except KeyError:
        nested_on = gc.isenabled()
first, second = heap.freeze_once(), heap.freeze_once()
print(json.dumps({"off_inside": off_inside, "frozen": frozen, "on_after": gc.isenabled(),
                  "nested_on": nested_on, "first": first, "second": second}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_held_imports_are_frozen_and_the_collector_comes_back() -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PGOV_GC_FREEZE"}
    got = _probe(env)
    assert got["off_inside"] is True and got["on_after"] is True
    assert int(str(got["frozen"])) >= 50_000  # the block's objects left the collector's reach
    assert got["nested_on"] is False  # an inner block under an outer one changes nothing
    assert (got["first"], got["second"]) == (True, False)  # once per process


def test_the_switch_leaves_the_collector_as_cpython_has_it() -> None:
    import os

    got = _probe({**os.environ, "PGOV_GC_FREEZE": "off"})
    assert got["off_inside"] is False and got["frozen"] == 0
    assert (got["first"], got["second"]) == (False, False)


def _published(root: Path, env: dict[str, str]) -> dict[str, str]:
    args = ["refresh", "-w", str(root), "-j", "UK", "-p", "credit_risk_segmentation",
            "-a", "analyst", "--as-of", AS_OF, "--json"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", "from engine.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode in (0, ExitCode.GATE_FAILED), done.stderr
    manifest = json.loads((Path(json.loads(done.stdout)["path"]) / "manifest.json").read_text())
    return dict(manifest["outputs"])


def test_a_refresh_publishes_the_same_bytes_with_the_heap_frozen_or_not(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PGOV_GC_FREEZE"}
    root = credit_table(tmp_path / "a", n=600)
    twin = tmp_path / "b"  # same keys, so the same tokens
    shutil.copytree(root, twin)
    frozen = _published(root, env)
    plain = _published(twin, {**env, "PGOV_GC_FREEZE": "off"})
    assert frozen and frozen == plain
