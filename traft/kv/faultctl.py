"""Run-time control of a node's network faults, for fault testing (``/faults``).

Theory of operation: ``traft serve --enable-faults`` gives its node's UDP
endpoint a :class:`net.FaultInjector` and serves ``/faults`` (without the
flag the route answers 404 and the endpoint has no injector at all).
``GET /faults`` shows the settings and the injector's counters;
``POST /faults`` takes one JSON object and applies it, in this order:

``{"reset": true}``
    back to a perfect network (no loss, no partition, nothing held);
``{"heal": true}``
    lift every partition, keep the loss/dup/reorder/delay settings;
``{"drop": P, "dupe": P, "reorder": P, "delay_ms": [LO, HI]}``
    any of them: datagram loss, duplication and reordering probabilities in
    [0, 1] and a uniform delay range in milliseconds (send path);
``{"partition": [[A...], [B...]], "one_way": false}``
    cut the links between the peer id groups A and B (with ``one_way``,
    only A -> B); several may be given as ``"partitions": [...]``.

Partitions apply to both paths of this node (sends to a blocked peer and
datagrams from a blocked sender are dropped), so telling every node the same
partition cuts the cluster consistently. A nemesis re-sends the whole state
after restarting a node: a new process starts with a perfect network.

:func:`apply_fault_request` holds the parsing and validation (no I/O); the
HTTP app only hands it the decoded body.
"""

from __future__ import annotations

from typing import Any

import net

__all__ = ["FaultRequestError", "apply_fault_request", "describe_faults"]

_KEYS = frozenset(
    {"reset", "heal", "drop", "dupe", "reorder", "delay_ms", "partition", "partitions", "one_way"}
)


class FaultRequestError(ValueError):
    """A ``/faults`` request that is not valid; nothing was changed."""


def describe_faults(faults: net.FaultInjector) -> dict[str, Any]:
    """Settings, partitions and counters, JSON-ready."""
    settings = faults.settings()
    return {
        "drop": settings["drop"],
        "dupe": settings["dupe"],
        "reorder": settings["reorder"],
        "delay_ms": list(settings["delay_ms"]),  # type: ignore[call-overload]
        "blocked": [list(link) for link in settings["blocked"]],  # type: ignore[attr-defined]
        "stats": dict(faults.stats),
    }


def _probability(spec: dict[str, Any], name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultRequestError(f"{name} must be a number in [0, 1]")
    return float(value)


def _group(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise FaultRequestError("a partition group is a list of node ids")
    return value


def _partitions(spec: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    raw: list[Any] = []
    if "partition" in spec:
        raw.append(spec["partition"])
    if "partitions" in spec:
        if not isinstance(spec["partitions"], list):
            raise FaultRequestError("partitions must be a list of [A, B] pairs")
        raw.extend(spec["partitions"])
    pairs = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 2:
            raise FaultRequestError("a partition is a pair of groups: [[A...], [B...]]")
        a, b = _group(item[0]), _group(item[1])
        if set(a) & set(b):
            raise FaultRequestError(f"partition groups overlap: {sorted(set(a) & set(b))}")
        pairs.append((a, b))
    return pairs


def apply_fault_request(faults: net.FaultInjector, spec: Any) -> dict[str, Any]:
    """Validate ``spec`` (a decoded JSON body, see the module doc) and apply it.

    Returns:
        The state after the change (:func:`describe_faults`).

    Raises:
        FaultRequestError: the request is not valid; nothing was changed.
    """
    if not isinstance(spec, dict):
        raise FaultRequestError("the body must be a JSON object")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise FaultRequestError(f"unknown field(s): {', '.join(unknown)}")
    for flag in ("reset", "heal", "one_way"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise FaultRequestError(f"{flag} must be true or false")
    drop, dupe, reorder = (_probability(spec, n) for n in ("drop", "dupe", "reorder"))
    delay: tuple[float, float] | None = None
    if spec.get("delay_ms") is not None:
        value = spec["delay_ms"]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1] <= 60_000
        ):
            raise FaultRequestError("delay_ms must be [LO, HI] with 0 <= LO <= HI <= 60000")
        delay = (float(value[0]), float(value[1]))
    pairs = _partitions(spec)
    # Everything is valid: apply.
    if spec.get("reset"):
        faults.reset()
    if spec.get("heal"):
        faults.heal()
    faults.set(drop=drop, dupe=dupe, reorder=reorder, delay_ms=delay)
    for a, b in pairs:
        faults.partition(a, b, one_way=bool(spec.get("one_way", False)))
    return describe_faults(faults)
