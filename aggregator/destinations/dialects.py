"""What differs between warehouse dialects, kept as data: column types, DDL spellings, and whether DDL can run
inside the load's transaction. `SqlDestination` and `TableLoad` ask these rules instead of branching on names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles

from aggregator.destinations.values import FLOAT_SPECIALS
from connectors.batches import ColumnType
from connectors.sql.types import portable_type

Quote = Callable[[str], str]

SQL_TYPES: dict[ColumnType, sa.types.TypeEngine[Any]] = {
    ColumnType.INTEGER: sa.BigInteger(),
    ColumnType.FLOAT: sa.Double(),
    ColumnType.BOOLEAN: sa.Boolean(),
    ColumnType.TEXT: sa.Text(),
    ColumnType.TIMESTAMP: sa.DateTime(),
    ColumnType.DATE: sa.Date(),
}

# MySQL: TEXT holds at most 64 KiB, so text is LONGTEXT (4 GiB, like PostgreSQL's TEXT); DATETIME without a
# precision drops microseconds, so timestamps are DATETIME(6). Neither holds a time zone: timestamps are
# written as naive UTC, as on the other dialects.
MYSQL_TYPES: dict[ColumnType, sa.types.TypeEngine[Any]] = {
    **SQL_TYPES,
    ColumnType.TEXT: mysql.LONGTEXT(),
    ColumnType.TIMESTAMP: mysql.DATETIME(fsp=6),
}


class MysqlTextKey(sa.types.String):
    """A text key column on MySQL/MariaDB (see `_mysql_text_key`)."""

    __visit_name__ = "mysql_text_key"
    cache_ok = True


@compiles(MysqlTextKey, "mysql")
def _mysql_text_key(_type: MysqlTextKey, compiler: Any, **_kw: Any) -> str:
    # A key column cannot be a LONGTEXT (InnoDB indexes need a bounded length): VARCHAR(255) fits three utf8mb4
    # key columns in InnoDB's 3072-byte index limit. Its collation is binary *and* NO PAD: utf8mb4_bin pads
    # with spaces when comparing, so its unique index took `a` and `a ` for one key and a merge overwrote one
    # with the other (PostgreSQL and SQLite keep both). MySQL 5.7 has no NO PAD collation.
    return f"VARCHAR(255) CHARACTER SET utf8mb4 COLLATE {mysql_key_collation(compiler.dialect)}"


def mysql_key_collation(dialect: sa.Dialect) -> str:
    """The binary NO PAD collation of text key columns on this server (see `_mysql_text_key`)."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    return "utf8mb4_0900_bin" if (dialect.server_version_info or (0,)) >= (8,) else "utf8mb4_bin"


MYSQL_KEY_TYPES: dict[ColumnType, sa.types.TypeEngine[Any]] = {ColumnType.TEXT: MysqlTextKey(255)}


def _widen_alter_type(table: str, column: str, ddl_type: str) -> str:
    return f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {ddl_type}"


def _widen_modify(table: str, column: str, ddl_type: str) -> str:
    return f"ALTER TABLE {table} MODIFY COLUMN {column} {ddl_type}"


def _portable_mysql(sql_type: sa.types.TypeEngine[Any]) -> ColumnType:
    # MySQL has no BOOLEAN: it is TINYINT(1), the only display width MySQL 8 still reports. Read back as the
    # boolean this destination created it as, so the next load of booleans does not see a type change.
    if isinstance(sql_type, mysql.TINYINT) and getattr(sql_type, "display_width", None) == 1:
        return ColumnType.BOOLEAN
    return portable_type(sql_type)


@dataclass(frozen=True)
class DialectRules:
    name: str
    sql_types: dict[ColumnType, sa.types.TypeEngine[Any]] = field(default_factory=lambda: dict(SQL_TYPES))
    key_types: dict[ColumnType, sa.types.TypeEngine[Any]] = field(default_factory=dict)  # for primary key columns
    table_kwargs: dict[str, Any] = field(default_factory=dict)  # dialect options of every CREATE TABLE
    # Whether CREATE/ALTER/DROP run inside a transaction and roll back with it. Where they do not (MySQL
    # commits the open transaction before each), the load stages its rows and applies DDL before the one
    # transaction that moves rows and state (aggregator/destinations/staged.py).
    transactional_ddl: bool = True
    # Whether loads keep the table's row count (row_counts.py) instead of a COUNT(*) after each load.
    counting: bool = False
    # The float specials (values.FLOAT_SPECIALS) a float column stores as themselves; a load with another is
    # refused before it writes (values.unstorable_float), since the database would store something else
    # (SQLite: NaN as NULL; MySQL: all of them as NULL) without an error. Unknown dialects: none, to be safe.
    float_specials: frozenset[str] = frozenset()
    label: str = ""  # the dialect as messages name it (default: `name`)
    explain: str = "EXPLAIN"  # the prefix that prepares a SELECT (every table and column resolved) without running it
    widen_sql: Callable[[str, str, str], str] = _widen_alter_type
    portable: Callable[[sa.types.TypeEngine[Any]], ColumnType] = portable_type

    @property
    def display_name(self) -> str:
        return self.label or self.name

    @property
    def table_options(self) -> str:
        """`table_kwargs` as the options of a CREATE TABLE … AS SELECT, which SQLAlchemy does not write."""
        names = {"mysql_engine": "ENGINE", "mysql_charset": "DEFAULT CHARSET", "mysql_collate": "COLLATE"}
        return " ".join(f"{names[k]}={v}" for k, v in self.table_kwargs.items())

    def shadow_sql(self, quoted: str, select: str) -> str:
        """A session-only relation named `quoted` with the columns of `select`, hiding a table of that name from
        later statements of this session only (`validate --warehouse` checks downstream transforms against it)."""
        if self.name == "mysql":
            # No temporary views; a TEMPORARY table hides the permanent one for this session, and creating it
            # commits nothing. Empty: only its columns matter.
            return f"CREATE TEMPORARY TABLE {quoted} AS SELECT * FROM ({select}) AS shadowed WHERE 1 = 0"  # noqa: S608 (the transform's own compiled SELECT)
        return f"CREATE TEMPORARY VIEW {quoted} AS {select}"

    def swap_sql(self, staging: str, table: str, old: str | None, quote: Quote) -> list[str]:
        """Statements that put `staging` in place of `table` (`old`: a free name for the previous table, or
        None when there is none). Readers see the old table or the new one, never neither."""
        if self.name == "mysql":
            # One RENAME TABLE renames both atomically; it is DDL, so it commits on its own.
            if old is None:
                return [f"RENAME TABLE {quote(staging)} TO {quote(table)}"]
            return [f"RENAME TABLE {quote(table)} TO {quote(old)}, {quote(staging)} TO {quote(table)}",
                    f"DROP TABLE {quote(old)}"]
        # Inside the caller's transaction on these dialects.
        return [f"DROP TABLE IF EXISTS {quote(table)}", f"ALTER TABLE {quote(staging)} RENAME TO {quote(table)}"]


RULES: dict[str, DialectRules] = {
    "postgresql": DialectRules("postgresql", counting=True, float_specials=frozenset(FLOAT_SPECIALS),
                               label="PostgreSQL"),
    "sqlite": DialectRules("sqlite", counting=True, float_specials=frozenset({"Infinity", "-Infinity"}),
                           label="SQLite", explain="EXPLAIN QUERY PLAN"),
    "mysql": DialectRules(
        "mysql", sql_types=MYSQL_TYPES, key_types=MYSQL_KEY_TYPES, label="MySQL/MariaDB",
        # InnoDB for transactions whatever the server's default engine; utf8mb4 for every character (emoji)
        # whatever the database's default character set.
        table_kwargs={"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"},
        transactional_ddl=False, widen_sql=_widen_modify, portable=_portable_mysql,
    ),
}


def rules_for(dialect: str) -> DialectRules:
    """The rules of `dialect` (SQLAlchemy's name; MariaDB reports `mysql`); any other gets the portable defaults."""
    return RULES.get(dialect) or DialectRules(dialect)
