"""The careless host in CI: a few deterministic runs of tests/careless_host.py's state machine.

`make soak` runs thousands of steps of the same machine and prints a table of what it did.
"""

from __future__ import annotations

import os

import pytest

from tests.careless_host import STATS, run

pytestmark = pytest.mark.integration


def test_a_careless_host_breaks_nothing_and_everything_it_leaves_ends_well() -> None:
    STATS.clear()

    run(
        examples=int(os.environ.get("CARELESS_HOST_EXAMPLES", "6")),
        steps=int(os.environ.get("CARELESS_HOST_STEPS", "25")),
    )

    # the runs did reach the checks (a machine whose rules all failed to run would pass vacuously)
    assert STATS["check: drained and judged (end of a run)"] == STATS["runs"] >= 5
    assert sum(count for name, count in STATS.items() if name.startswith("step, host")) > 20
