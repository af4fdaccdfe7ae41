"""Build hook: compiles the native HMAC (engine/pseudonym/native/hmac_tokens.c) at install.

The library only makes kyc vault tokens cheaper: the same tokens come from polars-hash
without it (engine/pseudonym/native_hmac.py). So a machine that cannot compile it (no C
compiler, no OpenSSL headers) still installs, with a warning; `make test` sets
PGOV_REQUIRE_NATIVE=1 so that CI notices a build that fell back.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("engine/pseudonym/native/hmac_tokens.c")
LIBRARY = Path("engine/pseudonym/native/libpgovhmac.so")


def build(root: Path) -> bool:
    """Compile the library in place; whether it worked (a failure is printed, not raised)."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    cmd = [
        *cc, "-O2", "-fPIC", "-shared", "-Wall",
        "-o", str(root / LIBRARY), str(root / SOURCE), "-lcrypto", "-pthread",
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        print(f"personagov: native HMAC not built ({exc}); polars-hash is used", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(
            "personagov: native HMAC not built; polars-hash is used (same tokens, slower):\n"
            + done.stderr,
            file=sys.stderr,
        )
        return False
    return True


class NativeHmacHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or not build(Path(self.root)):
            return
        if version == "editable":  # imported from the tree, where it was just built
            return
        # A wheel carrying a compiled library is for this platform only.
        build_data["artifacts"].append(LIBRARY.as_posix())
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
