"""The README's examples, as a reader would copy them."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from traft.kv.localcluster import free_ports

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(90)


def blocks(language: str, section: str) -> list[str]:
    """The ``language`` code blocks of the README section whose title is ``section``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], re.S)


def test_node_is_importable_as_the_readme_names_it() -> None:
    from traft.node import Node
    from traft.node.node import Node as Defined

    assert Node is Defined
    assert "traft.node.Node" in (ROOT / "README.md").read_text()


def test_the_embedding_example_runs_against_a_one_node_cluster(tmp_path: Path) -> None:
    (toml,) = blocks("toml", "Embedding a node")
    (code,) = blocks("python", "Embedding a node")
    # The README's UDP port may be taken on this machine; everything else is verbatim.
    port = free_ports(1, socket.SOCK_DGRAM)[0]
    (tmp_path / "cluster.toml").write_text(toml.replace("127.0.0.1:7001", f"127.0.0.1:{port}"))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "5 5 leader\n"
    assert (tmp_path / "data" / "n1").is_dir()
