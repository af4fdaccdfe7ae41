"""Audit log figures: appends/s (single durable appends and grouped appends), full
verification time of a large log, proof sizes. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_audit.py                 # 1M-entry log
    .venv/bin/python bench/bench_audit.py --entries 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lineage.auditlog import AuditLog, verify_inclusion_proof
from lineage.canonical import canonical_json
from lineage.merkle import MerkleTree
from lineage.signing import SigningKeyring


def _entries(start: int, n: int) -> list[bytes]:
    base = datetime.now(UTC)  # stamped at generation, like engine/audit.py: times move forward
    out = []
    for i in range(start, start + n):
        t = (base + timedelta(microseconds=i - start)).isoformat(timespec="microseconds")
        out.append(
            canonical_json(
                {
                    "type": "refresh_requested",
                    "actor": f"analyst-{i % 7}",
                    "time": t,
                    "details": {"jurisdiction": "EU-DE", "purpose": "kyc_aml", "seq": i},
                }
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--single", type=int, default=2_000, help="single durable appends to time")
    ap.add_argument("--batch", type=int, default=10_000, help="entries per grouped append")
    ap.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    args = ap.parse_args()

    root = args.dir or Path(tempfile.mkdtemp(prefix="pgov-bench-audit-"))
    load = os.getloadavg()[0]
    print(
        f"bench_audit: {args.entries:,} entries in {root}  "
        f"(cpus={os.cpu_count()}, load average {load:.1f}: wall figures shrink with it)"
    )
    kr = SigningKeyring(root / "keys" / "signing", root / "keys" / "trust.json")
    kr.init()
    trust = kr.trust()
    signer = kr.signer()

    # 1. One durable append per call (fsync each), as engine.audit.record does.
    single = AuditLog(root / "single")
    es = _entries(0, args.single)
    t = time.perf_counter()
    for e in es:
        AuditLog(root / "single").append(e)  # new object per call, like engine/audit.py
    dt = time.perf_counter() - t
    print(f"single durable appends (fsync each, new AuditLog per call): {len(es) / dt:,.0f}/s")
    t = time.perf_counter()
    es2 = _entries(args.single, args.single)
    for e in es2:
        single.append(e)
    dt = time.perf_counter() - t
    print(f"single durable appends (one AuditLog object):              {len(es2) / dt:,.0f}/s")

    # 2. Grouped appends: one lock and one fsync per batch.
    log = AuditLog(root / "big")
    gen_s = 0.0
    t = time.perf_counter()
    done = 0
    cp_sizes: list[int] = []
    while done < args.entries:
        n = min(args.batch, args.entries - done)
        g = time.perf_counter()
        batch = _entries(done, n)
        gen_s += time.perf_counter() - g
        log.append_many(batch)
        done += n
        if done in (args.entries // 2,):
            log.checkpoint(signer, "bench/audit")
            done += 1  # the checkpoint records itself as an entry
            cp_sizes.append(done - 1)
    dt = time.perf_counter() - t - gen_s
    print(
        f"grouped appends (batches of {args.batch:,}, fsync per batch): "
        f"{done / dt:,.0f}/s  ({dt:.1f}s for {done:,})"
    )
    t, c = time.perf_counter(), time.process_time()
    log.checkpoint(signer, "bench/audit")
    print(
        f"checkpoint of {log.size() - 1:,} entries (one pass over the leaf cache + sign): "
        f"{time.perf_counter() - t:.2f}s wall, {time.process_time() - c:.2f}s CPU"
    )
    size_bytes = log.log_path.stat().st_size
    print(f"log size: {size_bytes / 1e6:,.1f} MB ({size_bytes / log.size():.0f} B/entry)")

    # 3. Full verification from the stored bytes.
    t, c = time.perf_counter(), time.process_time()
    rep = log.verify(trust)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"full verify of {log.size():,} entries: {dt:.2f}s wall, {dc:.2f}s CPU  ok={rep.ok}")
    for c in rep.checks:
        print(f"    {'ok ' if c.ok else 'FAIL'} {c.name}: {c.detail}")

    # 4. Proof sizes.
    t = time.perf_counter()
    proof = log.prove_inclusion(args.entries // 3)
    dt_p = time.perf_counter() - t
    text = json.dumps(proof, indent=2, sort_keys=True)
    t = time.perf_counter()
    verify_inclusion_proof(proof, trust)
    dt_v = time.perf_counter() - t
    print(
        f"inclusion proof at size {proof['tree_size']:,}: {len(proof['proof'])} hashes, "
        f"{len(text):,} bytes as a file; built in {dt_p:.2f}s, verified offline in "
        f"{dt_v * 1000:.1f} ms"
    )
    n = log.size()
    tree_sizes = (cp_sizes[0] if cp_sizes else n // 2, n)
    cons = log.consistency_proof(*tree_sizes)
    print(f"consistency proof {tree_sizes[0]:,} -> {tree_sizes[1]:,}: {len(cons)} hashes")
    small = MerkleTree([b"\x00" * 32] * 100_000)
    print(f"inclusion proof at 100,000 entries: {len(small.inclusion_proof(12_345))} hashes")

    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
