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


# A warehouse session (`writer`) refuses what MySQL would otherwise store silently: a value too long or out of
# range (strict mode, for every table, not only transactional ones), a zero or partly zero date. Its time zone is
# UTC, so NOW() and TIMESTAMP columns agree with the naive-UTC DATETIMEs loads write.
WRITER_SESSION = ("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
                  "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'")


def connect_args(writer: bool = False) -> dict[str, Any]:
    """PyMySQL arguments: utf8mb4 (every Unicode character, emoji included) and zero dates as NULL; a writer's
    session is strict (`WRITER_SESSION`)."""
    from pymysql import converters
    from pymysql.constants import FIELD_TYPE

    conv = dict(converters.conversions)
    for field_type, convert in ((FIELD_TYPE.DATE, converters.convert_date),
                                (FIELD_TYPE.NEWDATE, converters.convert_date),
                                (FIELD_TYPE.DATETIME, converters.convert_datetime),
                                (FIELD_TYPE.TIMESTAMP, converters.convert_datetime)):
        conv[field_type] = _unparseable_as_null(convert)
    args: dict[str, Any] = {"conv": conv, "charset": "utf8mb4"}
    if writer:
        args["init_command"] = WRITER_SESSION
    return args
