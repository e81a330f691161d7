"""``traft serve``: configuration errors without tracebacks, and a one-node run in-process."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from traft import cli
from traft.kv.client import Client
from traft.kv.localcluster import LOOPBACK, free_ports
from traft.kv.serve import Outcome, serve
from traft.node.config import ClusterConfig, Member

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``traft serve`` configures the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def one_node(tmp_path: Path) -> tuple[ClusterConfig, Path]:
    peer = free_ports(1, socket.SOCK_DGRAM)[0]
    http = free_ports(1, socket.SOCK_STREAM)[0]
    config = ClusterConfig(
        cluster_id="t", members={1: Member(1, (LOOPBACK, peer), (LOOPBACK, http))}
    )
    path = tmp_path / "cluster.toml"
    path.write_text(config.to_toml())
    return config, path


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (None, "cannot read"),
        ("cluster_id = [", "not valid TOML"),
        ('cluster_id = "x"\n', "at least one [[node]]"),
        ('cluster_id = "x"\n[[node]]\nid = 2\npeer = "h:1"\nhttp = "h:2"\n', "node 1 is not in"),
        ('cluster_id = "x"\n[[node]]\nid = 1\npeer = "h"\nhttp = "h:2"\n', "expected HOST:PORT"),
    ],
)
def test_bad_config_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str | None, message: str
) -> None:
    path = tmp_path / "cluster.toml"
    if toml is not None:
        path.write_text(toml)
    status = cli.main(
        ["serve", "--config", str(path), "--id", "1", "--data-dir", str(tmp_path / "d")]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("traft serve: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_data_dir_in_the_way(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, path = one_node(tmp_path)
    (tmp_path / "file").write_text("")
    status = cli.main(
        ["serve", "--config", str(path), "--id", "1", "--data-dir", str(tmp_path / "file" / "d")]
    )
    err = capsys.readouterr().err
    assert status == 2 and "cannot create the data directory" in err and "Traceback" not in err


def test_address_in_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, path = one_node(tmp_path)
    with socket.socket() as taken:
        taken.bind(config.members[1].http)
        taken.listen()
        status = cli.main(
            ["serve", "--config", str(path), "--id", "1", "--data-dir", str(tmp_path / "d")]
        )
    err = capsys.readouterr().err
    assert status == 1 and "in use" in err and "Traceback" not in err


@pytest.mark.parametrize("which", ["http", "peer"])
def test_address_in_use_names_the_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str
) -> None:
    config, path = one_node(tmp_path)
    member = config.members[1]
    kind = socket.SOCK_STREAM if which == "http" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as taken:
        address = member.http if which == "http" else member.peer
        taken.bind(address)
        if which == "http":
            taken.listen()
        status = cli.main(
            ["serve", "--config", str(path), "--id", "1", "--data-dir", str(tmp_path / "d")]
        )
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("traft serve: error:"))
    what = "HTTP" if which == "http" else "peer (UDP)"
    assert status == 1 and f"the {what} address {address[0]}:{address[1]} is already in use" in line
    assert "Traceback" not in err


async def test_one_node_serves_stops_and_restarts(tmp_path: Path) -> None:
    config, _ = one_node(tmp_path)
    data = tmp_path / "d"
    for round_ in range(2):
        shutdown = trio.Event()
        async with trio.open_nursery() as nursery:
            with trio.fail_after(15):
                host, port = await nursery.start(
                    partial(serve, config, 1, data, handle_signals=False, shutdown=shutdown)
                )
                client = Client([f"http://{host}:{port}"], retry_for=10)
                if round_ == 0:
                    reply = await trio.to_thread.run_sync(
                        partial(client.request, "PUT", "/kv/a", b"kept", idempotency_key="k")
                    )
                    assert reply.status == 200
                else:  # restarted from storage: the write is there
                    reply = await trio.to_thread.run_sync(partial(client.request, "GET", "/kv/a"))
                    assert reply.body == b"kept"
                    status = await trio.to_thread.run_sync(
                        partial(client.get_status, f"http://{host}:{port}")
                    )
                    assert status["role"] == "leader" and status["kv"]["keys"] == 1
                shutdown.set()


async def test_serve_returns_stopped(tmp_path: Path) -> None:
    config, _ = one_node(tmp_path)
    shutdown = trio.Event()
    shutdown.set()
    with trio.fail_after(15):
        outcome = await serve(config, 1, tmp_path / "d", handle_signals=False, shutdown=shutdown)
    assert outcome is Outcome.STOPPED


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve", "--help"],
        ["put", "--help"],
        ["get", "--help"],
        ["del", "--help"],
        ["ticket", "--help"],
        ["status", "--help"],
        ["member", "--help"],
        ["member", "add", "--help"],
        ["member", "remove", "--help"],
        ["leader", "--help"],
        ["leader", "transfer", "--help"],
    ],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: traft") and len(out) > 200
