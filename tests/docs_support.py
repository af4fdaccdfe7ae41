"""Commands in the docs, read the way a reader would type them, and checked against the CLI.

`doc_commands()` reads every fenced code block of README.md and docs/*.md (data blocks such
as json/toml/python excepted) and returns each command line with its file and line number:
`\\` continuations joined, a `$ ` prompt and trailing `# comments` dropped (in a ```console
block only prompted lines are commands), `a && b` and `a | head` split into their commands,
leading `VAR=value` assignments dropped. `inline_mentions()` finds `pgov ...` code spans in
the prose, which must name existing commands and options (`check_mention()`).

A `pgov` command may be a synopsis: `[...]` is optional, `A | B` offers alternatives (an
alternative reaches back to the option that starts it and on to the next option), `x|y|z`
inside one word lists choices, `...` inside brackets repeats, and a bare `…` or `...`
elides the arguments (only the command path is checked). `variants()` expands a synopsis
into the concrete argument lists it promises: without any optional part, with all of them,
once per alternative and choice.

Placeholders are values the reader replaces: `<anything>`, anything holding `…` (`k1.AbC…`)
and ALL-CAPS words (`WS`, `KEY_ID`, `V1`). `pgov_error()` substitutes a value of the right
type for a placeholder only where the option is typed (int, float, date, enum), then lets
the real click command tree parse the arguments: an unknown subcommand or option, a missing
required option or argument, an extra argument or a wrong typed value is an error message.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[1]
PGOV_NAMES = (
    "pgov",
    ".venv/bin/pgov",
    "./.venv/bin/pgov",
    "$BIN/pgov",
    "$(BIN)/pgov",
    "${BIN}/pgov",
)
# Blocks holding data or code, not commands to type.
DATA_LANGS = {"json", "jsonl", "ndjson", "toml", "python", "py", "yaml", "yml", "rego", "csv",
              "sql", "html", "xml", "ini", "js", "javascript"}  # fmt: skip
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
# Filters a documented pgov command may be piped into.
PIPE_FILTERS = {"head", "tail", "jq", "grep", "wc", "less", "sort", "tee", "cat", "python",
                "python3", "column"}  # fmt: skip
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
CAPS = re.compile(r"[A-Z][A-Z0-9_]*")
SAMPLE_DATE = "2026-11-01"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class DocCommand:
    """One command as typed from a doc: `tool` is its first word, `words` the rest."""

    path: str  # relative to the repository
    line: int  # 1-based line of the command's first physical line
    lang: str  # the fence's language tag ("" if none)
    text: str  # the command without prompt and comment
    comment: str  # its trailing comment, if any
    tool: str
    words: list[Word] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def is_pgov(self) -> bool:
        return self.tool in PGOV_NAMES


@dataclass(frozen=True)
class Word:
    text: str
    quoted: bool = False  # quoted text is a literal: never an optional group or alternative

    @property
    def structural(self) -> bool:
        return not self.quoted and self.text in ("[", "]", "|")


def split_words(text: str) -> list[Word]:
    """Shell-like word splitting that keeps `[`, `]` and a free-standing `|` as words."""
    words: list[Word] = []
    buf: list[str] = []
    quoted = False
    quote = ""
    started = False

    def flush() -> None:
        nonlocal buf, quoted, started
        if started:
            words.append(Word("".join(buf), quoted))
        buf, quoted, started = [], False, False

    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                buf.append(text[i])
            else:
                buf.append(ch)
        elif ch in "'\"":
            quote, quoted, started = ch, True, True
        elif ch.isspace():
            flush()
        elif ch in "[]":
            flush()
            words.append(Word(ch))
        else:
            buf.append(ch)
            started = True
        i += 1
    if quote:
        raise ValueError(f"unbalanced quote in {text!r}")
    flush()
    return [Word("|") if w.text == "|" and not w.quoted else w for w in words]


def _strip_comment(text: str) -> tuple[str, str]:
    """Split `cmd  # comment` at the first unquoted `#` that starts a word."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def _split_sequence(text: str) -> list[str]:
    """`a && b`, `a; b` and `a | filter` are several commands; a synopsis `A | B` is one."""
    parts = [p.strip() for p in re.split(r"\s(?:&&|\|\||;)\s", text)]
    out: list[str] = []
    for part in parts:
        pieces = re.split(r"\s\|\s", part)
        current = pieces[0]
        for piece in pieces[1:]:
            if piece.split(maxsplit=1)[0] in PIPE_FILTERS:
                out.append(current)
                current = piece
            else:
                current = f"{current} | {piece}"
        out.append(current)
    return [re.sub(r"\s+\d?>>?\s*\S+$|\s+2>&1", "", p).strip() for p in out if p]


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line number of the block's first content line, its lines) per block."""
    blocks: list[tuple[str, int, list[str]]] = []
    fence, lang, start = "", "", 0
    body: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if not fence and m:
            fence, lang, start, body = m.group(1), m.group(2).lower(), n + 1, []
        elif fence and m and m.group(1)[0] == fence[0] and not m.group(2):
            blocks.append((lang, start, body))
            fence = ""
        elif fence:
            body.append(line)
    return blocks


def parse_doc(path: Path, text: str | None = None) -> list[DocCommand]:
    """Every command line in the fenced code blocks of one markdown file."""
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    commands: list[DocCommand] = []
    for lang, first, lines in fenced_blocks(path.read_text() if text is None else text):
        if lang in DATA_LANGS:
            continue
        i = 0
        while i < len(lines):
            start, logical = first + i, lines[i].strip()
            while logical.endswith("\\") and i + 1 < len(lines):
                i += 1
                logical = logical[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            if lang == "console" and not logical.startswith("$ "):
                continue  # a console transcript: lines without a prompt are output
            body, comment = _strip_comment(re.sub(r"^\$\s+", "", logical))
            for piece in _split_sequence(body) if body else []:
                words = split_words(piece)
                while words and not words[0].quoted and ASSIGNMENT.match(words[0].text):
                    words = words[1:]
                if words:
                    commands.append(
                        DocCommand(rel, start, lang, piece, comment, words[0].text, words[1:])
                    )
    return commands


def toml_blocks(path: Path) -> list[str]:
    return ["\n".join(body) for lang, _, body in fenced_blocks(path.read_text()) if lang == "toml"]


def doc_commands() -> list[DocCommand]:
    return [c for p in doc_files() for c in parse_doc(p)]


# --- synopsis expansion -------------------------------------------------------------------

Seq = list[Any]  # of Word and ("opt", Seq)


def _tree(words: list[Word]) -> Seq:
    stack: list[Seq] = [[]]
    for w in words:
        if w.structural and w.text == "[":
            stack.append([])
        elif w.structural and w.text == "]":
            if len(stack) == 1:
                raise ValueError("unbalanced ']'")
            inner = stack.pop()
            stack[-1].append(("opt", inner))
        else:
            stack[-1].append(w)
    if len(stack) != 1:
        raise ValueError("unbalanced '['")
    return stack[0]


def _is_option(item: Any) -> bool:
    return isinstance(item, Word) and not item.quoted and item.text.startswith("-")


def _alternatives(seq: Seq) -> list[Seq]:
    """Resolve `A | B` in one sequence: each alternative runs from the option starting it to
    the next option after its first word."""
    bars = [i for i, x in enumerate(seq) if isinstance(x, Word) and x.structural]
    if not bars:
        return [seq]
    first = bars[0]
    start = next((i for i in range(first - 1, -1, -1) if _is_option(seq[i])), 0)
    spans: list[tuple[int, int]] = [(start, first)]
    pos = first
    while pos < len(seq) and isinstance(seq[pos], Word) and seq[pos].structural:
        end = next((i for i in range(pos + 2, len(seq)) if _is_option(seq[i])), len(seq))
        nxt = next((i for i in range(pos + 1, end) if isinstance(seq[i], Word)
                    and seq[i].structural), None)  # fmt: skip
        end = nxt if nxt is not None else end
        spans.append((pos + 1, end))
        pos = end
    out: list[Seq] = []
    for a, b in spans:
        out.extend(_alternatives(seq[:start] + seq[a:b] + seq[pos:]))
    return out


def _flatten(seq: Seq, keep_optional: bool, inside: bool = False) -> list[list[str]]:
    results: list[list[str]] = []
    for alt in _alternatives(seq):
        acc: list[list[str]] = [[]]
        for item in alt:
            if isinstance(item, tuple):
                if not keep_optional:
                    continue
                options = _flatten(item[1], keep_optional, inside=True)
            elif inside and item.text in ("...", "…"):
                continue  # a repeat marker inside brackets
            elif not item.quoted and "|" in item.text and not item.text.startswith("|"):
                options = [[choice] for choice in item.text.split("|")]
            else:
                options = [[item.text]]
            acc = [a + o for a in acc for o in options]
        results.extend(acc)
    return results


def variants(words: list[Word]) -> list[list[str]]:
    """The argument lists a synopsis promises, without duplicates, in a stable order."""
    tree = _tree(words)
    seen: list[list[str]] = []
    for keep in (False, True):
        for v in _flatten(tree, keep):
            if v not in seen:
                seen.append(v)
    return seen


def is_elided(words: list[Word]) -> bool:
    """`pgov reidentify …`: the arguments are left out on purpose."""
    depth = 0
    for w in words:
        if w.structural and w.text in "[]":
            depth += 1 if w.text == "[" else -1
        elif depth == 0 and not w.quoted and w.text in ("…", "..."):
            return True
    return False


# --- the real CLI -------------------------------------------------------------------------


def is_placeholder(value: str) -> bool:
    return (
        ("<" in value and ">" in value)
        or "…" in value
        or value == "..."
        or CAPS.fullmatch(value) is not None
    )


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    ann = getattr(descriptor, "annotation", None)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), ann)
    if typing.get_origin(ann) in (list, tuple):  # repeated or multi-value: the element type
        ann = typing.get_args(ann)[0]
    return ann


def _value_for(param: Any, value: str) -> str:
    """A value of the parameter's type for a placeholder; a real value is left to parse."""
    if param is None or not is_placeholder(value):
        return value
    ann = _annotation(param)
    if ann is int:
        return "1"
    if ann is float:
        return "0.5"
    if ann in (date, datetime):
        return SAMPLE_DATE
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return str(next(iter(ann)).value)
    if typing.get_origin(ann) is typing.Literal:
        return str(typing.get_args(ann)[0])
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        return str(choices[0])
    return value


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "commands") and hasattr(cmd, "resolve_command")


def fill_placeholders(cmd: Any, args: list[str]) -> list[str]:
    """Replace typed placeholders in the arguments that belong to `cmd` itself."""
    options = {o: p for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))
               if o.startswith("-")}  # fmt: skip
    positional = iter(p for p in cmd.params if getattr(p, "param_type_name", "") == "argument")
    out: list[str] = []
    current: Any = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:]
        if arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit():
            name, eq, value = arg.partition("=")
            param = options.get(name)
            if param is None or getattr(param, "is_flag", False) or getattr(param, "count", 0):
                out.append(arg)
                i += 1
            elif eq:
                out.append(f"{name}={_value_for(param, value)}")
                i += 1
            else:
                n = max(param.nargs, 1)
                out += [arg, *(_value_for(param, v) for v in args[i + 1 : i + 1 + n])]
                i += 1 + n
            continue
        if _is_group(cmd):
            return out + args[i:]  # the subcommand and its own arguments
        if current is None or current.nargs != -1:
            current = next(positional, None)
        out.append(_value_for(current, arg))
        i += 1
    return out


def _message(exc: BaseException) -> str:
    if type(exc).__name__ == "NoArgsIsHelpError":
        return "no arguments (it prints its help): a subcommand is missing"
    fmt = getattr(exc, "format_message", None)
    return fmt() if callable(fmt) else str(exc)


@cache
def _root_command() -> Any:
    from engine.cli import app

    return typer.main.get_command(app)


def parse_pgov(args: list[str], elided: bool = False) -> tuple[str | None, dict[str, Any]]:
    """Parse `pgov ARGS` against the real command tree: (why it fails or None, the leaf
    command's parsed parameters). With `elided`, only the command path is checked."""
    cmd: Any = _root_command()
    ctx: Any = None
    trail = ["pgov"]
    while True:
        if elided and not _is_group(cmd):
            return None, {}
        filled = fill_placeholders(cmd, args)
        try:
            ctx = cmd.make_context(trail[-1], list(filled), parent=ctx, resilient_parsing=False)
        except typer.Exit as exc:  # an eager option such as --version
            return (None if exc.exit_code == 0 else f"exits {exc.exit_code} while parsing"), {}
        except typer.TyperException as exc:
            return f"{' '.join(trail)}: {_message(exc)} (parsed {filled})", {}
        if not _is_group(cmd):
            return None, _given(ctx)
        rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        if not rest:
            if getattr(cmd, "invoke_without_command", False):
                return None, _given(ctx)
            return f"{' '.join(trail)}: a subcommand is missing", {}
        try:
            name, cmd, args = cmd.resolve_command(ctx, rest)
        except typer.TyperException as exc:
            return f"{' '.join(trail)}: {_message(exc)}", {}
        trail.append(name or rest[0])


def _given(ctx: Any) -> dict[str, Any]:
    """The parameters the command line set (not defaults or the environment)."""
    source = ctx.get_parameter_source
    return {k: v for k, v in ctx.params.items() if getattr(source(k), "name", "") == "COMMANDLINE"}


def check_pgov(command: DocCommand, declared: Declared | None = None) -> list[str]:
    """Every way the documented command fails to parse; empty if every variant parses."""
    try:
        elided = is_elided(command.words)
        candidates = (
            [[w.text for w in command.words if w.text not in ("…", "...")]]
            if elided
            else variants(command.words)
        )
    except ValueError as exc:
        return [f"{command.where}: cannot read `{command.text}`: {exc}"]
    errors = []
    for args in candidates:
        error, params = parse_pgov(args, elided=elided)
        if error is None and declared is not None:
            error = undeclared(params, declared)
        if error:
            errors.append(f"{command.where}: `pgov {' '.join(args)}`: {error}")
    return errors


@dataclass(frozen=True)
class Declared:
    """Names a reader may use with the default workspace (or one the doc declares itself)."""

    actors: frozenset[str]
    jurisdictions: frozenset[str]
    purposes: frozenset[str]


def declared_names(doc_toml: Sequence[str] = ()) -> Declared:
    """The default pgov.toml's actors and jurisdictions, the purposes the engine knows, plus
    whatever the doc's own ```toml blocks declare."""
    import tomllib

    from engine import config

    tables = [tomllib.loads((ROOT / "engine" / "defaults" / "pgov.toml").read_text())]
    for text in doc_toml:
        try:
            tables.append(tomllib.loads(text))
        except tomllib.TOMLDecodeError:
            continue  # a fragment shown for reading, not a whole file
    actors: set[str] = set()
    jurisdictions: set[str] = set()
    purposes = {p.value for p in getattr(config, "Purpose", [])}
    for t in tables:
        actors |= set(t.get("actors", {}))
        listed = t.get("jurisdictions", [])
        jurisdictions |= set(listed if isinstance(listed, list) else listed.keys())
        jurisdictions |= set(t.get("jurisdiction_data", {}))
        purposes |= set(t.get("purposes", {}))
    return Declared(frozenset(actors), frozenset(jurisdictions), frozenset(purposes))


REF = re.compile(r"^(?P<j>[A-Z]{2}(?:-[A-Z]{2})?)/(?P<p>[a-z_]+)(?:/[\w.-]+)?$")


def undeclared(params: dict[str, Any], declared: Declared) -> str | None:
    """An actor, jurisdiction or purpose (also inside a `J/P/version` reference) that the
    workspace the doc speaks of does not declare."""
    problems = []

    def check(kind: str, value: Any, known: frozenset[str]) -> None:
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, str) and v and not is_placeholder(v) and v not in known:
                problems.append(f"{kind} {v!r} is not declared (known: {', '.join(sorted(known))})")

    for name, value in params.items():
        if name in ("actor", "jurisdiction", "purpose"):
            check(name, value, getattr(declared, f"{name}s"))
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            m = REF.match(v) if isinstance(v, str) else None
            if m:
                check("jurisdiction", m.group("j"), declared.jurisdictions)
                check("purpose", m.group("p"), declared.purposes)
    return "; ".join(problems) or None


# --- commands named in prose ---------------------------------------------------------------

INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?pgov(?: [^`]*)?)`(?!`)")


def inline_mentions(path: Path, text: str | None = None) -> list[DocCommand]:
    """`pgov ...` code spans in the prose (outside fenced blocks)."""
    rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    lines = (path.read_text() if text is None else text).splitlines()
    inside: set[int] = set()
    for _, first, body in fenced_blocks("\n".join(lines)):
        inside |= set(range(first - 1, first + len(body) + 1))
    out = []
    for n, line in enumerate(lines, 1):
        if n in inside:
            continue
        for m in INLINE.finditer(line):
            words = split_words(m.group(1))
            out.append(DocCommand(rel, n, "inline", m.group(1), "", words[0].text, words[1:]))
    return out


def check_mention(command: DocCommand) -> str | None:
    """A mention in prose may leave arguments out, but the command path and every option it
    names must exist."""
    cmd: Any = _root_command()
    names = _option_names(cmd)
    trail = ["pgov"]
    for word in command.words:
        text = word.text
        if word.structural or text in ("…", "...") or word.quoted:
            continue
        if text.startswith("-") and len(text) > 1:
            name = text.split("=", 1)[0]
            if name not in names:
                return f"{command.where}: `{command.text}`: {' '.join(trail)} has no option {name}"
        elif _is_group(cmd) and not is_placeholder(text):
            sub = cmd.commands.get(text)
            if sub is None:
                return (
                    f"{command.where}: `{command.text}`: {' '.join(trail)} has no command {text!r}"
                )
            cmd, trail = sub, [*trail, text]
            names |= _option_names(cmd)
    return None


def _option_names(cmd: Any) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))
            if o.startswith("-")} | {"--help"}  # fmt: skip
