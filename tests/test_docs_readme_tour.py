"""README's step-by-step tour runs as written, in order, in a fresh directory.

The block that starts with `pgov init ... --sample N` is the tour. Each of its commands runs
through the CLI exactly as printed, with two substitutions: a smaller sample
(TOUR_CUSTOMERS, to keep this fast) and, as a reader would, for a `kv1.…` token the first
KYC token an earlier step printed. A step's exit code is the one its comment states
(`# denied, exit 3`), else 0.

At a tenth of the README's sample, whether k-means passes its bootstrap stability gates
depends on the row order, i.e. on the random master key `keys init` draws (about one run
in twenty fails one, exit 7); the test turns those thresholds off in the tour's pgov.toml
right after `init`, since gates are not what the tour is about.

Other runnable docs have their own tests (runbooks, bring-your-own-data, report).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_support import ROOT, DocCommand, fenced_blocks, parse_doc, variants
from typer.testing import CliRunner

from engine.cli import app

TOUR_CUSTOMERS = 2000
README = ROOT / "README.md"
TOKEN = re.compile(r"\bkv?\d+\.[A-Za-z0-9_-]{16,}")  # kv (token vault) or k (AES-SIV)


def tour() -> list[DocCommand]:
    """The pgov commands of the README block holding `pgov init ... --sample`."""
    commands = [c for c in parse_doc(README) if c.is_pgov]
    for _, first, body in fenced_blocks(README.read_text()):
        inside = [c for c in commands if first <= c.line < first + len(body)]
        if any(c.words and c.words[0].text == "init" and "--sample" in c.text for c in inside):
            return inside
    raise AssertionError("README has no tour block starting with `pgov init ... --sample`")


def expected_exit(command: DocCommand) -> int:
    m = re.search(r"\bexit (?:code )?(\d+)", command.comment)
    return int(m.group(1)) if m else 0


def _relax_small_sample_gates(ws: Path) -> None:
    config = ws / "pgov.toml"
    text = re.sub(r"^min_silhouette\s*=.*\n", "", config.read_text(), flags=re.M)
    text, n = re.subn(
        r"^stability_threshold\s*=.*$",
        "stability_threshold = 0.0\nmin_silhouette = -1.0",
        text,
        flags=re.M,
    )
    assert n == 1, "the default pgov.toml no longer sets [segmentation] stability_threshold"
    config.write_text(text)


def _args(command: DocCommand, printed: str) -> list[str]:
    forms = variants(command.words)
    assert len(forms) == 1, f"{command.where}: the tour shows a synopsis, not a command"
    args = forms[0]
    for i, arg in enumerate(args):
        if i and args[i - 1] == "--sample":
            assert int(arg) >= TOUR_CUSTOMERS, f"{command.where}: a sample smaller than the test"
            args[i] = str(TOUR_CUSTOMERS)
        elif "…" in arg:
            found = TOKEN.findall(printed)
            assert found, f"{command.where}: `{arg}` stands for a token no earlier step printed"
            args[i] = found[0]
    return args


def test_the_readme_tour_is_the_documented_sequence() -> None:
    steps = [" ".join(w.text for w in c.words[:2]) for c in tour()]
    # What the README promises a reader sees, whatever order it shows it in.
    for step in ("init ws", "keys init", "policy explain", "refresh -w", "personas show",
                 "kyc queue", "reidentify --token", "lineage verify", "versions approve",
                 "audit verify", "audit query"):  # fmt: skip
        assert step in steps, (step, steps)
    assert any(expected_exit(c) == 3 for c in tour()), "the denied refresh states its exit 3"


@pytest.mark.slow
def test_the_readme_tour_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    printed = ""
    outputs: dict[str, str] = {}
    for command in tour():
        args = _args(command, printed)
        result = runner.invoke(app, args)
        want = expected_exit(command)
        assert result.exit_code == want, (
            f"{command.where}: `pgov {' '.join(args)}` exited {result.exit_code}, the README "
            f"says {want}\n{result.output}"
        )
        printed += result.output
        outputs[" ".join(args[:2])] = result.output
        if args[0] == "init":
            _relax_small_sample_gates(tmp_path / args[1])
    # The steps did what the README says they do, not merely exit as stated.
    assert any("analyst-uk" in out for key, out in outputs.items() if key == "audit query")
    report = next((a for c in tour() for a in _args(c, printed) if a.endswith(".html")), None)
    if report:
        assert (tmp_path / report).stat().st_size > 10_000
