"""The same decisions from a real `opa` server serving the bundle directory.

Skipped when no `opa` binary is on PATH (none installs in the development image); CI
images with OPA run it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests
from test_policy_support import BUNDLE, make_ws, request

from engine.errors import PolicyDenied
from engine.policy import EmbeddedEngine, OpaEngine, evaluate, load_bundle
from engine.workspace import Workspace

OPA = shutil.which("opa")
pytestmark = pytest.mark.skipif(OPA is None, reason="no opa binary on PATH")


@pytest.fixture(scope="module")
def opa_url() -> Iterator[str]:
    assert OPA is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [OPA, "run", "--server", "--addr", f"127.0.0.1:{port}", "--bundle", str(BUNDLE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/health?bundles", timeout=0.2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("opa did not become healthy")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return make_ws(tmp_path_factory.mktemp("realopa"))


@pytest.mark.parametrize(
    ("actor", "jurisdiction", "purpose"),
    [
        ("analyst-eu", "EU-DE", "marketing_segmentation"),
        ("analyst-us", "US-CA", "marketing_segmentation"),
        ("analyst-sg", "SG", "marketing_segmentation"),
        ("compliance-lead", "BR", "kyc_aml"),
        ("compliance-lead", "EU-DE", "marketing_segmentation"),
    ],
)
def test_real_opa_matches_embedded(
    ws: Workspace, opa_url: str, actor: str, jurisdiction: str, purpose: str
) -> None:
    req = request(actor, jurisdiction, purpose)
    embedded = evaluate(ws, req, EmbeddedEngine(load_bundle(BUNDLE)))
    remote = evaluate(ws, req, OpaEngine(opa_url))
    assert remote.canonical_json() == embedded.canonical_json()


def test_real_opa_undefined_document_denies(opa_url: str) -> None:
    with pytest.raises(PolicyDenied) as err:
        OpaEngine(opa_url).query("personagov.no_such_package.decision", {})
    assert err.value.reasons == ["policy.undefined"]
