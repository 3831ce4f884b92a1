"""Batch progress, on moto: each job counted once, and no counter ever creates a batch row."""

from __future__ import annotations

import boto3

from devtools.template_resources import LocalStack
from image_recovery.batches import BatchRepository, JobState


def batch_ids(stack: LocalStack) -> set[str]:
    items = boto3.client("dynamodb", region_name=stack.region).scan(TableName=stack.physical("BatchTable"))["Items"]
    return {item["batchId"]["S"] for item in items}


def test_a_job_moves_once_and_its_batch_counts_it_once(tables: LocalStack) -> None:
    batches = BatchRepository()
    batches.create("b-1", owner="u", style_id="s")
    batches.add_queued("b-1", 1)

    assert batches.move("b-1", "j-1", JobState.GENERATING) is True
    assert batches.move("b-1", "j-1", JobState.SUCCEEDED) is True
    assert batches.move("b-1", "j-1", JobState.FAILED) is False  # ended already

    progress = batches.get("b-1")
    assert (progress.total, progress.generating, progress.succeeded, progress.failed) == (1, 0, 1, 0)


def test_moving_a_job_of_a_batch_that_does_not_exist_creates_nothing(tables: LocalStack) -> None:
    """A record kept from another stack's table, or a batch past its 30 days, names a batch this table lacks."""
    batches = BatchRepository()

    assert batches.move("gone-1", "j-9", JobState.FAILED) is False

    assert batch_ids(tables) == set()
    assert batches.job_state("j-9") == JobState.QUEUED  # the ledger row went with the cancelled transaction
