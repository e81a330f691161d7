"""How ``traft serve`` stops: signals, handing over leadership, then stopping.

Theory of operation. :func:`stop_on_signals` holds SIGTERM and SIGINT for
the whole life of :func:`traft.kv.serve.serve`, from before the node starts
until it has stopped, so that no signal ever reaches Python's default
handler (which would end the process in the middle of its shutdown):

* the first SIGTERM or SIGINT sets ``shutdown``: serve hands over
  leadership if this node leads (:func:`hand_over`), then stops the HTTP
  server and the node, and logs ``stopped``;
* a repeated SIGTERM, or a SIGINT after a SIGTERM, during that shutdown is
  logged (``already stopping``) and changes nothing: supervisors and scripts
  often signal twice;
* a second SIGINT (an operator pressing Ctrl-C again) forces the exit: it is
  logged and the process ends at once with status 130, without waiting for
  the hand-over or the clients. Nothing acknowledged is lost (the storage
  survives SIGKILL); clients in flight see their connection close.

:func:`hand_over` asks the node to transfer leadership to its most
up-to-date voting follower and waits a bounded time (twice the election
timeout; the core itself gives up after one). The node keeps answering its
peers and clients meanwhile: writes get 503 with Retry-After during the
transfer and 307 to the new leader after it, reads are answered. A follower
has nothing to hand over and stops at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from traft.node.node import Node

log = logging.getLogger("traft.serve")

FORCED_EXIT_STATUS = 130

# SIGTERMs received before stop_on_signals took over (catch_early_sigterm).
_early: list[int] = []
_early_installed = False


def catch_early_sigterm() -> None:
    """Until :func:`stop_on_signals` takes over, remember a SIGTERM instead of
    dying of it; stop_on_signals then acts on it. ``traft serve`` calls this
    first thing, so that a SIGTERM while it loads its configuration, imports
    and opens its storage stops it cleanly once started. (Before this runs,
    while the interpreter starts, SIGTERM still ends the process: nothing is
    open yet.)"""
    global _early_installed

    def remember(signum: int, frame: object) -> None:
        _early.append(signum)

    signal.signal(signal.SIGTERM, remember)
    _early_installed = True


def _force_exit() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    sys.stderr.flush()
    os._exit(FORCED_EXIT_STATUS)


class SignalPolicy:
    """What each SIGTERM and SIGINT does (see the module doc).

    ``force`` ends the process (tests pass their own).
    """

    def __init__(self, shutdown: trio.Event, *, force: Callable[[], None] = _force_exit) -> None:
        self.shutdown = shutdown
        self.force = force
        self.interrupts = 0

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts >= 2:
                log.warning("received SIGINT again; forcing exit now (status 130)")
                self.force()
                return
        if self.shutdown.is_set():
            hint = " (a second SIGINT forces the exit)" if signum == signal.SIGINT else ""
            log.info("received %s; already stopping%s", name, hint)
            return
        log.info("received %s; stopping", name)
        self.shutdown.set()


@contextlib.asynccontextmanager
async def stop_on_signals(
    shutdown: trio.Event, *, enabled: bool = True, force: Callable[[], None] = _force_exit
) -> AsyncIterator[None]:
    """From entry to exit, SIGTERM and SIGINT act as :class:`SignalPolicy` says
    (when ``enabled``). A signal that arrives while the node is still starting
    is kept: the node stops cleanly as soon as it has started.

    After exit SIGTERM stays ignored: the process is on its way out, and a
    supervisor's late second SIGTERM must not turn a clean exit into death
    by signal (status -15) in the last milliseconds.
    """
    if not enabled:
        yield
        return
    # trio's receiver restores the handler it found: SIG_IGN (or the early
    # handler, which only remembers), with no moment between the two in
    # which the default handler could kill the process.
    if not _early_installed:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    policy = SignalPolicy(shutdown, force=force)
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_signals, policy)  # returns once the handler is installed
        while _early:
            policy.on_signal(_early.pop(0))
        yield
        nursery.cancel_scope.cancel()


async def _watch_signals(
    policy: SignalPolicy, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            policy.on_signal(signum)


async def hand_over(node: Node, *, timeout: float) -> int | None:
    """If ``node`` leads, transfer leadership before it stops; the new leader's id.

    Waits at most ``timeout`` seconds. Never raises for a failed transfer
    (it is logged: the node stops anyway, and the others elect a leader
    after an election timeout, as after a crash). None when the node does
    not lead or the transfer failed.
    """
    from traft.node.errors import NodeError

    raft = node.raft
    if raft is None or not raft.is_leader:
        return None
    if len(raft.voters()) < 2:
        return None  # a cluster of one: nobody to hand over to
    log.info("this node leads: handing over leadership before stopping")
    try:
        leader = await node.transfer_leadership(timeout=timeout)
    except NodeError as exc:
        log.warning("%s; stopping anyway", exc)
        return None
    log.info("leadership handed over to node %d", leader)
    return leader
