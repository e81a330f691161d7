"""Fixtures for the storage tests.

``fast_tmp_path`` is a scratch directory on tmpfs (``/dev/shm``) when the
machine has one, for the tests that replay hundreds of crash points or
reopen after every step: they are about what a *process* crash leaves (the
page cache survives it), which tmpfs models exactly, and on a disk shared
with other work their thousands of fsyncs would make the suite's time depend
on the neighbours. The API, recovery, ENOSPC and SIGKILL tests use the real
disk. ``TRAFT_TEST_REAL_DISK=1`` puts everything on the real disk.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_faults import fast_scratch_root

from storage import _fileio
from storage._fileio import FileOps


@pytest.fixture
def fast_tmp_path(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory where fsync is cheap (see the module docstring)."""
    root = fast_scratch_root()
    if root is None:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="traft-storage-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def real_file_ops() -> Iterator[None]:
    """Whatever a test installs, the next test starts with the real FileOps."""
    previous = _fileio.ops
    yield
    _fileio.ops = previous if type(previous) is FileOps else FileOps()
