"""MetaStore: the durable (term, voted_for) pair."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_faults import FaultyOps, install

from storage import CorruptLogError, MetaStore
from storage._meta import META_SIZE


def test_a_new_node_has_term_zero_and_no_vote(tmp_path: Path) -> None:
    meta = MetaStore.open(str(tmp_path / "meta"))
    assert (meta.term, meta.voted_for) == (0, None)
    assert not (tmp_path / "meta").exists()


@pytest.mark.parametrize("term, voted_for", [(0, None), (1, 0), (7, None), (2**64 - 1, 2**64 - 1)])
def test_save_and_reopen(tmp_path: Path, term: int, voted_for: int | None) -> None:
    path = str(tmp_path / "meta")
    MetaStore.open(path).save(term, voted_for)
    again = MetaStore.open(path)
    assert (again.term, again.voted_for) == (term, voted_for)
    assert os.path.getsize(path) == META_SIZE


def test_save_creates_the_directory(tmp_path: Path) -> None:
    path = str(tmp_path / "a" / "b" / "meta")
    MetaStore.open(path).save(3, 2)
    assert MetaStore.open(path).voted_for == 2


def test_saving_the_same_pair_again_writes_nothing(tmp_path: Path) -> None:
    meta = MetaStore.open(str(tmp_path / "meta"))
    meta.save(4, 1)
    counter = FaultyOps()
    install(counter)
    meta.save(4, 1)
    assert counter.calls == 0
    meta.save(4, None)
    assert counter.log.count("fsync") == 2  # the file, then the directory


@pytest.mark.parametrize("term, voted_for", [(-1, None), (2**64, None), (1, -3), (1.5, None)])
def test_out_of_range_values_are_refused(tmp_path: Path, term: int, voted_for: int | None) -> None:
    meta = MetaStore.open(str(tmp_path / "meta"))
    with pytest.raises(ValueError):
        meta.save(term, voted_for)


def test_damage_is_reported_with_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    MetaStore.open(str(path)).save(5, 3)
    good = path.read_bytes()
    for offset in range(len(good)):
        damaged = bytearray(good)
        damaged[offset] ^= 0x40
        path.write_bytes(bytes(damaged))
        with pytest.raises(CorruptLogError, match="meta") as info:
            MetaStore.open(str(path))
        assert info.value.path == str(path)
    for size in (0, 10, META_SIZE - 1, META_SIZE + 1):
        path.write_bytes((good * 2)[:size])
        with pytest.raises(CorruptLogError, match="bytes"):
            MetaStore.open(str(path))


def test_a_leftover_temporary_file_is_ignored_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    MetaStore.open(str(path)).save(5, 3)
    (tmp_path / "meta.tmp").write_bytes(b"\x00" * 7)
    meta = MetaStore.open(str(path))
    assert (meta.term, meta.voted_for) == (5, 3)
    assert os.listdir(tmp_path) == ["meta"]
