"""The daily image budget (DailyImageBudget): a cap on the model calls the fleet makes in one UTC day.

Each model call takes one unit of the day's budget first, from one counter item per day in the batch table,
incremented only while it is below the budget (a conditional write: the fleet never takes more than the
budget, whatever the concurrency). A job that finds the day's budget spent is not failed and not retried: it
is handed back to the queue and comes back until the next day (image_recovery.worker_runtime), and its record
says why (`imageError` budget_exhausted while it stays queued). The API reads the same counter to estimate a
request's cost and to refuse one over what is left, unless the person confirms it.

A unit taken for a call that then does not happen (a job deferred by the rate governor, a record taken
meanwhile) is given back, best effort: a unit lost that way leaves the fleet under the budget, never over.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from image_recovery.governor import MAX_DEFERRAL_SECONDS, Deferred

BUDGET_EXHAUSTED = "budget_exhausted"  # the reason a waiting job's record shows
SPEND_KEY_PREFIX = "service#spend#"  # the day's counter in the batch table (no batch id has a "#")
KEEP_COUNTERS = timedelta(days=8)  # a day's counter expires (TTL) a week after its day
CURRENCY = "USD"


@dataclass(frozen=True)
class SpendingPolicy:
    """The budget as configured: images a day (0: no cap) and what one image is estimated to cost."""

    daily_images: int
    cost_per_image: float | None  # USD; None when neither configured nor known for the model

    @property
    def capped(self) -> bool:
        return self.daily_images > 0

    def estimate(self, images: int) -> float | None:
        """The estimated cost of `images` images, in USD, rounded to the cent."""
        return None if self.cost_per_image is None else round(images * self.cost_per_image, 2)


def utc_day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def seconds_until_next_day(moment: float) -> float:
    now = datetime.fromtimestamp(moment, UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).total_seconds()


class BudgetExhausted(Deferred):
    """The day's image budget is spent: the job goes back to the queue until it may be drawn again."""

    metric = "JobsWaitingForBudget"
    why = "the day's image budget is spent"
    whole_batch = False  # each job still reads its record, to say on it why it waits


@dataclass(frozen=True)
class BudgetStatus:
    """What GET /budget answers, and what the API weighs a request against."""

    daily_images: int | None  # None: no cap
    used_today: int
    cost_per_image: float | None
    resets_at: str

    @property
    def remaining_today(self) -> int | None:
        return None if self.daily_images is None else max(0, self.daily_images - self.used_today)

    def as_json(self) -> dict[str, Any]:
        return {
            "dailyImages": self.daily_images,
            "usedToday": self.used_today,
            "remainingToday": self.remaining_today,
            "estimatedCostPerImage": self.cost_per_image,
            "currency": CURRENCY,
            "resetsAt": self.resets_at,
        }


class DailySpend:
    """The day's counter of model calls, shared by the fleet through the batch table."""

    def __init__(
        self, client: Callable[[], Any], table: str, policy: SpendingPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self._client = client
        self._table = table
        self._clock = clock
        self._spent_day: str | None = None  # a day this container found spent: no need to ask again

    def _key(self, day: str) -> dict:
        return {"batchId": {"S": SPEND_KEY_PREFIX + day}}

    def take(self) -> bool:
        """One unit of today's budget for a model call; False (and nothing taken) when the day's is spent."""
        if not self.policy.capped:
            return True
        now = self._clock()
        day = utc_day(now)
        if self._spent_day == day:
            return False
        dynamodb = self._client()
        try:
            dynamodb.update_item(
                TableName=self._table,
                Key=self._key(day),
                UpdateExpression="ADD images :one SET expiresAt = if_not_exists(expiresAt, :expires)",
                ConditionExpression="attribute_not_exists(images) OR images < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(self.policy.daily_images)},
                    ":expires": {"N": str(int(now + KEEP_COUNTERS.total_seconds()))},
                },
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            self._spent_day = day
            return False
        return True

    def give_back(self) -> None:
        """Return a unit taken for a call that did not happen (best effort, never below zero)."""
        if not self.policy.capped:
            return
        dynamodb = self._client()
        # the condition fails when a new day began meanwhile: today's counter owes nothing
        with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):
            dynamodb.update_item(
                TableName=self._table,
                Key=self._key(utc_day(self._clock())),
                UpdateExpression="ADD images :minus",
                ConditionExpression="images > :zero",
                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}},
            )

    def wait_seconds(self) -> int:
        """How long a job that found the budget spent stays away: until the next day, at most SQS's longest
        delay (it comes back and looks again)."""
        return max(1, min(MAX_DEFERRAL_SECONDS, int(seconds_until_next_day(self._clock())) + 1))

    def status(self) -> BudgetStatus:
        """Today's use (an eventually consistent read: an estimate, like the cost)."""
        now = self._clock()
        used = 0
        if self.policy.capped:
            item = self._client().get_item(TableName=self._table, Key=self._key(utc_day(now))).get("Item") or {}
            used = int(item.get("images", {}).get("N", "0"))
        resets = datetime.fromtimestamp(now, UTC) + timedelta(seconds=seconds_until_next_day(now))
        return BudgetStatus(
            daily_images=self.policy.daily_images if self.policy.capped else None,
            used_today=used,
            cost_per_image=self.policy.cost_per_image,
            resets_at=resets.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
