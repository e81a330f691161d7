"""Every verdict of the shared answer key (Porcupine's, on Jepsen histories) reproduced.

The files are read in place from ``shared/data/linearizability`` (see its
README); each must get its listed verdict within a few seconds.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from traft.check import Verdict, check_history, read_history
from traft.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _find_data() -> Path | None:
    """The answer key: ``shared/`` beside the repository (as in CI), else
    ``$TRAFT_SHARED_DATA`` (the ``shared/data`` folder or the answer key itself)."""
    candidates = [REPO_ROOT.parent / "shared" / "data" / "linearizability"]
    env = os.environ.get("TRAFT_SHARED_DATA")
    if env:
        base = Path(env)
        candidates += [base / "linearizability", base / "data" / "linearizability", base]
    for path in candidates:
        if (path / "etcd-jepsen" / "VERDICTS.tsv").is_file():
            return path
    return None


DATA_DIR = _find_data()
MISSING_DATA = (
    "the linearizability answer key is absent: expected shared/data/linearizability "
    f"beside the repository (in {REPO_ROOT.parent}) or $TRAFT_SHARED_DATA"
)

# "Within a few seconds each": the search gets this budget and must decide.
BUDGET_S = 5.0

EXPECTED = {"linearizable": Verdict.LINEARIZABLE, "not-linearizable": Verdict.NOT_LINEARIZABLE}


def _cases() -> list[tuple[str, str, str]]:
    """(model, relative path, verdict) for every file of the answer key."""
    if DATA_DIR is None:
        return []
    cases = []
    tsv = (DATA_DIR / "etcd-jepsen" / "VERDICTS.tsv").read_text()
    for line in tsv.splitlines():
        if line.strip():
            name, verdict = line.split("\t")
            cases.append(("register", f"etcd-jepsen/{name}", verdict.strip()))
    for path in sorted((DATA_DIR / "kv").iterdir()):
        verdict = "linearizable" if path.stem.endswith("-ok") else "not-linearizable"
        cases.append(("kv", f"kv/{path.name}", verdict))
    return cases


CASES = _cases()
needs_data = pytest.mark.skipif(DATA_DIR is None, reason=MISSING_DATA)


@pytest.fixture
def data_dir() -> Path:
    """The answer key's folder (tests using it are skipped when it is absent)."""
    assert DATA_DIR is not None
    return DATA_DIR


@needs_data
def test_answer_key_is_complete() -> None:
    """70 etcd histories and the four kv files, both verdicts present."""
    assert sum(1 for m, _, _ in CASES if m == "register") == 70
    assert {p for m, p, _ in CASES if m == "kv"} == {
        "kv/c01-ok.txt",
        "kv/c01-bad.txt",
        "kv/c10-ok.txt",
        "kv/c10-bad.txt",
    }
    assert {v for _, _, v in CASES} == set(EXPECTED)


@needs_data
@pytest.mark.parametrize(("model", "relpath", "verdict"), CASES, ids=[c[1] for c in CASES])
def test_verdict(data_dir: Path, model: str, relpath: str, verdict: str) -> None:
    ops = read_history(data_dir / relpath)
    started = time.monotonic()
    result = check_history(ops, model, timeout_s=BUDGET_S)
    elapsed = time.monotonic() - started
    assert result.verdict is EXPECTED[verdict], result.explanation
    assert elapsed < BUDGET_S + 1.0
    if result.verdict is Verdict.NOT_LINEARIZABLE:
        assert result.violation is not None
        assert "Longest linearizable prefix" in result.explanation


@needs_data
def test_etcd_parse_counts(data_dir: Path) -> None:
    """etcd_000: every invoke becomes one operation; :info ones are unknown."""
    text = (data_dir / "etcd-jepsen" / "etcd_000.log").read_text()
    invokes = text.count("\t:invoke\t")
    infos = text.count("\t:info\t")
    ops = read_history(data_dir / "etcd-jepsen" / "etcd_000.log", "jepsen-etcd")
    assert len(ops) == invokes
    assert sum(1 for op in ops if op.outcome.value == "unknown") >= infos


@needs_data
@pytest.mark.parametrize(
    ("relpath", "model", "status"),
    [
        ("etcd-jepsen/etcd_002.log", "register", 0),
        ("etcd-jepsen/etcd_000.log", "register", 1),
        ("kv/c10-ok.txt", "kv", 0),
        ("kv/c10-bad.txt", "kv", 1),
    ],
)
def test_cli_on_answer_key(
    data_dir: Path, relpath: str, model: str, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(data_dir / relpath), "--model", model]) == status
    out = capsys.readouterr().out
    assert ("NOT linearizable" in out) == (status == 1)
