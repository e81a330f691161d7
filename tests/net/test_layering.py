"""The net package knows nothing of Raft: it imports only the standard library and trio."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import net

ALLOWED = set(sys.stdlib_module_names) | {"trio", "net"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def test_net_imports_only_the_standard_library_and_trio() -> None:
    files = sorted(Path(net.__file__).parent.rglob("*.py"))
    assert files
    for path in files:
        foreign = imported_modules(path) - ALLOWED
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_net_never_imports_traft() -> None:
    for path in sorted(Path(net.__file__).parent.rglob("*.py")):
        assert "traft" not in imported_modules(path), path.name
