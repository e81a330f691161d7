"""The storage package never imports traft (ARCHITECTURE §1), and uses only the
standard library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import storage

STORAGE_DIR = Path(storage.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_storage_imports_only_the_standard_library() -> None:
    files = sorted(STORAGE_DIR.glob("*.py"))
    assert files
    for path in files:
        outside = imported_modules(path) - set(sys.stdlib_module_names) - {"__future__"}
        assert not outside, f"{path.name} imports {sorted(outside)}"


def test_importing_storage_loads_no_traft_module() -> None:
    code = (
        "import sys, storage; "
        "bad = [m for m in sys.modules if m == 'traft' or m.startswith('traft.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
