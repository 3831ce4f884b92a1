"""Reading items that someone else wrote: every travel-table item is checked before the service uses it.

The host app owns the table and may write anything (DESIGN §2, "careless writers"). An item under a trip
key (`SK` "TRIP#…") that does not fit the contract — unknown `entityType`, keys of the wrong shape, no
usable `id`, a number where a string belongs — is malformed: it is skipped with a structured warning and
a `MalformedRecords` metric (dimension `where`), and never stops the listing, queueing, sweep, repair,
stream or worker for any other record. Items outside the trip tree (other kinds of rows the host keeps in
a user's partition) are not ours and are ignored silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pynamodb.models import Model

from image_recovery.models import (
    EntityType,
    Reservation,
    Segment,
    TravelRecord,
    Trip,
    is_valid_id,
    parse_key_path,
)
from image_recovery.observability import METRICS_NAMESPACE, logger

RawItem = Mapping[str, Any]  # an item in DynamoDB JSON ({"S": "..."}), as Query, Scan and streams return it

MODEL_BY_TYPE: dict[str, type[TravelRecord]] = {
    EntityType.TRIP: Trip,
    EntityType.SEGMENT: Segment,
    EntityType.RESERVATION: Reservation,
}
_SHOWN_KEY_CHARS = 200


class MalformedItem(ValueError):
    """An item under a trip key that breaks the contract; `problem` says how (never the item's content)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _string(raw: RawItem, name: str) -> str | None:
    value = raw.get(name)
    return value.get("S") if isinstance(value, Mapping) else None


def wrong_types(model: type[Model], raw: RawItem) -> list[str]:
    """Attributes the model knows that hold another DynamoDB type than the model's (NULL is always fine)."""
    wrong = []
    for attribute in model.get_attributes().values():
        value = raw.get(attribute.attr_name)
        if value is None:
            continue
        if not isinstance(value, Mapping) or ("NULL" not in value and attribute.attr_type not in value):
            wrong.append(attribute.attr_name)
    return sorted(wrong)


def parse_record(raw: RawItem) -> TravelRecord | None:
    """The trip, segment or reservation in `raw`; None when the item is not in the trip tree at all.

    Raises MalformedItem for an item that is in the trip tree (or says it is a travel record) but breaks
    the contract. Ownership and parents come from the keys, so the keys must have their kind's shape.
    """
    pk, sk = _string(raw, "PK"), _string(raw, "SK")
    entity_type = _string(raw, "entityType")
    model = MODEL_BY_TYPE.get(entity_type or "")
    if pk is None or sk is None:
        raise MalformedItem("PK or SK is not a string")
    if model is None:
        if sk.startswith("TRIP#") and pk.startswith("USER#"):
            raise MalformedItem(f"entityType {entity_type!r} is not TRIP, SEGMENT or RESERVATION")
        return None
    path = parse_key_path(pk, sk, model.kind)
    if path is None:
        raise MalformedItem(f"keys do not have the shape of a {model.kind.label}")
    wrong = wrong_types(model, raw)
    if wrong:
        raise MalformedItem(f"wrong attribute types: {', '.join(wrong)}")
    record_id = _string(raw, "id")
    if not is_valid_id(record_id):
        raise MalformedItem("id is missing or not a usable id")
    if record_id != path.record_id:
        raise MalformedItem("id differs from the id in SK")
    return model.from_raw_data(dict(raw))


def report_malformed(where: str, raw: RawItem, problem: str) -> None:
    """The structured warning and the metric for one skipped item (its keys only, cut short)."""
    keys = {name: str(_string(raw, name) or raw.get(name))[:_SHOWN_KEY_CHARS] for name in ("PK", "SK")}
    logger.warning("skipped a malformed record", extra={"where": where, "problem": problem, **keys})
    with single_metric(name="MalformedRecords", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name="where", value=where)


def read_record(raw: RawItem, where: str) -> TravelRecord | None:
    """parse_record, with a malformed item reported and read as None."""
    try:
        return parse_record(raw)
    except MalformedItem as malformed:
        report_malformed(where, raw, malformed.problem)
        return None


def read_records(items: Iterable[RawItem], where: str) -> Iterator[TravelRecord]:
    """The usable travel records among `items`, in order; malformed ones reported, other rows ignored."""
    for raw in items:
        record = read_record(raw, where)
        if record is not None:
            yield record
