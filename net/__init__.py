"""Datagrams for a Raft node: UDP endpoint, framing, authentication, fault injection.

This package knows nothing of Raft; it never imports ``traft``. It carries bytes.
"""
