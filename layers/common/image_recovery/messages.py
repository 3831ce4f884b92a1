"""Bodies of the messages on our queues (jobs, tasks): frozen dataclasses, checked when made, camelCase JSON.

A few lines of our own instead of pydantic models: every queuer and the worker import these, and importing
pydantic costs each function about 100 ms of cold start (docs/benchmark.md). A message that breaks a rule
raises ValueError, when it is made and when it is read.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any, Self

NON_EMPTY = r"(?s)."


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def rule(
    *types: type,
    pattern: str | None = None,
    minimum: int | None = None,
    choices: tuple[Any, ...] | None = None,
    convert: Callable[[Any], Any] | None = None,
    default: Any = dataclasses.MISSING,
) -> Any:
    """A message field: its accepted types (None among them when it may be null), and what else must hold
    (`pattern` is searched for, so anchor it).

    `convert` turns an accepted wire value into the field's value (a str into an enum), raising ValueError."""
    metadata = {"types": types, "pattern": pattern, "minimum": minimum, "choices": choices, "convert": convert}
    return dataclasses.field(default=default, metadata=metadata)


def _checked(name: str, value: Any, metadata: Any) -> Any:
    types = tuple(type(None) if t is None else t for t in metadata["types"])
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ValueError(f"{name}: expected {' or '.join(t.__name__ for t in types)}, got {type(value).__name__}")
    if value is None:
        return value
    if metadata["convert"] is not None:
        value = metadata["convert"](value)
    if metadata["choices"] is not None and value not in metadata["choices"]:
        raise ValueError(f"{name}: must be one of {metadata['choices']}")
    if metadata["pattern"] is not None and not re.search(metadata["pattern"], value):
        raise ValueError(f"{name}: does not match {metadata['pattern']}")
    if metadata["minimum"] is not None and value < metadata["minimum"]:
        raise ValueError(f"{name}: must be at least {metadata['minimum']}")
    return value


class Message:
    """Base of a frozen dataclass whose fields are all `rule(...)`s."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            checked = _checked(field.name, getattr(self, field.name), field.metadata)
            object.__setattr__(self, field.name, checked)

    def to_json(self, *, omit_defaults: tuple[str, ...] = ()) -> str:
        """The message body: camelCase names, compact; the fields named in `omit_defaults` only when they
        differ from their default (optional fields that older readers need not see)."""
        body = {
            to_camel(f.name): getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in omit_defaults or getattr(self, f.name) != f.default
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)  # a StrEnum is its value

    @classmethod
    def from_data(cls, data: Any) -> Self:
        """From parsed JSON: camelCase (or snake_case) names; names it does not know are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object")
        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            for name in (to_camel(field.name), field.name):
                if name in data:
                    values[field.name] = data[name]
                    break
            else:
                if field.default is dataclasses.MISSING:
                    raise ValueError(f"{cls.__name__}: {to_camel(field.name)} is required")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        return cls.from_data(json.loads(text))
