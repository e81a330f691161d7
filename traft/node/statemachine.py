"""The protocol an application implements to be replicated by a node.

A state machine must be deterministic: the same commands in the same order
give the same state and results on every node. It never reads clocks or
randomness of its own; anything time-like must be inside the command.

Example::

    class Counter:
        def __init__(self) -> None:
            self.value = 0

        def apply(self, index: int, command: bytes) -> int:
            self.value += int(command)
            return self.value

        def snapshot(self) -> Iterable[bytes]:
            yield str(self.value).encode()

        def restore(self, chunks: Iterable[bytes]) -> None:
            self.value = int(b"".join(chunks))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class StateMachine(Protocol):
    """What a node needs from the application."""

    def apply(self, index: int, command: bytes) -> Any:
        """Apply a committed command; the return value goes back to the proposer."""

    def snapshot(self) -> Iterable[bytes]:
        """The whole state as a stream of chunks (may be larger than memory)."""

    def restore(self, chunks: Iterable[bytes]) -> None:
        """Replace the whole state by a snapshot written by :meth:`snapshot`."""
