"""The core's shape (issue 15): small modules, no import circle, no type-only stubs.

STYLE.md asks for no module over ~800 lines; the role objects replaced
mixins that re-declared ``Raft``'s fields under ``if TYPE_CHECKING:``, and
the modules of traft.core import one another in one direction only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import traft.core

CORE = Path(traft.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))


def _core_imports(path: Path) -> set[str]:
    """The traft.core modules ``path`` imports, at run time or for type checking."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "traft.core":
                found.update(f"traft.core.{alias.name}" for alias in node.names)
            elif node.module.startswith("traft.core."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("traft.core."))
    module_names = {f"traft.core.{p.stem}" for p in MODULES}
    return found & module_names


def test_no_core_module_is_over_800_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in MODULES}
    assert {name: n for name, n in sizes.items() if n > 800} == {}


def test_no_type_checking_blocks_in_the_core() -> None:
    offenders = [p.name for p in MODULES if "TYPE_CHECKING" in p.read_text()]
    assert offenders == []


def test_no_import_circle_inside_the_core() -> None:
    graph = {f"traft.core.{p.stem}": _core_imports(p) for p in MODULES if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError(" -> ".join((*path[path.index(module) :], module)))
        if module in done:
            return
        for dep in sorted(graph.get(module, ())):
            visit(dep, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
