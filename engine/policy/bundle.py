"""An OPA bundle read from disk (a directory or a .tar.gz): `.manifest`, every `*.rego`,
and `data.json` files placed the OPA way (a data.json in directory a/b/ becomes data.a.b).

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
    # .manifest metadata.required_modules: the modules a decision cannot do without
    required_modules: tuple[str, ...] = ()

    @property
    def is_test_module(self) -> dict[str, bool]:
        return {p: p.endswith("_test.rego") for p in self.modules}

    def policy_modules(self) -> dict[str, str]:
        """Modules without the tests: what a server or a decision needs."""
        return {p: t for p, t in self.modules.items() if not p.endswith("_test.rego")}


def _fail(message: str, reason: str) -> PolicyError:
    return PolicyError(message, reasons=[reason])


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


def _is_bundle_file(rel: str) -> bool:
    return rel.endswith(".rego") or Path(rel).name in ("data.json", MANIFEST)


def load_bundle(path: Path | str) -> Bundle:
    """Read and check a bundle directory or .tar.gz; any problem is a PolicyError (deny).
    Integrity (signature, required modules) is checked by `verified_bundle`."""
    from engine.policy.signing import read_files

    root = Path(path)
    if not root.exists():
        raise _fail(f"policy bundle not found at {root}", "bundle.missing")
    files, _signatures = read_files(root)
    return bundle_from_files(root, files)


def bundle_from_files(root: Path, all_files: dict[str, bytes]) -> Bundle:
    files = {rel: raw for rel, raw in all_files.items() if _is_bundle_file(rel)}
    if MANIFEST not in files:
        raise _fail(f"policy bundle at {root} has no {MANIFEST}", "bundle.no_manifest")
    manifest_path = f"{root}/{MANIFEST}"
    try:
        manifest = json.loads(files[MANIFEST])
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
    metadata = manifest.get("metadata", {}) if isinstance(manifest, dict) else {}
    required = metadata.get("required_modules", []) if isinstance(metadata, dict) else []
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise _fail(
            f"{manifest_path}: metadata.required_modules must be a list of module paths",
            "bundle.bad_manifest",
        )

    h = hashlib.sha256()
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    for rel in sorted(files):
        raw = files[rel]
        # Length-prefixed so path/content boundaries cannot be shifted between files.
        h.update(f"{len(rel)}:{rel}:{len(raw)}:".encode())
        h.update(raw)
        if rel.endswith(".rego"):
            try:
                modules[rel] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail(f"{rel}: not UTF-8", "bundle.bad_module") from None
        elif Path(rel).name == "data.json":
            try:
                doc = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _fail(f"{rel}: not valid JSON", "bundle.bad_data") from None
            _merge(data, list(Path(rel).parent.parts), doc, rel)
    if not modules:
        raise _fail(f"policy bundle at {root} has no .rego modules", "bundle.empty")
    return Bundle(
        root=root,
        revision=revision,
        roots=list(roots),
        digest=h.hexdigest(),
        modules=modules,
        data=data,
        required_modules=tuple(required),
    )


def check_complete(bundle: Bundle) -> None:
    """Every module the manifest says a decision requires is present; none listed = refused."""
    if not bundle.required_modules:
        raise _fail(
            f"{bundle.root}: the manifest lists no required modules (metadata.required_modules)",
            "bundle.bad_manifest",
        )
    missing = sorted(set(bundle.required_modules) - set(bundle.modules))
    if missing:
        raise _fail(
            f"policy bundle at {bundle.root} lacks required module(s): {', '.join(missing)}",
            "bundle.module_missing",
        )


def verified_bundle(
    path: Path, *, public_key: Any | None = None, shipped_digest: str | None = None
) -> Bundle:
    """The bundle a decision may use: signed by `public_key` over exactly its files (a
    workspace bundle), or byte-identical to the one shipped with this release (the default),
    and complete. Anything else is a refusal."""
    from engine.policy.signing import read_files, verify_files

    root = Path(path)
    if not root.exists():
        raise _fail(f"policy bundle not found at {root}", "bundle.missing")
    files, signatures = read_files(root)
    if public_key is not None:
        verify_files(files, signatures, public_key)
    bundle = bundle_from_files(root, files)
    if public_key is None and (shipped_digest is None or bundle.digest != shipped_digest):
        raise _fail(
            f"policy bundle at {root} is not the one shipped with this release "
            f"(digest {bundle.digest[:16]}…): sign a custom bundle with pgov policy build",
            "bundle.not_shipped",
        )
    check_complete(bundle)
    return bundle


def default_bundle_path() -> Path:
    """The bundle shipped in the wheel (engine/_bundle), else the repository's policies/."""
    here = Path(__file__).resolve().parent.parent
    installed = here / "_bundle"
    if (installed / MANIFEST).is_file():
        return installed
    return here.parent / "policies"
