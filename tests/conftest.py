"""Shared pytest configuration.

Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable:

- ``dev`` (the default for a bare ``pytest``): few examples, fresh random
  ones on every run, failures saved in ``.hypothesis/`` and replayed first.
- ``ci`` (what ``make test`` selects): the same examples as ``dev`` but
  derandomized (each test's examples follow from its code) and with no
  example database, so a run from a clean clone is reproducible: the same
  code passes or fails the same way every time, on any machine.
- ``explore``: many more examples and longer programs, random, with the
  database; for hunting bugs (``HYPOTHESIS_PROFILE=explore make test``, or a
  single test file). What it finds becomes a deterministic regression test.

No test pins a seed with ``@seed``; a failure prints the reproduction blob
Hypothesis needs.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=40,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=500,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _keep_signal_handlers() -> Iterator[None]:
    """Put SIGTERM's and SIGINT's handlers back after each test.

    ``traft serve`` run in-process (its CLI tests) takes SIGTERM over for
    good, as the real process should; left in pytest's process, it would
    make every later child forked from it (a multiprocessing pool) deaf to
    the SIGTERM that ends it."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)
