"""Local clusters of ``traft serve`` processes on loopback, for scripts and tests.

Theory of operation: a :class:`LocalCluster` owns one folder::

    ROOT/cluster.toml      generated: free loopback ports, one [[node]] per node
    ROOT/n1/               node 1's data directory
    ROOT/n1.log            node 1's log (stdout and stderr)
    ROOT/n1.pid            node 1's process id while it runs

Nodes run as detached processes (their own session, so a Ctrl-C in the
terminal that started them does not reach them) and are found again through
their pid files, so one command can start a cluster and another stop it.
Everything is synchronous (``subprocess``, ``http.client`` through
:class:`~traft.kv.client.Client`): scripts and tests call it directly or
from threads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from traft.kv.client import Client, ClientError
from traft.node.config import ClusterConfig, Member, SnapshotPolicy, Timing

LOOPBACK = "127.0.0.1"


def free_ports(count: int, kind: int) -> list[int]:
    """``count`` distinct ports on loopback, free right now, for ``kind``
    (``socket.SOCK_DGRAM`` or ``socket.SOCK_STREAM``)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, kind)
            sockets.append(s)
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ClusterError(Exception):
    """The local cluster is not in the state asked for."""


@attrs.frozen(kw_only=True)
class RollingStep:
    """One node of a rolling restart (:meth:`LocalCluster.restart_rolling`)."""

    node_id: int
    role: str  # what it was before its restart: "leader" or "follower"
    exit_status: int | None  # None: started by another process
    clean: bool  # exit status 0, or (started elsewhere) its log ends with "stopped"
    stop_s: float  # from SIGTERM to its exit
    total_s: float  # from SIGTERM to caught up again
    leader_after: int
    applied: int


class LocalCluster:
    """A cluster of ``traft serve`` processes under ``root`` (see the module doc)."""

    def __init__(
        self, root: Path, *, python: str | None = None, serve_args: Sequence[str] = ()
    ) -> None:
        self.root = Path(root).resolve()
        self.python = python or sys.executable
        self.serve_args = list(serve_args)
        """Extra ``traft serve`` arguments for every node started (e.g. ``--enable-faults``)."""
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    # --- the folder ------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "cluster.toml"

    @property
    def config(self) -> ClusterConfig:
        return ClusterConfig.load(self.config_path)

    def data_dir(self, node_id: int) -> Path:
        return self.root / f"n{node_id}"

    def log_path(self, node_id: int) -> Path:
        return self.root / f"n{node_id}.log"

    def pid_path(self, node_id: int) -> Path:
        return self.root / f"n{node_id}.pid"

    @property
    def ids(self) -> list[int]:
        return sorted(self.config.members)

    def url(self, node_id: int) -> str:
        return self.config.members[node_id].url

    @classmethod
    def create(
        cls,
        root: Path,
        n: int = 3,
        *,
        cluster_id: str = "local",
        key: bytes | None = None,
        timing: Timing | None = None,
        snapshot: SnapshotPolicy | None = None,
        python: str | None = None,
        serve_args: Sequence[str] = (),
    ) -> LocalCluster:
        """Make the folder and write ``cluster.toml`` for ``n`` founding nodes on free ports.

        Raises:
            ClusterError: the folder already holds a cluster.
        """
        cluster = cls(root, python=python, serve_args=serve_args)
        if cluster.config_path.exists():
            raise ClusterError(f"{cluster.config_path} exists already")
        cluster.root.mkdir(parents=True, exist_ok=True)
        peers = free_ports(n, socket.SOCK_DGRAM)
        https = free_ports(n, socket.SOCK_STREAM)
        members = {
            i: Member(i, (LOOPBACK, peers[i - 1]), (LOOPBACK, https[i - 1]))
            for i in range(1, n + 1)
        }
        config = ClusterConfig(
            cluster_id=cluster_id,
            members=members,
            key=key,
            timing=timing or Timing(),
            snapshot=snapshot or SnapshotPolicy(),
        )
        cluster.config_path.write_text(config.to_toml())
        return cluster

    def add_to_config(self, node_id: int | None = None) -> Member:
        """Add a joining node (``join = true``) on free ports to ``cluster.toml``."""
        config = self.config
        node_id = node_id or max(config.members) + 1
        member = Member(
            node_id,
            (LOOPBACK, free_ports(1, socket.SOCK_DGRAM)[0]),
            (LOOPBACK, free_ports(1, socket.SOCK_STREAM)[0]),
            True,
        )
        members = {**config.members, node_id: member}
        new = ClusterConfig(
            cluster_id=config.cluster_id,
            members=members,
            key=config.key,
            timing=config.timing,
            snapshot=config.snapshot,
            max_datagram=config.max_datagram,
            max_command=config.max_command,
        )
        # Atomically: nodes (re)starting meanwhile must read the old file or the new one.
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text(new.to_toml())
        tmp.replace(self.config_path)
        return member

    # --- processes -----------------------------------------------------------------

    def pid(self, node_id: int) -> int | None:
        """The process id of a running node, or None."""
        proc = self._procs.get(node_id)
        if proc is not None and proc.poll() is None:
            return proc.pid
        # Not started here, or exited: the pid file may name a process another
        # LocalCluster started since (scripts/cluster restart --rolling).
        try:
            pid = int(self.pid_path(node_id).read_text())
        except (OSError, ValueError):
            return None
        return pid if _running(pid, str(self.data_dir(node_id))) else None

    def start(self, node_id: int) -> int:
        """Start node ``node_id`` in the background; return its pid.

        Raises:
            ClusterError: it is running already.
        """
        if self.pid(node_id) is not None:
            raise ClusterError(f"node {node_id} is running already")
        data = self.data_dir(node_id)
        data.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(node_id), "ab") as out:
            proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "traft.cli",
                    "serve",
                    "--config",
                    str(self.config_path),
                    "--id",
                    str(node_id),
                    "--data-dir",
                    str(data),
                    *self.serve_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        self._procs[node_id] = proc
        self.pid_path(node_id).write_text(f"{proc.pid}\n")
        return proc.pid

    def start_all(self) -> None:
        """Start every node of ``cluster.toml`` that is not running."""
        for node_id in self.ids:
            if self.pid(node_id) is None:
                self.start(node_id)

    def signal(self, node_id: int, signum: int) -> bool:
        """Send ``signum`` to a running node; False if it is not running."""
        pid = self.pid(node_id)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        return True

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id`` and wait until it is gone."""
        self.signal(node_id, signal.SIGKILL)
        self.wait_exit(node_id, 10)

    def stop(self, node_id: int, timeout: float = 10.0) -> int | None:
        """SIGTERM node ``node_id``, wait for it (SIGKILL after ``timeout``); its exit
        status (None for a node another process started). A leader hands over
        leadership before it exits."""
        self.signal(node_id, signal.SIGTERM)
        return self._reap(node_id, timeout)

    def _reap(self, node_id: int, timeout: float) -> int | None:
        """Wait for a node sent SIGTERM once (never again: a second signal must not
        be needed, and a node stopping logs it as noise); SIGKILL after ``timeout``."""
        if not self.wait_exit(node_id, timeout):
            self.signal(node_id, signal.SIGKILL)
            self.wait_exit(node_id, 5)
        with contextlib.suppress(OSError):
            self.pid_path(node_id).unlink()
        proc = self._procs.pop(node_id, None)
        return proc.poll() if proc is not None else None

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every running node (one SIGTERM each, all at once, then wait)."""
        ids = [i for i in self._known_ids() if self.pid(i) is not None]
        for node_id in ids:
            self.signal(node_id, signal.SIGTERM)
        for node_id in ids:
            self._reap(node_id, timeout)

    def restart_rolling(
        self,
        *,
        timeout: float = 30.0,
        on_step: Callable[[RollingStep], None] | None = None,
    ) -> list[RollingStep]:
        """Restart every running node one at a time, the followers first and the
        leader last (its SIGTERM hands leadership over before it exits).

        Before the next node, the restarted one must answer, the cluster must
        agree on a leader, and the node must have applied everything the
        leader had committed when it came back (it has caught up). A cluster
        of three keeps a majority throughout. ``on_step`` is called after
        each node.

        Raises:
            ClusterError: a node did not come back, catch up or exit within
                ``timeout`` seconds, or no leader was agreed on.
        """
        leader = self.wait_for_leader(timeout)
        running = [i for i in self.ids if self.pid(i) is not None]
        order = [i for i in running if i != leader] + ([leader] if leader in running else [])
        steps = []
        for node_id in order:
            role = "leader" if node_id == leader else "follower"
            start = time.monotonic()
            status = self.stop(node_id, timeout)
            stopped = time.monotonic()
            clean = status == 0 if status is not None else self.logged_stopped(node_id)
            self.start(node_id)
            self.wait_up(timeout, ids=[node_id])
            new_leader = self.wait_for_leader(timeout)
            caught_up = self.wait_caught_up(node_id, timeout)
            step = RollingStep(
                node_id=node_id,
                role=role,
                exit_status=status,
                clean=clean,
                stop_s=stopped - start,
                total_s=time.monotonic() - start,
                leader_after=new_leader,
                applied=caught_up,
            )
            steps.append(step)
            if on_step is not None:
                on_step(step)
        return steps

    def wait_caught_up(self, node_id: int, timeout: float = 30.0) -> int:
        """Wait until node ``node_id`` has applied the leader's commit index as it
        was when this was called; the node's applied index.

        Raises:
            ClusterError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        leader = self.wait_for_leader(timeout)
        target = self.statuses().get(leader, {}).get("commit", 0)
        while True:
            applied = self.statuses().get(node_id, {}).get("applied", -1)
            if isinstance(applied, int) and applied >= target:
                return applied
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node {node_id} applied {applied}, not the leader's commit {target}, "
                    f"after {timeout:g} s"
                )
            time.sleep(0.02)

    def wait_exit(self, node_id: int, timeout: float) -> bool:
        """Wait until node ``node_id`` is not running; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pid(node_id) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def logged_stopped(self, node_id: int) -> bool:
        """Whether node ``node_id``'s log ends with ``traft serve``'s last line, "stopped"
        (how a clean exit shows for a process another one started)."""
        try:
            with open(self.log_path(node_id), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode("utf-8", "replace").rstrip()
        except OSError:
            return False
        return tail.endswith("stopped")

    def exit_status(self, node_id: int) -> int | None:
        """The exit status of a node this object started and that has exited."""
        proc = self._procs.get(node_id)
        return proc.poll() if proc is not None else None

    def _known_ids(self) -> list[int]:
        ids = set(self.ids) if self.config_path.exists() else set()
        ids |= {int(p.stem[1:]) for p in self.root.glob("n*.pid") if p.stem[1:].isdigit()}
        return sorted(ids)

    # --- asking the nodes ----------------------------------------------------------

    def client(self, **kwargs: Any) -> Client:
        """A client that knows every node of ``cluster.toml``."""
        return Client([self.url(i) for i in self.ids], **kwargs)

    def statuses(self, *, digest: bool = False, timeout: float = 1.0) -> dict[int, dict[str, Any]]:
        """``/status`` of every node that answers, by id."""
        client = self.client()
        found: dict[int, dict[str, Any]] = {}
        for node_id in self.ids:
            try:
                found[node_id] = client.get_status(
                    self.url(node_id), timeout=timeout, digest=digest
                )
            except ClientError:
                continue
        return found

    def wait_up(self, timeout: float = 20.0, ids: list[int] | None = None) -> None:
        """Wait until the nodes ``ids`` (default: all) answer ``/status``.

        Raises:
            ClusterError: some did not within ``timeout`` seconds.
        """
        want = set(ids or self.ids)
        deadline = time.monotonic() + timeout
        while not want <= set(self.statuses()):
            if time.monotonic() > deadline:
                missing = sorted(want - set(self.statuses()))
                raise ClusterError(f"node(s) {missing} not answering after {timeout:g} s")
            time.sleep(0.05)

    def wait_for_leader(self, timeout: float = 10.0, *, among: set[int] | None = None) -> int:
        """Wait until the answering nodes agree on a leader that says it leads; its id.

        Raises:
            ClusterError: no such agreement within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.statuses()
            if among is not None:
                statuses = {i: s for i, s in statuses.items() if i in among}
            leaders = {s.get("leader_id") for s in statuses.values()}
            if len(leaders) == 1:
                (leader,) = leaders
                if leader in statuses and statuses[leader].get("role") == "leader":
                    return int(leader)
            if time.monotonic() > deadline:
                raise ClusterError(f"no leader within {timeout:g} s")
            time.sleep(0.05)

    def wait_converged(self, ids: list[int] | None = None, timeout: float = 20.0) -> dict[int, str]:
        """Wait until the nodes ``ids`` (default: all) applied the same index and hold the
        same state; their state digests by id.

        Raises:
            ClusterError: not converged within ``timeout`` seconds.
        """
        ids = ids or self.ids
        deadline = time.monotonic() + timeout
        last: dict[int, Any] = {}
        while True:
            statuses = self.statuses(digest=True, timeout=5.0)
            kv = {i: statuses[i].get("kv", {}) for i in ids if i in statuses}
            last = {i: (k.get("applied"), k.get("digest")) for i, k in kv.items()}
            if len(kv) == len(ids) and len(set(last.values())) == 1:
                return {i: str(k.get("digest")) for i, k in kv.items()}
            if time.monotonic() > deadline:
                raise ClusterError(f"nodes did not converge within {timeout:g} s: {last}")
            time.sleep(0.1)


def _running(pid: int, data_dir: str) -> bool:
    """Whether ``pid`` is a live ``traft serve`` of ``data_dir`` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: the pid was reused
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # not Linux: trust the pid file
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rpartition(")")[2].split()[0] == "Z":
        return False  # a zombie has exited
    return data_dir.encode() in cmdline
