"""traft: Raft consensus for Python."""
