"""ARCHITECTURE §1's dependency rules and the absence of import cycles, read from the source.

One walker (:func:`imports`) reads every import of every module of traft,
storage and net: ``import a.b``, ``from a import b`` (``a.b`` when that is a
module, else ``a``), relative imports resolved, each marked when it sits
under ``if TYPE_CHECKING:`` or inside a function. The layering rules count
every import, those included (an annotation-only import still couples the
layers); the cycle check counts only imports that run when the module is
first imported: module level and not under TYPE_CHECKING. ruff's banned-api
list (pyproject.toml, traft/core/ruff.toml) states the same rules where it
can, so an editor flags a breach before the tests run.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("traft", "storage", "net")
STDLIB = frozenset(sys.stdlib_module_names)
# Standard modules the pure core must not touch: I/O, clocks, threads, sockets.
CORE_BANNED_STDLIB = frozenset({"socket", "time", "os", "asyncio", "threading", "select"})


class Import(NamedTuple):
    module: str  # the imported module, dotted
    line: int
    runtime: bool  # runs when the importing module is imported (module level, not TYPE_CHECKING)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module of the checked packages, by dotted name."""
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = all_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@functools.cache
def imports(name: str) -> tuple[Import, ...]:
    """Every import in module ``name`` (see the module docstring)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(module: str, node: ast.stmt, runtime: bool) -> None:
        found.append(Import(module, node.lineno, runtime))

    def visit(nodes: list[ast.stmt], runtime: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node, runtime)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = name.split(".")
                    if not is_package:
                        package.pop()
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, base] if base else package)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in MODULES else base, node, runtime)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.body, False)
                visit(node.orelse, runtime)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, False)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        visit([c for c in children if isinstance(c, ast.stmt)], runtime)
                        for handler in children:
                            if isinstance(handler, ast.ExceptHandler):
                                visit(handler.body, runtime)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, runtime)

    visit(ast.parse(path.read_text(), filename=str(path)).body, True)
    return tuple(found)


def top(module: str) -> str:
    return module.split(".")[0]


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def breaches(package: str, allowed: Iterator[str] | tuple[str, ...], *, stdlib: bool) -> list[str]:
    """Imports from modules of ``package`` that are neither allowed nor (with
    ``stdlib``) standard."""
    allowed = tuple(allowed)
    bad = []
    for name in MODULES:
        if not under(name, package):
            continue
        for imp in imports(name):
            if stdlib and top(imp.module) in STDLIB | {"__future__"}:
                continue
            if not any(under(imp.module, a) for a in allowed):
                bad.append(f"{name}:{imp.line} imports {imp.module}")
    return bad


def forbidden(package: str, banned: tuple[str, ...]) -> list[str]:
    """Imports from modules of ``package`` of any module under ``banned``."""
    return [
        f"{name}:{imp.line} imports {imp.module}"
        for name in MODULES
        if under(name, package)
        for imp in imports(name)
        if any(under(imp.module, b) for b in banned)
    ]


# -- the rules ---------------------------------------------------------------------------------


def test_core_imports_only_the_standard_library_attrs_and_itself() -> None:
    assert not breaches("traft.core", ("attrs", "traft.core"), stdlib=True)


def test_core_touches_no_io_clock_thread_or_socket_module() -> None:
    assert not [
        f"{name}:{imp.line} imports {imp.module}"
        for name in MODULES
        if under(name, "traft.core")
        for imp in imports(name)
        if top(imp.module) in CORE_BANNED_STDLIB
    ]


def test_core_uses_random_only_through_the_injected_instance() -> None:
    """Only ``random.Random`` (types, isinstance): never the global generator."""
    bad = []
    for name, path in MODULES.items():
        if not under(name, "traft.core"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
                and node.attr != "Random"
            ):
                bad.append(f"{name}:{node.lineno} random.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "random":
                bad += [f"{name}:{node.lineno} from random import {a.name}" for a in node.names]
    assert not bad


def test_storage_imports_only_the_standard_library_and_itself() -> None:
    assert not breaches("storage", ("storage",), stdlib=True)


def test_net_imports_only_the_standard_library_trio_and_itself() -> None:
    assert not breaches("net", ("trio", "net"), stdlib=True)


@pytest.mark.parametrize(
    ("package", "banned"),
    [
        ("storage", ("traft",)),
        ("net", ("traft",)),
        ("traft.core", ("traft.node", "traft.kv", "traft.sim", "traft.check", "traft.cli")),
        ("traft.node", ("traft.kv", "traft.sim", "traft.cli")),
        ("traft.kv", ("traft.sim", "traft.cli")),
    ],
)
def test_layers_import_only_downwards(package: str, banned: tuple[str, ...]) -> None:
    assert not forbidden(package, banned)


def test_the_walker_sees_what_the_rules_need() -> None:
    """The walker must not go blind: known imports of each kind are found."""
    node = {imp.module: imp for imp in imports("traft.node.node")}
    assert node["traft.core"].runtime and node["trio"].runtime
    assert node["traft.node.proposals"].runtime
    serve = {imp.module: imp for imp in imports("traft.kv.serve")}
    assert not serve["traft.node.node"].runtime  # under TYPE_CHECKING or in a function
    package = {imp.module: imp for imp in imports("traft.node")}
    assert package["traft.node.config"].runtime  # from traft.node.config import ...
    assert not package["traft.node.node"].runtime  # the lazy re-export (PEP 562)


# -- no import cycles -------------------------------------------------------------------------


def runtime_graph() -> dict[str, set[str]]:
    """Module -> the checked modules it imports when it is first imported."""
    return {
        name: {imp.module for imp in imports(name) if imp.runtime and imp.module in MODULES}
        - {name}
        for name in MODULES
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules, first repeated at the end), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return path[path.index(child) :] + [child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_no_import_cycle_among_traft_storage_and_net() -> None:
    # Edges are module-level imports that are not under TYPE_CHECKING; an
    # import inside a function runs later and cannot deadlock start-up.
    assert find_cycle(runtime_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
