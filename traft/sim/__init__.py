"""Deterministic simulation of Raft clusters: real cores, virtual time, chaos.

:class:`Cluster` is the harness (servers, in-memory disks, the network);
:class:`InvariantChecker` watches one; :class:`Simulation` runs one seed of
``traft sim`` with :class:`SimOptions`. See docs/simulator.md.
"""

from traft.sim.cluster import Cluster, SimServer, SnapshotTransfer, chain
from traft.sim.disk import MemoryDisk
from traft.sim.invariants import INVARIANTS, InvariantChecker, InvariantViolation
from traft.sim.network import Network
from traft.sim.runner import RunResult, SimOptions, Simulation, run_one

__all__ = [
    "INVARIANTS",
    "Cluster",
    "InvariantChecker",
    "InvariantViolation",
    "MemoryDisk",
    "Network",
    "RunResult",
    "SimOptions",
    "SimServer",
    "Simulation",
    "SnapshotTransfer",
    "chain",
    "run_one",
]
