"""ARCHITECTURE §1's dependency rule, enforced by reading the imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_BANNED = {"trio", "socket", "time", "os", "random", "asyncio", "threading", "select"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _random_uses(path: Path) -> list[str]:
    """Calls of the module-level random functions (the global generator)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr not in {"Random"}
        ):
            bad.append(f"{path.name}:{node.lineno} random.{node.attr}")
    return bad


def test_core_imports_only_stdlib_and_attrs() -> None:
    for path in sorted((ROOT / "traft" / "core").glob("*.py")):
        imported = _imports(path)
        assert not imported & (CORE_BANNED - {"random"}), (
            f"{path.name} imports {imported & CORE_BANNED}"
        )
        assert imported <= {
            "__future__",
            "traft",
            "attrs",
            "enum",
            "struct",
            "typing",
            "collections",
            "random",
        }, f"{path.name} imports {sorted(imported)}"
        assert not _random_uses(path), _random_uses(path)


def test_core_uses_random_only_through_the_injected_instance() -> None:
    for path in sorted((ROOT / "traft" / "core").glob("*.py")):
        text = path.read_text()
        if "import random" in text:
            # Allowed only for the isinstance check / type annotations.
            assert "random.Random" in text and not _random_uses(path)


def test_storage_and_net_never_import_traft() -> None:
    for package in ("storage", "net"):
        for path in sorted((ROOT / package).rglob("*.py")):
            assert "traft" not in _imports(path), f"{path} imports traft"
