"""Declarative transform steps (select, filter, derive, join, aggregate, …) and their rendering to SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

Expression = Annotated[str, Field(min_length=1, description="A SQL expression over the current columns.")]
Grain = Literal["hour", "day", "week", "month"]
CastType = Literal["integer", "float", "text", "boolean", "date", "timestamp"]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectStep(_Step):
    select: list[str] = Field(min_length=1, description="Columns to keep, in order.")


class RenameStep(_Step):
    rename: dict[str, str] = Field(min_length=1, description="Old column name → new column name.")


class CastStep(_Step):
    cast: dict[str, CastType] = Field(min_length=1, description="Column → type to cast it to.")


class FilterStep(_Step):
    filter: Expression = Field(description="Keep rows where this SQL condition is true.")


class DeriveStep(_Step):
    derive: dict[str, Expression] = Field(min_length=1, description="New column → SQL expression.")


class Dedupe(_Step):
    key: list[str] = Field(min_length=1, description="Columns that identify a record.")
    order_by: str | None = Field(
        None, description="Which duplicate wins: the first row by this ordering, e.g. 'updated_at DESC'."
    )


class DedupeStep(_Step):
    dedupe: Dedupe


class Join(_Step):
    ref: str = Field(description="Table to join: a source or transform name, or `pipeline.name`.")
    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    keys: dict[str, str] = Field(min_length=1, description="Current column → column of the joined table (equality).")
    how: Literal["inner", "left"] = Field("left", description="Join type.")
    columns: list[str] = Field(min_length=1, description="Columns of the joined table to add.")


class JoinStep(_Step):
    join: Join


class Aggregate(_Step):
    group_by: list[str] = Field(default_factory=list, description="Grouping columns.")
    metrics: dict[str, Expression] = Field(min_length=1, description="Output column → aggregate expression.")


class AggregateStep(_Step):
    aggregate: Aggregate


class TimeBucket(_Step):
    column: str = Field(description="Timestamp column to bucket.")
    grain: Grain = Field(description="Bucket size.")
    as_: str | None = Field(None, alias="as", description="Output column (default: `<column>_<grain>`).")

    @property
    def output(self) -> str:
        return self.as_ or f"{self.column}_{self.grain}"


class TimeBucketStep(_Step):
    time_bucket: TimeBucket


_STEP_TYPES: dict[str, type[_Step]] = {
    "select": SelectStep, "rename": RenameStep, "cast": CastStep, "filter": FilterStep, "derive": DeriveStep,
    "dedupe": DedupeStep, "join": JoinStep, "aggregate": AggregateStep, "time_bucket": TimeBucketStep,
}


def _step_tag(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, _Step):
        return next(iter(type(value).model_fields))
    return None


Step = Annotated[
    Annotated[SelectStep, Tag("select")] | Annotated[RenameStep, Tag("rename")] | Annotated[CastStep, Tag("cast")]
    | Annotated[FilterStep, Tag("filter")] | Annotated[DeriveStep, Tag("derive")]
    | Annotated[DedupeStep, Tag("dedupe")] | Annotated[JoinStep, Tag("join")]
    | Annotated[AggregateStep, Tag("aggregate")] | Annotated[TimeBucketStep, Tag("time_bucket")],
    Discriminator(
        _step_tag,
        custom_error_type="invalid_step",
        custom_error_message=f"a step is a mapping with exactly one of: {', '.join(_STEP_TYPES)}",
    ),
]
STEP_NAMES = tuple(_STEP_TYPES)


def step_expressions(steps: Sequence[Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every SQL expression a user wrote in `steps`, with its location below the transform (`("steps", 2,
    "derive", "total")`): what validation parses and what the table-reads check inspects."""
    for index, step in enumerate(steps):
        exprs: dict[str, str] = {}
        if isinstance(step, FilterStep):
            exprs = {"filter": step.filter}
        elif isinstance(step, DeriveStep):
            exprs = {f"derive.{k}": v for k, v in step.derive.items()}
        elif isinstance(step, AggregateStep):
            exprs = {f"aggregate.metrics.{k}": v for k, v in step.aggregate.metrics.items()}
        for where, text in exprs.items():
            yield ("steps", index, *where.split(".")), text

SQL_CAST: dict[str, dict[CastType, str]] = {
    "sqlite": {"integer": "INTEGER", "float": "REAL", "text": "TEXT", "boolean": "INTEGER", "date": "TEXT",
               "timestamp": "TEXT"},
    "postgresql": {"integer": "BIGINT", "float": "DOUBLE PRECISION", "text": "TEXT", "boolean": "BOOLEAN",
                   "date": "DATE", "timestamp": "TIMESTAMP"},
    # MySQL/MariaDB CAST knows no BIGINT, TEXT or BOOLEAN: SIGNED is 64-bit, CHAR without a length is as long
    # as the value, and a boolean is an integer there (BOOLEAN is TINYINT(1)): 0 or 1, as on SQLite.
    "mysql": {"integer": "SIGNED", "float": "DOUBLE", "text": "CHAR", "boolean": "SIGNED", "date": "DATE",
              "timestamp": "DATETIME(6)"},
}
# Casts whose value needs more than CAST(… AS type): a boolean is 0 or 1 whatever non-zero number it came from.
_CAST_VALUE: dict[tuple[str, CastType], str] = {("mysql", "boolean"): "({} <> 0)"}


def cast_sql(dialect: str, column: str, cast: CastType) -> str:
    """CAST of the (quoted) `column` to the portable type `cast` in `dialect`."""
    value = _CAST_VALUE.get((dialect, cast), "{}").format(column)
    return f"CAST({value} AS {SQL_CAST[dialect][cast]})"


def time_bucket_sql(dialect: str, column: str, grain: Grain) -> str:
    """Truncate the (quoted) timestamp `column` to `grain`; weeks start on Monday in every dialect."""
    if dialect == "postgresql":
        # The cast lets text timestamps (e.g. copied from SQLite sources) bucket too; it is a no-op on timestamps.
        return f"date_trunc('{grain}', CAST({column} AS TIMESTAMP))"
    if dialect == "sqlite":
        return {
            "hour": f"strftime('%Y-%m-%d %H:00:00', {column})",
            "day": f"date({column})",
            "week": f"date({column}, '-' || ((CAST(strftime('%w', {column}) AS INTEGER) + 6) % 7) || ' days')",
            "month": f"strftime('%Y-%m-01', {column})",
        }[grain]
    if dialect == "mysql":
        # A DATETIME like PostgreSQL's date_trunc; WEEKDAY() counts from Monday = 0.
        return {
            "hour": f"CAST(DATE_FORMAT({column}, '%Y-%m-%d %H:00:00') AS DATETIME)",
            "day": f"CAST(DATE({column}) AS DATETIME)",
            "week": f"CAST(DATE({column}) - INTERVAL WEEKDAY({column}) DAY AS DATETIME)",
            "month": f"CAST(DATE_FORMAT({column}, '%Y-%m-01') AS DATETIME)",
        }[grain]
    raise ValueError(f"time_bucket is not supported on {dialect!r}; supported: {', '.join(SQL_CAST)}")


ColumnsOf = Callable[[str], list[str]]


def render_steps(
    source_sql: str,
    steps: list[Any],
    *,
    dialect: str,
    quote: Callable[[str], str],
    table_for: Callable[[str], str],
    columns_of: ColumnsOf,
) -> str:
    """One SELECT: each step wraps the previous one as a CTE. `columns_of(sql)` lists a query's columns,
    needed by steps that keep "all other" columns (rename, cast, dedupe)."""
    ctes: list[tuple[str, str]] = [("step_0", source_sql)]

    def current() -> str:
        return f"WITH {', '.join(f'{n} AS ({q})' for n, q in ctes)} SELECT * FROM {ctes[-1][0]}"

    for index, step in enumerate(steps, start=1):
        prev = ctes[-1][0]
        if isinstance(step, SelectStep):
            sql = f"SELECT {', '.join(quote(c) for c in step.select)} FROM {prev}"
        elif isinstance(step, FilterStep):
            sql = f"SELECT * FROM {prev} WHERE {step.filter}"
        elif isinstance(step, DeriveStep):
            derived = ", ".join(f"{expr} AS {quote(name)}" for name, expr in step.derive.items())
            sql = f"SELECT *, {derived} FROM {prev}"
        elif isinstance(step, RenameStep | CastStep):
            cols = columns_of(current())
            missing = sorted(set(step.rename if isinstance(step, RenameStep) else step.cast) - set(cols))
            if missing:
                raise ValueError(f"step {index}: no column(s) {', '.join(missing)}; available: {', '.join(cols)}")
            if isinstance(step, RenameStep):
                parts = [f"{quote(c)} AS {quote(step.rename.get(c, c))}" for c in cols]
            else:
                parts = [f"{cast_sql(dialect, quote(c), step.cast[c])} AS {quote(c)}" if c in step.cast else quote(c)
                         for c in cols]
            sql = f"SELECT {', '.join(parts)} FROM {prev}"
        elif isinstance(step, DedupeStep):
            cols = columns_of(current())
            keys = ", ".join(quote(k) for k in step.dedupe.key)
            order = step.dedupe.order_by or keys
            sql = (f"SELECT {', '.join(quote(c) for c in cols)} FROM (SELECT *, ROW_NUMBER() OVER "
                   f"(PARTITION BY {keys} ORDER BY {order}) AS _agg_rn FROM {prev}) AS d WHERE _agg_rn = 1")
        elif isinstance(step, JoinStep):
            j = step.join
            on = " AND ".join(f"l.{quote(left)} = r.{quote(right)}" for left, right in j.keys.items())
            added = ", ".join(f"r.{quote(c)}" for c in j.columns)
            sql = f"SELECT l.*, {added} FROM {prev} AS l {j.how.upper()} JOIN {table_for(j.ref)} AS r ON {on}"
        elif isinstance(step, AggregateStep):
            groups = [quote(c) for c in step.aggregate.group_by]
            metrics = [f"{expr} AS {quote(name)}" for name, expr in step.aggregate.metrics.items()]
            group_clause = f" GROUP BY {', '.join(groups)}" if groups else ""
            sql = f"SELECT {', '.join([*groups, *metrics])} FROM {prev}{group_clause}"
        elif isinstance(step, TimeBucketStep):
            tb = step.time_bucket
            sql = f"SELECT *, {time_bucket_sql(dialect, quote(tb.column), tb.grain)} AS {quote(tb.output)} FROM {prev}"
        else:  # pragma: no cover - the Step union is closed
            raise TypeError(f"unknown step {step!r}")
        ctes.append((f"step_{index}", sql))
    return current()
