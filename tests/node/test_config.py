"""cluster.toml: every key it may hold is known, and a mistake names the key and the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from traft.node.config import ClusterConfig, ConfigError, Member

NODE = '[[node]]\nid = 1\npeer = "127.0.0.1:7001"\nhttp = "127.0.0.1:8001"\n'


def load(tmp_path: Path, text: str) -> ClusterConfig:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return ClusterConfig.load(path)


def test_a_full_file_loads(tmp_path: Path) -> None:
    text = (
        'cluster_id = "c"\nkey = "k"\nmax_datagram = 9000\n'
        "[timing]\ntick_ms = 5\n[snapshot]\nentries = 7\n" + NODE
    )
    config = load(tmp_path, text)
    assert config.max_datagram == 9000 and config.timing.tick_ms == 5
    assert config.snapshot.entries == 7 and config.key == b"k"
    assert ClusterConfig.from_dict(tomllib.loads(config.to_toml())) == config


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('cluster_id = "c"\nclusterid = "typo"\n' + NODE, "'clusterid'"),
        ('cluster_id = "c"\n[timings]\ntick_ms = 5\n' + NODE, "'timings'"),
        ('cluster_id = "c"\n[[nodes]]\nid = 2\n' + NODE, "'nodes'"),
    ],
)
def test_an_unknown_top_level_key_is_an_error(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    message = str(error.value)
    assert str(tmp_path / "cluster.toml") in message
    assert "unknown setting" in message and "top level" in message and key in message


def test_unknown_keys_in_tables_are_errors_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) in \[timing\]: tick"):
        load(tmp_path, 'cluster_id = "c"\n[timing]\ntick = 5\n' + NODE)
    with pytest.raises(ConfigError, match=r"node #1: unknown setting\(s\): port"):
        load(tmp_path, 'cluster_id = "c"\n' + NODE + "port = 1\n")


def test_to_toml_round_trips_strings_that_need_escapes() -> None:
    config = ClusterConfig(
        cluster_id='a "quoted" id\\ é',
        members={1: Member(1, ("127.0.0.1", 7001), ("127.0.0.1", 8001))},
        key=b'k"e\\y\n',
    )
    assert ClusterConfig.from_dict(tomllib.loads(config.to_toml())) == config
