"""``traft log inspect|verify`` and the data-directory helpers they stand on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from storage_faults import snapshot_tree

from storage import (
    CorruptLogError,
    Record,
    Snapshot,
    inspect_data_dir,
    open_data_dir,
)
from traft.cli import main


def make_node_dir(path: Path) -> None:
    with open_data_dir(str(path), segment_bytes=500) as node:
        node.meta.save(term=3, voted_for=2)
        node.log.append([Record(i, 1 if i < 30 else 3, 0, b"e%d" % i * 5) for i in range(1, 61)])
        node.log.sync()
        node.snapshots.save(Snapshot(1, 20, b"1,2,3", b"state" * 1000))
        node.log.compact_upto(20)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


def test_open_data_dir_creates_and_reopens_the_three_stores(tmp_path: Path) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    assert sorted(os.listdir(path)) == ["lock", "log", "meta", "snap"]
    with open_data_dir(str(path), segment_bytes=500) as node:
        assert (node.meta.term, node.meta.voted_for) == (3, 2)
        assert (node.log.first_index, node.log.last_index) == (21, 60)
        latest = node.snapshots.latest()
        assert latest is not None and latest.index == 20


def test_open_data_dir_reports_damage_before_repairing_anything(tmp_path: Path) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    segs = sorted((path / "log").glob("*.seg"))
    with open(segs[-1], "ab") as f:
        f.write(b"\x01")  # a torn tail open would cut
    (path / "meta").write_bytes(b"garbage")
    before = snapshot_tree(str(path))
    with pytest.raises(CorruptLogError, match="meta"):
        open_data_dir(str(path), segment_bytes=500)
    assert snapshot_tree(str(path)) == before


def test_inspect_prints_meta_segments_terms_and_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    before = snapshot_tree(str(path))
    status, out = run(capsys, "log", "inspect", str(path))
    assert status == 0
    assert "meta: term 3, voted_for 2" in out
    assert "first index 21, last index 60 (40 records)" in out
    assert "term 1: indexes 21..29" in out and "term 3: indexes 30..60" in out
    assert "segment 000" in out
    assert "snapshot index 20, term 1: 5000 bytes of data" in out
    assert snapshot_tree(str(path)) == before


def test_verify_passes_a_healthy_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    status, out = run(capsys, "log", "verify", str(path))
    assert status == 0
    assert out.startswith("OK:") and "40 log records" in out and "1 snapshot(s)" in out


def test_verify_names_a_bad_record_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    seg = sorted((path / "log").glob("*.seg"))[1]
    data = bytearray(seg.read_bytes())
    data[100] ^= 0x20
    seg.write_bytes(bytes(data))
    before = snapshot_tree(str(path))
    status, out = run(capsys, "log", "verify", str(path))
    assert status == 1
    assert f"FAILED: {seg}: offset" in out
    status, out = run(capsys, "log", "inspect", str(path))
    assert status == 1 and "PROBLEM:" in out
    assert snapshot_tree(str(path)) == before


def test_verify_checks_snapshot_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    snap = next((path / "snap").iterdir())
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0x02
    snap.write_bytes(bytes(data))
    status, out = run(capsys, "log", "inspect", str(path))
    assert status == 0  # inspect does not read snapshot data
    status, out = run(capsys, "log", "verify", str(path))
    assert status == 1 and "bad CRC in snapshot chunk" in out and snap.name in out


def test_verify_reports_a_torn_tail_as_a_repair_not_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node"
    make_node_dir(path)
    seg = sorted((path / "log").glob("*.seg"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\x07\x00")
    before = snapshot_tree(str(path))
    status, out = run(capsys, "log", "verify", str(path))
    assert status == 0
    assert "note: next open will log: cut" in out and "short batch record header" in out
    assert snapshot_tree(str(path)) == before


def test_missing_data_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "verify", str(tmp_path / "nope")]) == 2
    assert "no such data directory" in capsys.readouterr().err


def test_empty_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(capsys, "log", "inspect", str(tmp_path))
    assert status == 0
    assert "meta: none" in out and "log: none" in out and "snapshots: none" in out
    report = inspect_data_dir(str(tmp_path), verify=True)
    assert report.problems == [] and report.log_first_index is None


def test_inspect_limits_term_ranges_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_data_dir(str(tmp_path)) as node:
        node.log.append([Record(i, i, 0, b"") for i in range(1, 31)])
    status, out = run(capsys, "log", "inspect", str(tmp_path))
    assert out.count("  term ") == 20 and "10 more term ranges" in out
    status, out = run(capsys, "log", "inspect", "--all-terms", str(tmp_path))
    assert out.count("  term ") == 30


def test_log_command_requires_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["log"])


def test_verify_names_entries_no_snapshot_covers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by tests/integration/test_disk_faults.py: with the newest snapshot deleted,
    # every file was sound and verify said OK, while the node refused to start.
    path = tmp_path / "node"
    make_node_dir(path)
    for name in os.listdir(path / "snap"):
        os.remove(path / "snap" / name)
    status, out = run(capsys, "log", "verify", str(path))
    assert status == 1
    assert "the log starts at 21 but the newest snapshot ends at 0" in out
    assert "entries 1..20 are missing" in out
