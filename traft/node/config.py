"""Cluster configuration: ``cluster.toml``.

Example::

    cluster_id = "demo"
    key = "s3cret"                  # optional: HMAC-SHA256 on every datagram

    [timing]                        # optional; these are the defaults
    tick_ms = 10
    election_timeout_ms = 300
    heartbeat_ms = 50

    [snapshot]                      # optional
    entries = 100000                # snapshot after this many applied entries
    bytes = 67108864                # ... or this many bytes of log
    keep_entries = 10000            # entries kept behind a snapshot for slow followers

    [[node]]
    id = 1
    peer = "127.0.0.1:7001"         # UDP, between nodes
    http = "127.0.0.1:8001"         # the client API
    # join = true                   # a node added later with `traft member add`:
    #                                 not a founding member

The nodes listed without ``join = true`` are the founding members; every
node, including one that joins later through ``traft member add``, is started
with the same founding members and learns the current membership from the
log. Add a joining node to the file with ``join = true``; never edit the
founding members of a running cluster.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import attrs

Address = tuple[str, int]


class ConfigError(ValueError):
    """The cluster configuration is missing, unreadable or inconsistent."""


def parse_address(text: str, what: str) -> Address:
    """Parse ``host:port``.

    Raises:
        ConfigError: not a host and a port in 1..65535.
    """
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def format_address(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


@attrs.frozen
class Member:
    """One node's identity and addresses."""

    id: int
    peer: Address
    http: Address
    join: bool = False

    @property
    def url(self) -> str:
        return f"http://{format_address(self.http)}"


@attrs.frozen(kw_only=True)
class Timing:
    tick_ms: int = 10
    election_timeout_ms: int = 300
    heartbeat_ms: int = 50


@attrs.frozen(kw_only=True)
class SnapshotPolicy:
    entries: int = 100_000
    bytes: int = 64 * 2**20
    keep_entries: int = 10_000


# The largest command by default, as etcd's 1.5 MiB request limit suggests a
# KV user expects; up to 64 MiB may be configured (UDP fragments, each lost
# one losing the whole message, make much more impractical).
DEFAULT_MAX_COMMAND = 1 << 20
MIN_MAX_COMMAND = 1024
MAX_MAX_COMMAND = 64 << 20


@attrs.frozen(kw_only=True)
class ClusterConfig:
    """Everything a node needs to know about its cluster."""

    cluster_id: str
    members: dict[int, Member]
    key: bytes | None = None
    timing: Timing = Timing()
    snapshot: SnapshotPolicy = SnapshotPolicy()
    max_datagram: int = 60_000
    max_command: int = DEFAULT_MAX_COMMAND
    """The largest command a node accepts; commands longer than one datagram
    travel as fragments (``net.fragments``)."""

    def member(self, node_id: int) -> Member:
        """The member with this id.

        Raises:
            ConfigError: no such node in the file.
        """
        try:
            return self.members[node_id]
        except KeyError:
            known = ", ".join(str(i) for i in sorted(self.members))
            raise ConfigError(
                f"node {node_id} is not in the cluster configuration (known: {known})"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> ClusterConfig:
        """Read and validate a ``cluster.toml``.

        Raises:
            ConfigError: the file is missing, not TOML, or inconsistent.
        """
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ClusterConfig:
        """Build from parsed TOML.

        Raises:
            ConfigError: a field is missing or wrong.
        """
        unknown = set(data) - _TOP_LEVEL
        if unknown:
            raise ConfigError(
                f"{source}: unknown setting(s) at the top level: {_names(unknown)} "
                f"(known: {', '.join(sorted(_TOP_LEVEL))})"
            )
        cluster_id = data.get("cluster_id")
        if not isinstance(cluster_id, str) or not cluster_id:
            raise ConfigError(f"{source}: cluster_id must be a non-empty string")
        key = data.get("key")
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(f"{source}: key must be a non-empty string")
        nodes = data.get("node")
        if not isinstance(nodes, list) or not nodes:
            raise ConfigError(f"{source}: at least one [[node]] is required")
        members: dict[int, Member] = {}
        for i, node in enumerate(nodes):
            where = f"{source}: node #{i + 1}"
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: must be a table")
            node_id = node.get("id")
            if not isinstance(node_id, int) or isinstance(node_id, bool) or not 0 < node_id < 2**63:
                raise ConfigError(f"{where}: id must be a positive integer")
            if node_id in members:
                raise ConfigError(f"{where}: duplicate id {node_id}")
            join = node.get("join", False)
            if not isinstance(join, bool):
                raise ConfigError(f"{where}: join must be true or false")
            unknown = set(node) - {"id", "peer", "http", "join"}
            if unknown:
                raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
            members[node_id] = Member(
                node_id,
                parse_address(node.get("peer", ""), f"{where} peer"),
                parse_address(node.get("http", ""), f"{where} http"),
                join,
            )
        if all(m.join for m in members.values()):
            raise ConfigError(
                f"{source}: at least one node must be a founding member (join = false)"
            )
        timing = _table(data, "timing", Timing, source)
        if timing.heartbeat_ms >= timing.election_timeout_ms:
            raise ConfigError(f"{source}: timing.heartbeat_ms must be below election_timeout_ms")
        snapshot = _table(data, "snapshot", SnapshotPolicy, source)
        max_datagram = data.get("max_datagram", 60_000)
        if not isinstance(max_datagram, int) or not 1200 <= max_datagram <= 65_000:
            raise ConfigError(f"{source}: max_datagram must be an integer in 1200..65000")
        max_command = data.get("max_command", DEFAULT_MAX_COMMAND)
        if (
            not isinstance(max_command, int)
            or isinstance(max_command, bool)
            or not MIN_MAX_COMMAND <= max_command <= MAX_MAX_COMMAND
        ):
            raise ConfigError(
                f"{source}: max_command must be an integer in {MIN_MAX_COMMAND}..{MAX_MAX_COMMAND}"
            )
        return cls(
            cluster_id=cluster_id,
            members=members,
            key=key.encode() if key else None,
            timing=timing,
            snapshot=snapshot,
            max_datagram=max_datagram,
            max_command=max_command,
        )

    def to_toml(self) -> str:
        """Render as ``cluster.toml`` text (used by scripts that generate clusters)."""
        lines = [f"cluster_id = {_toml_string(self.cluster_id)}"]
        if self.key:
            lines.append(f"key = {_toml_string(self.key.decode())}")
        if self.max_datagram != 60_000:
            lines.append(f"max_datagram = {self.max_datagram}")
        if self.max_command != DEFAULT_MAX_COMMAND:
            lines.append(f"max_command = {self.max_command}")
        t = self.timing
        lines += [
            "",
            "[timing]",
            f"tick_ms = {t.tick_ms}",
            f"election_timeout_ms = {t.election_timeout_ms}",
            f"heartbeat_ms = {t.heartbeat_ms}",
        ]
        s = self.snapshot
        lines += [
            "",
            "[snapshot]",
            f"entries = {s.entries}",
            f"bytes = {s.bytes}",
            f"keep_entries = {s.keep_entries}",
        ]
        for node_id in sorted(self.members):
            m = self.members[node_id]
            lines += [
                "",
                "[[node]]",
                f"id = {node_id}",
                f'peer = "{format_address(m.peer)}"',
                f'http = "{format_address(m.http)}"',
            ]
            if m.join:
                lines.append("join = true")
        return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    # A TOML basic string: JSON's escapes are TOML's, once non-ASCII stays as it is
    # (TOML has no surrogate-pair escapes).
    return json.dumps(text, ensure_ascii=False)


# Every top-level key of cluster.toml; anything else is a mistake (a typo such as
# ``[timings]`` or ``clusterid`` would otherwise be ignored without a word).
_TOP_LEVEL = frozenset(
    {"cluster_id", "key", "timing", "snapshot", "max_datagram", "max_command", "node"}
)


def _names(keys: set[str]) -> str:
    return ", ".join(repr(k) for k in sorted(keys))


def _table(data: dict[str, Any], name: str, cls: type[Any], source: str) -> Any:
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    fields = {f.name for f in attrs.fields(cls)}
    unknown = set(raw) - fields
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) in [{name}]: {', '.join(sorted(unknown))}")
    for k, v in raw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConfigError(f"{source}: {name}.{k} must be a positive integer")
    return cls(**raw)
