"""Prompt styles: exactly one default, the table's styles when it has any, built-ins otherwise."""

from __future__ import annotations

import boto3
import pytest

from devtools.template_resources import LocalStack
from image_recovery.errors import BadRequestError
from image_recovery.styles import BUILT_IN_STYLES, PromptStyle, StyleCatalog, with_single_default

REGION = "us-east-1"


def make_style(style_id: str, *, default: bool = False) -> PromptStyle:
    return PromptStyle(style_id, style_id.title(), "", "{subject}", "", default)


def defaults(styles: list[PromptStyle]) -> list[str]:
    return [s.id for s in styles if s.is_default]


# ------------------------------------------------------------------ with_single_default
@pytest.mark.parametrize(
    ("marked", "expected"),
    [
        ((), "a"),  # none marked: the first by id
        (("c",), "c"),  # one marked: kept
        (("c", "b"), "b"),  # two marked: the first by id
        (("a", "b", "c"), "a"),  # all marked
    ],
)
def test_exactly_one_default_whatever_the_input(marked: tuple[str, ...], expected: str) -> None:
    styles = [make_style(i, default=i in marked) for i in ("c", "a", "b")]

    result = with_single_default(styles)

    assert defaults(result) == [expected]
    assert [s.id for s in result] == ["a", "b", "c"]


def test_a_single_style_becomes_the_default() -> None:
    assert defaults(with_single_default([make_style("only")])) == ["only"]


def test_built_in_styles_have_exactly_one_default() -> None:
    assert len(defaults(list(BUILT_IN_STYLES))) == 1


# ------------------------------------------------------------------ StyleCatalog on moto
@pytest.fixture
def travel_table(tables: LocalStack) -> str:
    return tables.physical("TravelTable")


def put_style_rows(table: str, *rows: tuple[str, bool]) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    for style_id, is_default in rows:
        client.put_item(
            TableName=table,
            Item={
                "PK": {"S": "STYLE"},
                "SK": {"S": f"STYLE#{style_id}"},
                "entityType": {"S": "STYLE"},
                "id": {"S": style_id},
                "name": {"S": f"Style {style_id}"},
                "promptTemplate": {"S": f"{style_id} rendering of {{subject}}. {{details}}"},
                "isDefault": {"BOOL": is_default},
            },
        )


def test_empty_table_gives_the_built_in_styles(travel_table: str) -> None:
    # Given a table with travel records but no STYLE rows
    boto3.client("dynamodb", region_name=REGION).put_item(
        TableName=travel_table,
        Item={"PK": {"S": "USER#u"}, "SK": {"S": "TRIP#t"}, "entityType": {"S": "TRIP"}, "id": {"S": "t"}},
    )

    assert StyleCatalog().all() == list(BUILT_IN_STYLES)


def test_table_rows_replace_the_built_ins(travel_table: str) -> None:
    put_style_rows(travel_table, ("noir", False), ("sketch", True))

    styles = StyleCatalog().all()

    assert [(s.id, s.name, s.is_default) for s in styles] == [
        ("noir", "Style noir", False),
        ("sketch", "Style sketch", True),
    ]
    assert styles[1].prompt_template == "sketch rendering of {subject}. {details}"
    assert styles[1].negative_prompt  # a row without negativePrompt still gets the built-in one


@pytest.mark.parametrize("rows", [(("noir", False), ("sketch", False)), (("sketch", True), ("noir", True))])
def test_table_rows_get_exactly_one_default(travel_table: str, rows: tuple[tuple[str, bool], ...]) -> None:
    put_style_rows(travel_table, *rows)
    assert defaults(StyleCatalog().all()) == ["noir"]


@pytest.fixture(params=["built-in", "table"])
def catalog(request: pytest.FixtureRequest, travel_table: str) -> StyleCatalog:
    if request.param == "table":
        put_style_rows(travel_table, ("noir", False), ("watercolor", True), ("sketch", False))
    return StyleCatalog()


def test_resolve_none_gives_the_default(catalog: StyleCatalog) -> None:
    resolved = catalog.resolve(None)
    assert resolved.is_default and resolved == catalog.default()


def test_resolve_a_known_id(catalog: StyleCatalog) -> None:
    assert catalog.resolve("watercolor").id == "watercolor"


def test_resolve_an_unknown_id_is_a_bad_request(catalog: StyleCatalog) -> None:
    with pytest.raises(BadRequestError) as raised:
        catalog.resolve("nope")
    assert (raised.value.code, raised.value.status) == ("unknown_style", 400)


def test_resolve_or_default_falls_back_for_a_deleted_style(catalog: StyleCatalog) -> None:
    assert catalog.resolve_or_default("deleted") == catalog.default()
    assert catalog.resolve_or_default("watercolor").id == "watercolor"
