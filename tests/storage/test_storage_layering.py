"""The storage package never imports traft (ARCHITECTURE §1), seen from a fresh
interpreter; tests/test_layering.py checks its imports in the source."""

from __future__ import annotations

import subprocess
import sys


def test_importing_storage_loads_no_traft_module() -> None:
    code = (
        "import sys, storage; "
        "bad = [m for m in sys.modules if m == 'traft' or m.startswith('traft.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
