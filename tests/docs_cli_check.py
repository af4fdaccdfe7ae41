"""Documented commands checked against the real `pgov` command tree (see docs_support).

Placeholders are values the reader replaces: `<anything>`, anything holding `…` (`k1.AbC…`)
and ALL-CAPS words (`WS`, `KEY_ID`, `V1`). `parse_pgov()` substitutes a value of the right
type for a placeholder only where the option is typed (int, float, date, enum), then lets
the real click command tree parse the arguments: an unknown subcommand or option, a missing
required option or argument, an extra argument or a wrong typed value is an error message.
`undeclared()` names actors, jurisdictions and purposes the workspace does not declare;
`check_mention()` checks a command named in prose (path and options only).
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import typer
from docs_support import ROOT, DocCommand, is_elided, variants

CAPS = re.compile(r"[A-Z][A-Z0-9_]*")
SAMPLE_DATE = "2026-11-01"


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
