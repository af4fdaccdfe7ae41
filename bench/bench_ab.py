"""Two checkouts' refreshes of the same workspace, alternating: an A/B that a drifting
machine cannot fake.

    python bench/bench_ab.py --before ../old-checkout --after . --workspace WS1M
    python bench/bench_ab.py --before B --after A --workspace WS --purpose kyc_aml --rounds 3

This VM's speed drifts by 10-20 % within an hour (docs/performance.md), so a figure taken
before a change and one taken after it compare the machine as much as the code. Here each
round runs one child process per checkout (its own code, on PYTHONPATH), each doing one
warm-up refresh then `--runs` refreshes of the same jurisdiction in the same workspace, and
the rounds alternate the checkouts. Printed per child: the median wall seconds, the median
of each stage, the runs, and a digest of the last version's assignments and personas, which
must be the same for both checkouts when a change claims to keep the outputs. Both
checkouts need their native library built (`make .venv/.installed` in each, or
`python -c "import hatch_build, pathlib; hatch_build.build(pathlib.Path('.'))"`).

The workspace must have its keys and actor credentials (`pgov keys init`); every refresh
adds a version to its chain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

_CHILD = r"""
import hashlib, json, statistics, sys
from pathlib import Path
tree, root, purpose, jurisdiction, runs = sys.argv[1:6]
sys.path[:0] = [tree, tree + "/bench"]
import engine
assert engine.__file__.startswith(tree), engine.__file__
from bench_baseline import AS_OF, _analyst, _refresh
from engine.config import Purpose
from engine.logs import configure_logging
from engine.request import RefreshRequest
from engine.workspace import Workspace
configure_logging(None, None, "WARNING")
ws = Workspace.open(Path(root))
p = Purpose(purpose)
actor = "compliance-lead" if p is Purpose.KYC_AML else _analyst(ws, jurisdiction)
req = RefreshRequest(actor=actor, jurisdiction=jurisdiction, purpose=p, as_of=AS_OF)
_refresh(ws, req)
walls, stages = [], {}
for _ in range(int(runs)):
    wall, _cpu, result, _st = _refresh(ws, req)
    walls.append(wall)
    for k, v in result.seconds.items():
        stages.setdefault(k, []).append(v)
chain = sorted((Path(root) / "versions" / jurisdiction / p.value).iterdir())
last = [d for d in chain if d.is_dir() and not d.name.startswith(".")][-1]
h = hashlib.sha256()
for name in ("assignments.parquet", "personas.json"):
    h.update((last / name).read_bytes())
print(json.dumps({
    "wall": statistics.median(walls),
    "stages": {k: round(statistics.median(v), 3) for k, v in stages.items()},
    "walls": [round(w, 3) for w in walls],
    "digest": h.hexdigest()[:16],
}))
"""


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout measured first")
    ap.add_argument("--after", type=Path, required=True, help="checkout measured second")
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--purpose", default="marketing_segmentation")
    ap.add_argument("--jurisdiction", default="EU-DE")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {_load()}")
    digests: dict[str, set[str]] = {}
    for r in range(args.rounds):
        for label, tree in (("before", args.before), ("after", args.after)):
            tree = tree.resolve()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    str(tree),
                    str(args.workspace.resolve()),
                    args.purpose,
                    args.jurisdiction,
                    str(args.runs),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"{label} ({tree}) failed: {out.stderr.strip()[-2000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            digests.setdefault(label, set()).add(res["digest"])
            stages = " ".join(f"{k}={v:.2f}" for k, v in res["stages"].items())
            print(
                f"round {r + 1} {label:6} {res['wall']:.2f} s median ({stages}) "
                f"runs {res['walls']} digest {res['digest']} {_load()}",
                flush=True,
            )
    same = digests.get("before") == digests.get("after")
    print(f"outputs {'identical' if same else 'DIFFERENT'}: {digests}")


if __name__ == "__main__":
    main()
