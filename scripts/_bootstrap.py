"""Shared start of the scripts: run under the project's virtualenv when traft is not importable.

``scripts/cluster`` and ``scripts/kill-restart`` may be started with any
``python3``; when that interpreter cannot import traft and its dependencies
(httptools, trio), they re-run themselves with ``.venv/bin/python`` of the
checkout (``make`` builds it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ensure_traft() -> None:
    """Make ``import traft`` work, re-executing under the checkout's venv if needed."""
    try:
        import httptools  # noqa: F401
        import trio  # noqa: F401

        import traft  # noqa: F401
    except ImportError:
        venv_python = ROOT / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable) != venv_python:
            os.execv(str(venv_python), [str(venv_python), *sys.argv])
        sys.exit(
            "traft is not installed for this python; run `make demo` or "
            "`python3 -m venv .venv && .venv/bin/pip install -e .` first"
        )
