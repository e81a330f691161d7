"""Deterministic simulation of Raft clusters: real cores, virtual time, chaos."""

from traft.sim.cluster import Cluster, MemoryDisk, SimServer, SnapshotTransfer, chain
from traft.sim.network import Network

__all__ = ["Cluster", "MemoryDisk", "Network", "SimServer", "SnapshotTransfer", "chain"]
