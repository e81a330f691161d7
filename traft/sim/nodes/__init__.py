"""Deterministic simulation of whole nodes: ``traft sim --nodes``.

Real :class:`traft.node.node.Node` drivers with the KV state machine of
``traft serve``, in one trio run under virtual time, on a lying in-memory
network and a simulated disk under the real ``storage`` code. Modules:
``options`` (what a run depends on), ``disk`` (the storage seam's simulated
file system), ``world`` (servers, supervisors, the nemesis), ``clients``
(the KV workload and its history), ``checks`` (what must hold), ``runner``
(one seeded run), ``cli`` (the command).
"""

from traft.sim.nodes.options import NodeSimOptions
from traft.sim.nodes.runner import NodeRunResult, run_one

__all__ = ["NodeRunResult", "NodeSimOptions", "run_one"]
