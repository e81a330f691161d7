"""Strict cattrs structure hooks shared by traft's codecs (the wire and the KV commands).

cattrs' default hooks convert (``int("5")``, ``bool(1)``); data from the
network or the log must instead be exactly what the schema says, so these
hooks check types and ranges and raise the codec's own error.
"""

from __future__ import annotations

from typing import Any

import cattrs

MAX_UINT = 1 << 63


def register_strict_hooks(conv: cattrs.Converter, error: type[Exception]) -> None:
    """Make ``conv`` accept only exact ints in [0, 2**63), bools, bytes and strs.

    Each refusal raises ``error`` with a short description.
    """

    def strict_int(value: Any, _: type) -> int:
        if type(value) is not int or not 0 <= value < MAX_UINT:
            raise error(f"expected a non-negative integer, got {value!r:.40}")
        return value

    def strict_bool(value: Any, _: type) -> bool:
        if type(value) is not bool:
            raise error(f"expected a boolean, got {value!r:.40}")
        return value

    def strict_bytes(value: Any, _: type) -> bytes:
        if type(value) is not bytes:
            raise error(f"expected bytes, got {type(value).__name__}")
        return value

    def strict_str(value: Any, _: type) -> str:
        if type(value) is not str:
            raise error(f"expected a string, got {type(value).__name__}")
        return value

    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(bool, strict_bool)
    conv.register_structure_hook(bytes, strict_bytes)
    conv.register_structure_hook(str, strict_str)
