"""`make chaos` in small: a few hundred jobs with one AWS call in ten failing lose and duplicate nothing."""

from __future__ import annotations

import pytest

from devtools import chaos
from image_recovery.errors import RETRIES_EXHAUSTED_REASONS

pytestmark = pytest.mark.integration

# what injected faults can end a record with: transient causes after the last retry, a refusal by the
# content filter, or a send to the job queue that failed and was rolled back
EXPECTED_REASONS = RETRIES_EXHAUSTED_REASONS | {"content_filtered", "enqueue_failed"}


def test_a_small_chaos_run_loses_nothing_and_duplicates_nothing():
    report = chaos.run(chaos.Options(records=240, users=3, missing_ratio=0.5, fault_rate=0.1, seed=11))

    result = report.audit
    assert result.missing_before == 120
    assert (result.lost, result.duplicated, result.dangling, result.orphans) == ([], [], [], [])
    assert result.ready + sum(result.failed.values()) == result.missing_before
    assert set(result.failed) <= EXPECTED_REASONS
    # the faults really struck, in every form, and the run needed the sweep or a redrive to finish
    assert min(report.faults["before"], report.faults["after"], report.faults["crash"]) > 0
    assert report.sweeps + report.redriven > 0
