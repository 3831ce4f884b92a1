"""`make chaos` in small: a few hundred jobs with one AWS call in ten failing lose and duplicate nothing."""

from __future__ import annotations

import pytest

from devtools import chaos
from image_recovery.errors import RETRIES_EXHAUSTED_REASONS
from tests.helpers import sized

pytestmark = pytest.mark.integration

# what injected faults can end a record with: transient causes after the last retry, a refusal by the
# content filter, or a send to the job queue that failed and was rolled back
EXPECTED_REASONS = RETRIES_EXHAUSTED_REASONS | {"content_filtered", "enqueue_failed"}


@pytest.mark.soak  # 1,200 jobs for 12 users under `make soak`; `make chaos` runs 3,000
def test_a_small_chaos_run_loses_nothing_and_duplicates_nothing():
    records = sized(ci=100, soak=2400)
    # One mark at a time: faults are drawn in call order, so only then is the run the seed's every time
    # (make chaos runs the deployed pool of threads).
    options = chaos.Options(
        records=records, users=sized(ci=3, soak=12), missing_ratio=0.5, fault_rate=0.1, seed=11, queue_workers=1
    )
    report = chaos.run(options, options.dataset())

    result = report.audit
    assert result.missing_before == records // 2
    assert (result.lost, result.duplicated, result.dangling, result.orphans) == ([], [], [], [])
    assert result.ready + sum(result.failed.values()) == result.missing_before
    assert set(result.failed) <= EXPECTED_REASONS
    # the faults really struck, in every form, and the run needed the sweep or a redrive to finish
    assert min(report.faults["before"], report.faults["after"], report.faults["crash"]) > 0
    assert report.sweeps + report.redriven > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--records", "0"], "need 1 ≤ users ≤ records"),
        (["--missing-ratio", "3"], "--missing-ratio must be within [0, 1]"),
    ],
)
def test_sizes_that_make_no_table_are_refused_before_anything_runs(argv, message, capsys):
    assert chaos.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_fault_rate_out_of_range_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        chaos.main(["--fault-rate", "1"])
    assert exit_.value.code == 2
    assert "--fault-rate must be within [0, 1)" in capsys.readouterr().err
