"""Fixtures for the storage tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import _fileio
from storage._fileio import FileOps


@pytest.fixture(autouse=True)
def real_file_ops() -> Iterator[None]:
    """Whatever a test installs, the next test starts with the real FileOps."""
    previous = _fileio.ops
    yield
    _fileio.ops = previous if type(previous) is FileOps else FileOps()
