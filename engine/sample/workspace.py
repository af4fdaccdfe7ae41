"""init_workspace(): a new workspace directory with the default pgov.toml and its folders."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

from engine.config import parse_config
from engine.errors import UsageError
from engine.workspace import CONFIG_NAME

DIRS: tuple[str, ...] = ("data", "versions", "audit", "outbox", "quarantine", "logs", "keys")
# Directories holding secrets or personal data rows are private to the owner.
PRIVATE_DIRS: frozenset[str] = frozenset({"keys", "quarantine", "data"})


def default_config_text(fmt: str = "parquet") -> str:
    """The shipped pgov.toml; for CSV every source path ends .csv and declares format csv."""
    text = resources.files("engine").joinpath("defaults", "pgov.toml").read_text(encoding="utf-8")
    if fmt == "parquet":
        return text
    if fmt != "csv":
        raise UsageError(f"init: format must be parquet or csv, not '{fmt}'")
    text = re.sub(r'(?m)^format = "parquet"\n', "", text)
    return re.sub(
        r'(?m)^path = "data/([a-z_]+)\.parquet"$', r'path = "data/\1.csv"\nformat = "csv"', text
    )


def init_workspace(root: Path | str, fmt: str = "parquet") -> Path:
    """Create the workspace at `root`; refuses to overwrite an existing pgov.toml."""
    root = Path(root)
    config = root / CONFIG_NAME
    if config.exists():
        raise UsageError(f"{config}: a workspace already exists here; refusing to overwrite it")
    text = default_config_text(fmt)
    parse_config(tomllib.loads(text), f"default pgov.toml ({fmt})")
    root.mkdir(parents=True, exist_ok=True)
    for name in DIRS:
        d = root / name
        d.mkdir(exist_ok=True)
        if name in PRIVATE_DIRS:
            d.chmod(0o700)
    tmp = config.with_name(CONFIG_NAME + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        # Link, not rename: if another init won the race, its pgov.toml stays untouched.
        config.hardlink_to(tmp)
    except FileExistsError:
        raise UsageError(
            f"{config}: a workspace already exists here; refusing to overwrite it"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return root.resolve()
