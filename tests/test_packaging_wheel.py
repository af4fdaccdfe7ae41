"""A non-editable install carries the default policy bundle and the default workspace config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.pseudonym import native_hmac

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_bundle_and_finds_it_when_installed(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(REPO)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(wheels.glob("personagov-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    probe = (
        "from engine.policy.bundle import default_bundle_path, load_bundle;"
        "import engine; from engine.pseudonym import native_hmac;"
        "p = default_bundle_path(); b = load_bundle(p);"
        "print(engine.__file__); print(p); print(b.revision); print(b.digest);"
        "print(native_hmac.available(), native_hmac.LIBRARY)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env,
        cwd=tmp_path,
    ).stdout.split("\n")  # fmt: skip
    assert out[0].startswith(str(target))  # the installed copy, not the repository
    assert out[1] == str(target / "engine" / "_bundle")
    from engine.policy.bundle import load_bundle

    # Same bytes as the repository's bundle: same revision and digest.
    repo_bundle = load_bundle(REPO / "policies")
    assert out[2:4] == [repo_bundle.revision, repo_bundle.digest]
    assert (target / "engine" / "defaults" / "pgov.toml").is_file()
    # The native HMAC is compiled into the wheel (which is then for this platform only) and
    # loads from the installed copy; without a compiler the wheel falls back to polars-hash.
    if native_hmac.available():
        lib = target / "engine" / "pseudonym" / "native" / "libpgovhmac.so"
        assert out[4] == f"True {lib}"
        assert "-none-any" not in wheel.name
