"""Every command in README.md and docs/*.md is one the CLI accepts, so docs cannot drift.

Each `pgov` line of a fenced code block (a synopsis expands to every argument list it
promises; see docs_support and docs_cli_check) is parsed by the real click tree: an unknown
subcommand or option, a missing required option or argument, an extra argument or a bad
typed value fails with the doc's file and line. Actors, jurisdictions and purposes it names
must be declared by the default pgov.toml (or by a ```toml block of the same doc). A
`pgov ...` span in the prose must name an existing command and options. Every other command
is checked for its tool: a Makefile target, a `python -m` module, the dask CLI's own click
parser, an executable on PATH, or an entry in EXTERNAL saying why not.
Running the documented commands is other tests' job (the README tour, the runbooks).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from docs_cli_check import Declared, check_mention, check_pgov, declared_names
from docs_support import (
    FENCE,
    ROOT,
    DocCommand,
    doc_commands,
    doc_files,
    fenced_blocks,
    inline_mentions,
    parse_doc,
    toml_blocks,
    variants,
)

# Tools the docs show that a test machine does not have, and why that is acceptable.
EXTERNAL = {
    "opa": "the Go OPA binary is on no registry we reach (FIELD-NOTES); OPA mode is tested "
    "against the real Go OPA through its Python bindings",
}
# Words that start a shell command but are not programs.
SHELL_BUILTINS = {"cd", "export", "source", ".", "set", "unset", "echo", "test", "["}
# First words taken as commands in an unlabelled block; any other line there is a diagram,
# a file tree or program output. In a ```sh / ```bash / ```console block every line counts.
KNOWN_TOOLS = {"make", "opa", "dask", "curl", "python", "python3", "pip", "jq", "git",
               "chromium", "pytest", "ruff", "mypy", "docker", "sha256sum", "openssl"}  # fmt: skip
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
BIN = Path(sys.executable).parent

COMMANDS = doc_commands()
PGOV = [c for c in COMMANDS if c.is_pgov]
OTHER = [
    c
    for c in COMMANDS
    if not c.is_pgov and (c.lang in SHELL_LANGS or c.tool.rsplit("/", 1)[-1] in KNOWN_TOOLS)
]


@cache
def _declared(path: str) -> Declared:
    return declared_names(toml_blocks(ROOT / path))


def test_the_docs_hold_the_commands_this_test_checks() -> None:
    # A broken reader would find nothing and pass: the docs have dozens of pgov commands in
    # README and most guides.
    assert len(PGOV) >= 40, [c.where for c in PGOV]
    files = {c.path for c in PGOV}
    assert "README.md" in files and len(files) >= 6, files


@pytest.mark.parametrize("command", PGOV, ids=[c.where for c in PGOV])
def test_documented_pgov_command_parses(command: DocCommand) -> None:
    errors = check_pgov(command, _declared(command.path))
    assert not errors, "\n".join(errors)


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {t for m in re.finditer(r"^([\w.-]+(?:\s+[\w.-]+)*)\s*:(?!=)", text, re.M)
            for t in m.group(1).split()}  # fmt: skip


def _dask_command(name: str) -> object | None:
    for ep in entry_points(group="dask_cli"):
        if ep.name == name:
            return ep.load()
    return None


def external_error(command: DocCommand) -> str | None:
    tool = command.tool
    args = [w.text for w in command.words]
    name = tool.rsplit("/", 1)[-1]
    if tool in SHELL_BUILTINS:
        return None
    if name in EXTERNAL:
        return None
    if name == "make":
        missing = [a for a in args if not a.startswith("-") and "=" not in a]
        missing = [t for t in missing if t not in _make_targets()]
        return f"Makefile has no target {missing}" if missing else None
    if name.startswith("python"):
        if args[:1] == ["-m"] and len(args) > 1:
            found = importlib.util.find_spec(args[1]) is not None
            return None if found else f"no module {args[1]!r} to run with -m"
        if args and args[0].endswith(".py"):
            return None if (ROOT / args[0]).is_file() else f"no script {args[0]}"
    if name == "dask":
        sub = _dask_command(args[0]) if args else None
        if sub is None:
            return f"`dask {args[:1]}` is not a dask CLI command"
        try:
            sub.make_context(f"dask {args[0]}", args[1:], resilient_parsing=False)  # type: ignore[attr-defined]
        except Exception as exc:  # click's UsageError and friends
            return f"dask {args[0]}: {exc}"
        return None
    if shutil.which(tool) or (BIN / name).exists():
        return None
    return f"`{tool}` is neither installed nor listed in EXTERNAL with a reason"


@pytest.mark.parametrize("command", OTHER, ids=[c.where for c in OTHER])
def test_documented_external_command_exists(command: DocCommand) -> None:
    error = external_error(command)
    assert error is None, f"{command.where}: `{command.text}`: {error}"


def test_every_external_exception_is_still_used() -> None:
    used = {c.tool.rsplit("/", 1)[-1] for c in OTHER}
    assert set(EXTERNAL) <= used, set(EXTERNAL) - used


# --- the checker itself fails where it should -----------------------------------------------


def _check(doc: str) -> list[str]:
    commands = parse_doc(ROOT / "docs" / "example.md", doc)
    declared = declared_names()
    return [e for c in commands if c.is_pgov for e in check_pgov(c, declared)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("pgov refresh -w ws -j EU-DE -p kyc_aml -a kyc-ops --colour red", "--colour"),
        ("pgov personas shwo EU-DE/kyc_aml/latest", "shwo"),
        ("pgov kyc queue edd-review -j EU-DE", "Missing option '--actor'"),
        ("pgov kyc queue edd-review --actor kyc-ops --limit many", "many"),
        ("pgov refresh -j EU-DE -p kyc_aml -a eu-analyst-1", "actor 'eu-analyst-1'"),
        ("pgov refresh -j XX-YY -p kyc_aml -a kyc-ops", "jurisdiction 'XX-YY'"),
        ("pgov personas show EU-DE/marketing/latest", "purpose 'marketing'"),
        ("pgov keys list [-w WS] [--jsno]", "--jsno"),
        ("pgov keys list   [--json]     versions, never material", "extra argument"),
        ("pgov reidentify --token T | --queue Q [--version-dir DIR]", "Missing option"),
        ("pgov kyc\n", "subcommand is missing"),
    ],
)
def test_the_checker_names_file_line_and_fault(doc: str, expected: str) -> None:
    errors = _check(f"Intro.\n\n```\n{doc}\n```\n")
    assert errors and all(e.startswith("docs/example.md:4: ") for e in errors), errors
    assert any(expected in e for e in errors), errors


def test_the_checker_accepts_synopses_placeholders_and_continuations() -> None:
    doc = (
        "```sh\n"
        "$ pgov kyc queue edd-review --actor kyc-ops --limit N  # N: a page size\n"
        "pgov personas diff V1 V2 [--json] [--max-shift X] \\\n"
        "    [--max-size-change Y] [-w WS]\n"
        "PGOV_ACTOR_KEYS=/tmp/k pgov kyc show --customer k1.AbC… --actor kyc-ops | head -5\n"
        "pgov reidentify …\n"
        "pgov --version && pgov policy test\n"
        "```\n"
    )
    commands = parse_doc(ROOT / "docs" / "example.md", doc)
    assert [c.line for c in commands] == [2, 3, 5, 5, 6, 7, 7]
    assert [c.tool for c in commands] == ["pgov"] * 3 + ["head"] + ["pgov"] * 3
    assert commands[0].comment == "N: a page size"
    assert _check(doc) == []


def test_a_synopsis_expands_to_every_promised_form() -> None:
    (cmd,) = parse_doc(
        ROOT / "x.md",
        "```\npgov reidentify --token T [--token T2 ...] | --queue Q [--version-dir DIR] "
        "--actor A [--json]\n```\n",
    )
    forms = {" ".join(v) for v in variants(cmd.words)}
    assert forms == {
        "reidentify --token T --actor A",
        "reidentify --queue Q --actor A",
        "reidentify --token T --token T2 --actor A --json",
        "reidentify --queue Q --version-dir DIR --actor A --json",
    }


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("```\nmake deploy\n```\n", "no target ['deploy']"),
        ("```\npython -m engine.nowhere\n```\n", "no module 'engine.nowhere'"),
        ("```\ndask worker tcp://10.0.0.5:8786 --nthreds 1\n```\n", "--nthreds"),
        ("```\ndask sheduler\n```\n", "not a dask CLI command"),
        ("```sh\nfrobnicate --all\n```\n", "neither installed nor listed"),
    ],
)
def test_external_checks_name_the_fault(doc: str, expected: str) -> None:
    (command,) = parse_doc(ROOT / "docs" / "example.md", doc)
    error = external_error(command)
    assert error is not None and expected in error, error


@pytest.mark.parametrize("path", [p.relative_to(ROOT).as_posix() for p in doc_files()])
def test_every_code_block_is_closed(path: str) -> None:
    # A fence glued to the last line ("...```") leaves the block open: the prose after it
    # renders as code and its commands are read as part of the block.
    text = (ROOT / path).read_text()
    glued = [n for n, line in enumerate(text.splitlines(), 1)
             if re.search(r"\S.*```\s*$", line) and not re.match(r"\s*```", line)]  # fmt: skip
    assert not glued, f"{path}: a closing ``` shares a line with content at lines {glued}"
    opened = len(fenced_blocks(text))
    fences = sum(1 for line in text.splitlines() if FENCE.match(line))
    assert fences == 2 * opened, f"{path}: a code block is never closed"


MENTIONS = [m for p in doc_files() for m in inline_mentions(p)]


@pytest.mark.parametrize("mention", MENTIONS, ids=[m.where for m in MENTIONS])
def test_command_named_in_prose_exists(mention: DocCommand) -> None:
    error = check_mention(mention)
    assert error is None, error


@pytest.mark.parametrize(
    ("prose", "expected"),
    [
        ("Run `pgov audit mend` to fix it.", "pgov audit has no command 'mend'"),
        ("See `pgov kyc queue Q --colour`.", "pgov kyc queue has no option --colour"),
    ],
)
def test_a_wrong_command_in_prose_is_named(prose: str, expected: str) -> None:
    (mention,) = inline_mentions(ROOT / "docs" / "example.md", f"Intro.\n\n{prose}\n")
    error = check_mention(mention)
    assert error is not None and error.startswith("docs/example.md:3: ") and expected in error


def test_a_console_transcript_checks_only_prompted_lines() -> None:
    doc = "```console\n$ pgov kyc queue edd-review --actor kyc-ops\nedd-review: 0 item(s)\n```\n"
    commands = parse_doc(ROOT / "docs" / "example.md", doc)
    assert [(c.line, c.tool) for c in commands] == [(2, "pgov")]
