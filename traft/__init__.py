"""traft: Raft consensus for Python.

The consensus core (:mod:`traft.core`) is re-exported here; the node runtime,
the key-value service, the simulator and the checker live in subpackages.

The re-export is lazy (PEP 562): ``from traft import Raft`` imports the core
on first use, so that ``import traft.cli`` (every run of the ``traft``
command, ``traft --help`` included) does not pay for it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Not typing.TYPE_CHECKING: importing typing costs ``traft --help`` a tenth of its
# time. Type checkers treat any constant of this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from traft.core import *  # noqa: F403
    from traft.core import __all__ as __all__
else:

    def __getattr__(name: str) -> Any:
        # ``from traft import *`` asks for ``__all__`` the same way. The core is
        # imported with importlib: ``from traft import core`` would ask this
        # function for ``core`` again.
        if name != "__all__" and name.startswith("__"):
            raise AttributeError(f"module 'traft' has no attribute {name!r}")
        core = importlib.import_module("traft.core")
        if name == "__all__":
            value: Any = list(core.__all__)
        elif name in core.__all__:
            value = getattr(core, name)
        elif name in globals():  # a submodule, imported just now
            return globals()[name]
        else:
            raise AttributeError(f"module 'traft' has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        core = importlib.import_module("traft.core")
        return sorted({*globals(), *core.__all__})
