"""Commands in the docs, read the way a reader would type them.

`doc_commands()` reads every fenced code block of README.md and docs/*.md (data blocks such
as json/toml/python excepted) and returns each command line with its file and line number:
`\\` continuations joined, a `$ ` prompt and trailing `# comments` dropped (in a ```console
block only prompted lines are commands), `a && b` and `a | head` split into their commands,
leading `VAR=value` assignments dropped. `inline_mentions()` finds `pgov ...` code spans in
the prose.

A `pgov` command may be a synopsis: `[...]` is optional, `A | B` offers alternatives (an
alternative reaches back to the option that starts it and on to the next option), `x|y|z`
inside one word lists choices, `...` inside brackets repeats, and a bare `…` or `...`
elides the arguments (only the command path is checked). `variants()` expands a synopsis
into the concrete argument lists it promises: without any optional part, with all of them,
once per alternative and choice. docs_cli_check checks them against the real CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PGOV_NAMES = ("pgov", ".venv/bin/pgov", "./.venv/bin/pgov", "$BIN/pgov", "$(BIN)/pgov",
              "${BIN}/pgov")  # fmt: skip
# Blocks holding data or code, not commands to type.
DATA_LANGS = {"json", "jsonl", "ndjson", "toml", "python", "py", "yaml", "yml", "rego", "csv",
              "sql", "html", "xml", "ini", "js", "javascript"}  # fmt: skip
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
# Filters a documented pgov command may be piped into.
PIPE_FILTERS = {"head", "tail", "jq", "grep", "wc", "less", "sort", "tee", "cat", "python",
                "python3", "column"}  # fmt: skip
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


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
