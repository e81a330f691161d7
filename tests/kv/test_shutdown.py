"""What each SIGTERM and SIGINT does to a stopping ``traft serve`` (traft.kv.shutdown)."""

from __future__ import annotations

import logging
import signal

import pytest
import trio

from traft.kv.shutdown import SignalPolicy

pytestmark = pytest.mark.timeout(10)


def policy() -> tuple[SignalPolicy, list[str]]:
    forced: list[str] = []
    return SignalPolicy(trio.Event(), force=lambda: forced.append("forced")), forced


def test_the_first_sigterm_stops(caplog: pytest.LogCaptureFixture) -> None:
    p, forced = policy()
    with caplog.at_level(logging.INFO, logger="traft.serve"):
        p.on_signal(signal.SIGTERM)
    assert p.shutdown.is_set() and forced == []
    assert "received SIGTERM; stopping" in caplog.text


def test_a_repeated_sigterm_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p, forced = policy()
    with caplog.at_level(logging.INFO, logger="traft.serve"):
        for _ in range(3):
            p.on_signal(signal.SIGTERM)
    assert forced == []
    assert caplog.text.count("received SIGTERM; already stopping") == 2


def test_a_sigint_after_a_sigterm_is_already_stopping_the_next_forces(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p, forced = policy()
    with caplog.at_level(logging.INFO, logger="traft.serve"):
        p.on_signal(signal.SIGTERM)
        p.on_signal(signal.SIGINT)
        assert forced == []
        assert "received SIGINT; already stopping (a second SIGINT forces" in caplog.text
        p.on_signal(signal.SIGINT)
    assert forced == ["forced"]
    assert "received SIGINT again; forcing exit" in caplog.text


def test_a_second_sigint_forces_the_exit() -> None:
    p, forced = policy()
    p.on_signal(signal.SIGINT)
    assert p.shutdown.is_set() and forced == []
    p.on_signal(signal.SIGINT)
    assert forced == ["forced"]
