"""`pgov keys export --pem`: the workspace's public signing keys for other verifiers.

Each key is a PEM SubjectPublicKeyInfo block (Ed25519, RFC 8410), which openssl, Go's
crypto/x509 and `cryptography` read; a comment line before each block names its key id,
creation time and revocation (PEM readers ignore text outside the BEGIN/END lines).
"""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli._common import WorkspaceOpt, console, handle_errors, open_workspace
from engine.errors import BadInputError, UsageError


@handle_errors
def export_cmd(
    pem: bool = typer.Option(False, "--pem", help="PEM SubjectPublicKeyInfo (the only format)."),
    key_id: str | None = typer.Option(None, "--key-id", help="Only this key (default: all)."),
    out: Path | None = typer.Option(None, "--out", help="Write here (else stdout)."),
    workspace: Path = WorkspaceOpt,
) -> None:
    """Export public signing keys (never a private key) for verifiers outside personagov."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from lineage.signing import TrustStore

    if not pem:
        raise UsageError("give --pem (the export format)")
    ws = open_workspace(workspace)
    store = TrustStore.load(ws.path(ws.config.keys.trust_file))
    keys = list(store.keys)
    if key_id is not None:
        keys = [k for k in keys if k.key_id == key_id]
        if not keys:
            raise BadInputError(f"no key {key_id} in {ws.config.keys.trust_file}")
    blocks = []
    for k in keys:
        spki = Ed25519PublicKey.from_public_bytes(k.public_raw).public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        revoked = f" revoked {k.revoked_at.isoformat()}" if k.revoked_at else ""
        blocks.append(
            f"# key_id {k.key_id} created {k.created_at.isoformat()}{revoked}\n"
            + spki.decode("ascii")
        )
    text = "".join(blocks)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="ascii")
        console.print(f"{len(blocks)} public key(s) written to {out}")


def register(app: typer.Typer) -> None:
    from engine.cli.keys_cmd import keys_app

    keys_app.command("export")(export_cmd)
