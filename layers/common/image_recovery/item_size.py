"""The size of an item as DynamoDB bills it, from its DynamoDB JSON: what a read of it costs.

A Query reads its items' bytes together, rounded up to READ_UNIT_BYTES once per request; GetItem and
BatchGetItem round each item up on its own. The listing weighs the two with these sizes (image_recovery.recovery),
and the benchmark estimates every read's units with them (bench/counting.py).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

READ_UNIT_BYTES = 4096  # one strongly consistent read unit reads up to 4 KB; eventually consistent, half a unit


def _number_size(text: str) -> int:
    """About 1 byte per two significant digits, plus 1 (leading and trailing zeros are not stored)."""
    mantissa = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    return math.ceil(len(mantissa.strip("0")) / 2) + 1


def _binary_size(value: bytes | str) -> int:
    return len(value) if isinstance(value, bytes | bytearray) else len(base64.b64decode(value))


def attribute_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON ({"S": "..."}), by DynamoDB's item-size rules."""
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in content)
    if kind == "NS":
        return sum(_number_size(v) for v in content)
    if kind == "BS":
        return sum(_binary_size(v) for v in content)
    if kind == "L":  # 3 bytes, plus each element and 1 byte per element
        return 3 + sum(attribute_size(v) + 1 for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in content.items())
    raise ValueError(f"not a DynamoDB attribute value: {value!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of an item in DynamoDB JSON: each attribute's UTF-8 name plus its value."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())
