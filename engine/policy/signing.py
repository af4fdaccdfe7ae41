"""Signed policy bundles in OPA's format: `.signatures.json` = {"signatures": [JWT]}, the
JWT (ES256) carrying {"files": [{"name", "hash", "algorithm": "SHA-256"}], "keyid"}.

Hashes follow OPA (bundle/hash.go): a structured file (data.json, .manifest) is hashed over
its parsed JSON, object keys sorted, compact, numbers as written; any other file (Rego) over
its bytes. Verification is exact: the signed list and the files present must be the same
set with the same hashes, so a file added, removed, truncated or changed is refused
whatever it would do to a decision.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from engine.errors import KeyMaterialError, PolicyError

SIGNATURES = ".signatures.json"
ALG = "ES256"
STRUCTURED = ("data.json", ".manifest", SIGNATURES)


class _Num(str):
    """A JSON number kept as written (OPA hashes json.Number by its text)."""


def _go_string(s: str) -> str:
    """A string as Go's encoding/json writes it with SetEscapeHTML(false)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _walk(v: Any, h: Any) -> None:
    if isinstance(v, dict):
        h.update(b"{")
        for i, key in enumerate(sorted(v, key=lambda k: k.encode("utf-8"))):
            if i:
                h.update(b",")
            h.update(_go_string(key).encode("utf-8"))
            h.update(b":")
            _walk(v[key], h)
        h.update(b"}")
    elif isinstance(v, list):
        h.update(b"[")
        for i, e in enumerate(v):
            if i:
                h.update(b",")
            _walk(e, h)
        h.update(b"]")
    elif isinstance(v, _Num):
        h.update(str(v).encode("ascii"))
    elif v is True:
        h.update(b"true")
    elif v is False:
        h.update(b"false")
    elif v is None:
        h.update(b"null")
    elif isinstance(v, str):
        h.update(_go_string(v).encode("utf-8"))
    else:  # pragma: no cover - json.loads yields nothing else with our hooks
        raise TypeError(type(v).__name__)


def file_hash(name: str, raw: bytes) -> str:
    h = hashlib.sha256()
    if Path(name).name in STRUCTURED:
        try:
            doc = json.loads(raw, parse_int=_Num, parse_float=_Num)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PolicyError(f"{name}: not valid JSON", reasons=["bundle.bad_data"]) from None
        _walk(doc, h)
    else:
        h.update(raw)
    return h.hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- keys


def generate_key(private_path: Path, public_path: Path) -> None:
    """A new P-256 bundle-signing key pair (the private key readable by its owner only)."""
    if private_path.exists():
        raise KeyMaterialError(f"{private_path} exists: refusing to overwrite a signing key")
    key = ec.generate_private_key(ec.SECP256R1())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_path.touch(mode=0o600)
    private_path.write_bytes(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyMaterialError(
            f"bundle signing key {path} not found (create one: pgov policy keygen)"
        ) from None
    except ValueError:
        raise KeyMaterialError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyMaterialError(f"{path}: the bundle signing key must be an EC P-256 key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise KeyMaterialError(
            f"bundle verification key {path} not found: a bundle cannot be trusted without it"
        ) from None
    except ValueError:
        raise KeyMaterialError(f"{path}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise KeyMaterialError(f"{path}: the bundle verification key must be an EC P-256 key")
    return key


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "pgov-" + hashlib.sha256(der).hexdigest()[:16]


# ---------------------------------------------------------------- sign / verify


def sign_files(files: dict[str, bytes], key: ec.EllipticCurvePrivateKey) -> bytes:
    """The .signatures.json bytes for `files` (relative path -> bytes)."""
    kid = key_id(key.public_key())
    payload = {
        "files": [
            {"name": name, "hash": file_hash(name, raw), "algorithm": "SHA-256"}
            for name, raw in sorted(files.items())
        ],
        "keyid": kid,
    }
    header = {"alg": ALG, "kid": kid}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    token = signing_input + "." + _b64(sig)
    return json.dumps({"signatures": [token]}, indent=1).encode() + b"\n"


def _refuse(message: str, reason: str) -> PolicyError:
    return PolicyError(f"policy bundle refused: {message}", reasons=[reason])


def verify_files(
    files: dict[str, bytes], signatures: bytes | None, public: ec.EllipticCurvePublicKey
) -> None:
    """Raise unless `signatures` is a valid ES256 JWT by `public` over exactly `files`."""
    if signatures is None:
        raise _refuse(f"no {SIGNATURES}: the bundle is not signed", "bundle.unsigned")
    try:
        tokens = json.loads(signatures)["signatures"]
        if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
            raise ValueError
        head_b64, payload_b64, sig_b64 = tokens[0].split(".")
        header = json.loads(_unb64(head_b64))
        payload = json.loads(_unb64(payload_b64))
        sig = _unb64(sig_b64)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise _refuse(
            f"{SIGNATURES} is not a JWT in OPA's format", "bundle.bad_signature"
        ) from None
    if not isinstance(header, dict) or header.get("alg") != ALG or len(sig) != 64:
        raise _refuse(f"the signature must be {ALG}", "bundle.bad_signature")
    try:
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, f"{head_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _refuse(
            "the signature does not verify with the workspace's bundle key",
            "bundle.bad_signature",
        ) from None
    listed = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(listed, list):
        raise _refuse("the signed payload lists no files", "bundle.bad_signature")
    signed: dict[str, str] = {}
    for f in listed:
        if not isinstance(f, dict) or f.get("algorithm", "SHA-256") != "SHA-256":
            raise _refuse("a signed file entry is malformed", "bundle.bad_signature")
        signed[str(f.get("name", "")).lstrip("/")] = str(f.get("hash", ""))
    added = sorted(set(files) - set(signed))
    removed = sorted(set(signed) - set(files))
    changed = sorted(n for n in set(files) & set(signed) if file_hash(n, files[n]) != signed[n])
    if added or removed or changed:
        parts = [
            f"{label}: {', '.join(names[:5])}"
            for label, names in (("added", added), ("removed", removed), ("changed", changed))
            if names
        ]
        raise _refuse(
            "files differ from the signed list (" + "; ".join(parts) + ")", ("bundle.file_mismatch")
        )


# ---------------------------------------------------------------- files on disk


def read_files(path: Path) -> tuple[dict[str, bytes], bytes | None]:
    """Every regular file of a bundle directory or .tar.gz (relative path -> bytes), and the
    .signatures.json bytes if present (kept out of the first map)."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[p.relative_to(path).as_posix()] = p.read_bytes()
    elif path.is_file():
        try:
            with tarfile.open(path, "r:gz") as tar:
                for m in tar.getmembers():
                    if m.isdir():
                        continue
                    if not m.isfile():
                        raise _refuse(f"{m.name}: not a regular file", "bundle.bad_archive")
                    fh = tar.extractfile(m)
                    assert fh is not None
                    files[m.name.lstrip("/").removeprefix("./")] = fh.read()
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile):
            raise _refuse(f"{path}: not a readable .tar.gz bundle", "bundle.bad_archive") from None
    else:
        raise PolicyError(f"policy bundle not found at {path}", reasons=["bundle.missing"])
    return files, files.pop(SIGNATURES, None)


def bundle_files(root: Path) -> dict[str, bytes]:
    """The files a bundle built from directory `root` carries: .manifest, *.rego, data.json
    (anything else in the directory is not part of the bundle)."""
    all_files, _ = read_files(root)
    return {
        n: raw
        for n, raw in all_files.items()
        if n.endswith(".rego") or Path(n).name in ("data.json", ".manifest")
    }


def write_tarball(files: dict[str, bytes], signatures: bytes, out: Path) -> None:
    """A deterministic bundle.tar.gz (sorted names, zero mtimes), written atomically."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, raw in sorted({**files, SIGNATURES: signatures}.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(raw), 0, 0o644
            tar.addfile(info, io.BytesIO(raw))
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
