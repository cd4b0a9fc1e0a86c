"""MySQL and MariaDB through PyMySQL: the driver settings loads rely on.

MySQL stores "zero" dates (`0000-00-00`, `2024-00-00`) when its SQL mode allows them; PyMySQL then returns the
raw text, which would turn a whole DATE column into TEXT and fail loads into PostgreSQL. They mean "no date",
so they arrive as NULL (what MySQL Connector/J calls `zeroDateTimeBehavior=convertToNull`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _unparseable_as_null(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def conv(value: Any) -> Any:
        out = convert(value)
        # PyMySQL returns its input unchanged when it is not a valid date: a zero or partly zero date.
        return None if isinstance(out, str | bytes) else out

    return conv


def connect_args() -> dict[str, Any]:
    """PyMySQL arguments: utf8mb4 (every Unicode character, emoji included) and zero dates as NULL."""
    from pymysql import converters
    from pymysql.constants import FIELD_TYPE

    conv = dict(converters.conversions)
    for field_type, convert in ((FIELD_TYPE.DATE, converters.convert_date),
                                (FIELD_TYPE.NEWDATE, converters.convert_date),
                                (FIELD_TYPE.DATETIME, converters.convert_datetime),
                                (FIELD_TYPE.TIMESTAMP, converters.convert_datetime)):
        conv[field_type] = _unparseable_as_null(convert)
    return {"conv": conv, "charset": "utf8mb4"}
