"""An OPA bundle read from disk: `.manifest`, every `*.rego`, and `data.json` files placed
the OPA way (a data.json in directory a/b/ becomes data.a.b).

The digest is sha256 over the sorted (relative path, bytes) pairs of every bundle file, so
any edit to a rule, a test or the data changes it; the revision comes from `.manifest`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import PolicyError

MANIFEST = ".manifest"


@dataclass(frozen=True)
class Bundle:
    root: Path
    revision: str
    roots: list[str]
    digest: str
    # relative path -> Rego source text
    modules: dict[str, str]
    # the merged data document (all data.json files at their OPA paths)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_test_module(self) -> dict[str, bool]:
        return {p: p.endswith("_test.rego") for p in self.modules}

    def policy_modules(self) -> dict[str, str]:
        """Modules without the tests: what a server or a decision needs."""
        return {p: t for p, t in self.modules.items() if not p.endswith("_test.rego")}


def _fail(message: str, reason: str) -> PolicyError:
    return PolicyError(message, reasons=[reason])


def _bundle_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and (p.suffix == ".rego" or p.name in ("data.json", MANIFEST))
        and "__pycache__" not in p.parts
    )


def _merge(target: dict[str, Any], path: list[str], doc: Any, where: str) -> None:
    """Place `doc` at `path` in `target`; overlapping leaves are an error, as in OPA."""
    node = target
    for part in path:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise _fail(f"bundle data conflict at {where}", "bundle.data_conflict")
        node = child
    if not isinstance(doc, dict):
        if path:
            raise _fail(f"{where}: data.json must hold a JSON object", "bundle.bad_data")
        raise _fail(f"{where}: data.json must hold a JSON object", "bundle.bad_data")
    for key, value in doc.items():
        if key in node:
            if isinstance(node[key], dict) and isinstance(value, dict):
                _merge(node, [key], value, where)
                continue
            raise _fail(f"bundle data conflict at {where}: key '{key}'", "bundle.data_conflict")
        node[key] = value


def load_bundle(path: Path | str) -> Bundle:
    """Read and check a bundle directory; any problem is a PolicyError (deny)."""
    root = Path(path)
    if not root.is_dir():
        raise _fail(f"policy bundle not found at {root}", "bundle.missing")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise _fail(f"policy bundle at {root} has no {MANIFEST}", "bundle.no_manifest")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _fail(f"{manifest_path}: not valid JSON", "bundle.bad_manifest") from None
    revision = manifest.get("revision") if isinstance(manifest, dict) else None
    roots = manifest.get("roots", [""]) if isinstance(manifest, dict) else None
    if not isinstance(revision, str) or not revision:
        raise _fail(
            f"{manifest_path}: 'revision' must be a non-empty string", "bundle.bad_manifest"
        )
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise _fail(f"{manifest_path}: 'roots' must be a list of strings", "bundle.bad_manifest")

    h = hashlib.sha256()
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for file in _bundle_files(root):
        rel = file.relative_to(root).as_posix()
        raw = file.read_bytes()
        # Length-prefixed so path/content boundaries cannot be shifted between files.
        h.update(f"{len(rel)}:{rel}:{len(raw)}:".encode())
        h.update(raw)
        if file.suffix == ".rego":
            try:
                modules[rel] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail(f"{rel}: not UTF-8", "bundle.bad_module") from None
        elif file.name == "data.json":
            try:
                doc = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _fail(f"{rel}: not valid JSON", "bundle.bad_data") from None
            _merge(data, list(file.parent.relative_to(root).parts), doc, rel)
    if not modules:
        raise _fail(f"policy bundle at {root} has no .rego modules", "bundle.empty")
    return Bundle(
        root=root,
        revision=revision,
        roots=list(roots),
        digest=h.hexdigest(),
        modules=modules,
        data=data,
    )


def default_bundle_path() -> Path:
    """The bundle shipped in the wheel (engine/_bundle), else the repository's policies/."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_bundle"
    if (installed / MANIFEST).is_file():
        return installed
    return here.parent / "policies"
