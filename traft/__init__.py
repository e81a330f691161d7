"""traft: Raft consensus for Python.

The consensus core (:mod:`traft.core`) is re-exported here; the node runtime,
the key-value service, the simulator and the checker live in subpackages.
"""

from traft.core import *  # noqa: F403
from traft.core import __all__ as _core_all

__all__ = list(_core_all)
__version__ = "0.1.0"
