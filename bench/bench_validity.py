"""Validity of the sample's 20 demo versions: every jurisdiction x (marketing, kyc_aml).

    python bench/bench_validity.py --customers 50000 --seed 7
    python bench/bench_validity.py --workspace DIR   # an existing sample workspace (kept)

Generates a sample workspace, refreshes every jurisdiction under both purposes and prints,
per version, whether every gate passed, the chosen k, the stability figures of the
candidates checked and the gate values, plus the segmentation CPU seconds in all. Run it
from two trees (PYTHONPATH=...) to check that a change to model selection keeps the same
validity: that is how the segmentation speed-ups were checked. Compare trees on copies of
one workspace (--workspace): a new workspace has new keys, so new tokens, a different row
order and a different fitting sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from engine.config import Purpose
from engine.logs import configure_logging
from engine.pseudonym.lifecycle import init_keys
from engine.request import RefreshRequest
from engine.sample import generate
from engine.sample.workspace import init_workspace
from engine.workspace import Workspace

AS_OF = date(2026, 11, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workspace", type=Path, help="use (and keep) this sample workspace")
    args = ap.parse_args()
    configure_logging(None, None, "WARNING")
    import engine.segment as seg_mod
    from engine.refresh import run_refresh

    spent = [0.0]
    params: list[dict[str, Any]] = []
    real = seg_mod.segment

    def timed(*a: Any, **k: Any) -> Any:
        c = time.process_time()
        out = real(*a, **k)
        spent[0] += time.process_time() - c
        params.append(out.params)
        return out

    seg_mod.segment = timed
    root = args.workspace or Path(tempfile.mkdtemp(prefix="pgov-bench-valid-"))
    try:
        if not (root / "pgov.toml").exists():
            init_workspace(root, "parquet")
            init_keys(Workspace.open(root))
            generate(args.customers, args.seed, root / "data", "parquet", as_of=AS_OF)
        ws = Workspace.open(root)
        valid = 0
        for j in ws.config.jurisdictions:
            for purpose in (Purpose.MARKETING, Purpose.KYC_AML):
                actor = "compliance-lead" if purpose is Purpose.KYC_AML else _analyst(ws, j)
                req = RefreshRequest(actor=actor, jurisdiction=j, purpose=purpose, as_of=AS_OF)
                result = run_refresh(ws, req)
                p = params[-1]
                valid += int(result.valid)
                print(
                    json.dumps(
                        {
                            "version": f"{j}/{purpose.value}",
                            "valid": result.valid,
                            "k": p.get("k"),
                            "k_stability": p.get("k_stability"),
                            "k_scores": p.get("k_scores"),
                            "invalid_reasons": result.manifest.get("invalid_reasons"),
                        }
                    )
                )
        print(
            f"valid {valid}/{2 * len(ws.config.jurisdictions)}; segmentation cpu "
            f"{spent[0]:.1f} s; load {os.getloadavg()[0]:.1f}"
        )
    finally:
        if args.workspace is None:
            shutil.rmtree(root, ignore_errors=True)


def _analyst(ws: Workspace, jurisdiction: str) -> str:
    for actor, spec in ws.config.actors.items():
        roles = [r.value for r in spec.roles]
        if "regional_analyst" in roles and jurisdiction in spec.jurisdictions:
            return actor
    raise SystemExit(f"no analyst serves {jurisdiction}")


if __name__ == "__main__":
    main()
