"""The order sources load in: a source after every source it references (its orphan check
reads their valid rows), and sources that do not depend on each other read side by side.
"""

from __future__ import annotations

from engine.errors import ConfigError
from engine.source_files import source_file
from engine.workspace import Workspace


def _parents(ws: Workspace, name: str) -> list[str]:
    """The other sources `name`'s columns reference."""
    refs = (c.references for c in ws.source(name).columns.values() if c.references)
    return [r for r in dict.fromkeys(ref.partition(".")[0] for ref in refs) if r != name]


def upstream(ws: Workspace, name: str) -> list[str]:
    """`name` and every source it references, directly or through another (sorted): the
    sources whose files and declarations its valid rows depend on."""
    found = [name]
    for seen in found:  # grows while it is walked: breadth first
        found += [p for p in _parents(ws, seen) if p not in found]
    return sorted(found)


def file_size(ws: Workspace, name: str) -> int:
    """A source file's size, to read the largest of a wave first (0 if it cannot be seen:
    its read reports that, in load order)."""
    try:
        return source_file(ws, name).stat().st_size
    except OSError:
        return 0


def load_order(ws: Workspace) -> list[str]:
    """Sources in an order where each comes after the sources it references."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ConfigError(f"{ws.config_path}: source references form a cycle at '{name}'")
        visiting.add(name)
        for ref in _parents(ws, name):
            visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in ws.config.sources:
        visit(name)
    return order


def waves(ws: Workspace, order: list[str]) -> list[list[str]]:
    """`order` cut into waves: every source of a wave references only earlier waves' sources,
    so a wave's sources can be read at once (each wave keeps `order`'s order)."""
    done: set[str] = set()
    out: list[list[str]] = []
    pending = list(order)
    while pending:
        wave = [n for n in pending if all(p in done for p in _parents(ws, n))]
        out.append(wave)
        done.update(wave)
        pending = [n for n in pending if n not in done]
    return out
