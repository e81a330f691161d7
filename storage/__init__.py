"""Durable state for a Raft node: a segment log, term/vote metadata and snapshots.

This package knows nothing of Raft; it never imports ``traft``.
"""
