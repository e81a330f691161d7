#!/usr/bin/env python3
"""`make demo`: the most real thing traft can show."""

from __future__ import annotations

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).with_name("demo_core.py")), run_name="__main__")
