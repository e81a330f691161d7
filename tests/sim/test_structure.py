"""The simulator's shape (issue 15): collaborators, not mixins held together by stubs.

The checker's and the run loop's parts were mixins that re-declared their
host class's fields under ``if TYPE_CHECKING:``; they are now objects that
own their state and are given what they read. These tests keep it so for
the whole package (traft.core has its own, stricter, tests/core/test_structure.py):
an ``if TYPE_CHECKING:`` block may import names for annotations and do
nothing else, and no simulator module grows past STYLE.md's 800 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import traft

PACKAGE = Path(traft.__file__).parent
SIM = PACKAGE / "sim"


def _declarations(source: str) -> list[str]:
    """The statements other than imports in the ``if TYPE_CHECKING:`` blocks of
    ``source`` (module level or inside a class), as "line: first line of code"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.extend(
                f"{stmt.lineno}: {ast.unparse(stmt).splitlines()[0]}"
                for stmt in node.body
                if not isinstance(stmt, ast.Import | ast.ImportFrom)
            )
    return found


def test_the_walker_sees_a_stub_in_a_class_body() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from traft.sim.cluster import Cluster\n"
        "class Part:\n"
        "    if TYPE_CHECKING:\n"
        "        cluster: Cluster\n"
        "        def _leader(self) -> None: ...\n"
    )
    assert _declarations(source) == ["6: cluster: Cluster", "7: def _leader(self) -> None:"]


def test_type_checking_blocks_only_import() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in _declarations(path.read_text())
    ]
    assert offenders == []


def test_no_module_anywhere_is_over_800_lines() -> None:
    # The simulator first; traft's other packages, storage and net too.
    root = PACKAGE.parent
    paths = [p for top in ("traft", "storage", "net") for p in (root / top).rglob("*.py")]
    sizes = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in paths}
    assert {name: n for name, n in sizes.items() if n > 800} == {}
