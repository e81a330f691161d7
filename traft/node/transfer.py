"""Snapshots over datagrams: chunked, resumable, checked before install.

Theory of operation. The leader's :class:`SnapshotSender` streams the
newest snapshot file to one follower as :class:`~traft.wire.SnapshotChunk`
datagrams, go-back-N: up to ``window`` chunks beyond what the follower has
acknowledged, and from the acknowledged offset again when no acknowledgement
arrives within ``resend_s``. The follower's :class:`SnapshotReceiver`
accepts only the chunk that starts exactly where its data ends (so loss,
duplication and reordering are harmless: anything else is ignored and
re-acknowledged), writes it to a temporary snapshot file, and after the last
chunk checks the SHA-256 of the whole data before the node installs it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import trio

import storage
from traft.wire import SnapshotAck, SnapshotChunk

log = logging.getLogger(__name__)


def snapshot_digest(store: storage.SnapshotStore, info: storage.SnapshotInfo) -> bytes:
    """SHA-256 of a stored snapshot's data (reads it through once)."""
    digest = hashlib.sha256()
    with store.reader(info) as reader:
        for chunk in reader.chunks():
            digest.update(chunk)
    return digest.digest()


def read_range(
    info: storage.SnapshotInfo, store: storage.SnapshotStore, offset: int, size: int
) -> bytes:
    """Bytes [offset, offset + size) of a snapshot's data (streams from the start)."""
    out = bytearray()
    pos = 0
    with store.reader(info) as reader:
        for chunk in reader.chunks():
            end = pos + len(chunk)
            if end > offset:
                out += chunk[max(offset - pos, 0) : offset + size - pos]
            pos = end
            if pos >= offset + size:
                break
    return bytes(out)


class SnapshotSender:
    """Sends one snapshot to one follower until it is acknowledged whole."""

    def __init__(
        self,
        *,
        peer_id: int,
        leader_id: int,
        term: int,
        info: storage.SnapshotInfo,
        store: storage.SnapshotStore,
        send: Callable[[int, SnapshotChunk], None],
        chunk_size: int,
        window: int = 32,
        resend_s: float = 0.2,
    ) -> None:
        self.peer_id = peer_id
        self.leader_id = leader_id
        self.term = term
        self.info = info
        self._store = store
        self._send = send
        self._chunk_size = chunk_size
        self._window = window
        self._resend_s = resend_s
        self._acked = 0
        self._acks_send, self._acks = trio.open_memory_channel[SnapshotAck](64)
        self.done = False

    def on_ack(self, ack: SnapshotAck) -> None:
        """Feed an acknowledgement from the follower (never blocks)."""
        if ack.index == self.info.index:
            try:
                self._acks_send.send_nowait(ack)
            except trio.WouldBlock:
                pass

    async def run(self) -> None:
        info = self.info
        digest = snapshot_digest(self._store, info)
        data = read_range(info, self._store, 0, info.size)
        total = info.size
        log.info(
            "sending snapshot %d (term %d, %d bytes) to node %d",
            info.index,
            info.term,
            total,
            self.peer_id,
        )
        idle_rounds = 0
        while not self.done:
            if idle_rounds >= 50:
                log.warning(
                    "node %d does not acknowledge snapshot %d; giving up", self.peer_id, info.index
                )
                return
            idle_rounds += 1
            # Send the window from the acknowledged offset.
            offset = self._acked
            for _ in range(self._window):
                end = min(offset + self._chunk_size, total)
                self._send(
                    self.peer_id,
                    SnapshotChunk(
                        term=self.term,
                        leader_id=self.leader_id,
                        index=info.index,
                        snapshot_term=info.term,
                        membership=info.membership,
                        offset=offset,
                        total=total,
                        checksum=digest,
                        data=data[offset:end],
                    ),
                )
                offset = end
                if offset >= total:
                    break
            with trio.move_on_after(self._resend_s):
                while True:
                    ack = await self._acks.receive()
                    if ack.done:
                        self.done = True
                        break
                    if ack.received > self._acked:
                        self._acked = ack.received
                        idle_rounds = 0
                        break
        log.info("node %d has snapshot %d", self.peer_id, info.index)


class SnapshotReceiver:
    """Assembles one incoming snapshot at a time into a temporary snapshot file."""

    def __init__(self, store: storage.SnapshotStore) -> None:
        self._store = store
        self._writer: storage.SnapshotWriter | None = None
        self._key: tuple[int, int, bytes] | None = None
        self._received = 0
        self._digest = hashlib.sha256()
        self._completed: tuple[int, int, bytes] | None = None
        self.rejected = 0

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
        self._writer = None
        self._key = None

    def on_chunk(self, chunk: SnapshotChunk) -> tuple[SnapshotAck, storage.SnapshotInfo | None]:
        """Take one chunk; returns the acknowledgement and, when complete and checked, the snapshot."""
        key = (chunk.index, chunk.snapshot_term, chunk.checksum)
        if key == self._completed:
            return SnapshotAck(
                term=chunk.term, index=chunk.index, received=chunk.total, done=True
            ), None
        if key != self._key:
            if chunk.offset != 0:
                return SnapshotAck(term=chunk.term, index=chunk.index, received=0, done=False), None
            self.abort()
            self._writer = self._store.writer(chunk.snapshot_term, chunk.index, chunk.membership)
            self._key = key
            self._received = 0
            self._digest = hashlib.sha256()
        assert self._writer is not None
        if chunk.offset == self._received and chunk.data:
            self._writer.write(chunk.data)
            self._digest.update(chunk.data)
            self._received += len(chunk.data)
        if self._received < chunk.total:
            return SnapshotAck(
                term=chunk.term, index=chunk.index, received=self._received, done=False
            ), None
        writer = self._writer
        self._writer = None
        self._key = None
        if self._digest.digest() != chunk.checksum or self._received != chunk.total:
            writer.abort()
            self.rejected += 1
            log.warning("snapshot %d failed its checksum; discarded", chunk.index)
            return SnapshotAck(term=chunk.term, index=chunk.index, received=0, done=False), None
        info = writer.commit()
        self._completed = key
        return SnapshotAck(
            term=chunk.term, index=chunk.index, received=self._received, done=True
        ), info
