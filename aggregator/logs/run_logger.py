"""A Dagster console logger writing JSON lines that carry the run id, step and the launching request's id."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import dagster as dg
from dagster._core.log_manager import get_log_record_metadata, has_log_record_metadata

from aggregator.logs.json_format import JsonFormatter

# Run tag the proxy sets on runs it launches; every JSON log line of the run carries it as correlation_id.
REQUEST_ID_TAG = "aggregator/request_id"


class RunJsonFormatter(JsonFormatter):
    """JsonFormatter plus the run context Dagster attaches to each record."""

    def format(self, record: logging.LogRecord) -> str:
        if not has_log_record_metadata(record):
            return super().format(record)
        meta = get_log_record_metadata(record)
        # a copy: other handlers of the same record still need Dagster's metadata
        fields = {k: v for k, v in vars(record).items() if k != "dagster_meta"}
        event = meta.get("dagster_event")
        fields.update(
            run_id=meta.get("run_id"), job_name=meta.get("job_name"), step_key=meta.get("step_key"),
            event_type=event.event_type_value if event is not None else None,
            correlation_id=(meta.get("job_tags") or {}).get(REQUEST_ID_TAG),
        )
        if meta.get("orig_message") is not None:
            fields.update(msg=meta["orig_message"], args=None)
        return super().format(logging.makeLogRecord(fields))


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO", is_required=False,
                                         description="Lowest level written.")},
    description="JSON lines on stderr with run id, step and correlation id (AGGREGATOR_LOG_FORMAT=json).",
)
def json_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = str(init_context.logger_config["log_level"]).upper()
    logger = logging.getLogger(f"aggregator.run.{id(init_context)}")
    logger.propagate = False
    logger.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RunJsonFormatter())
    logger.handlers[:] = [handler]
    return logger


def run_loggers(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """`{"console": json_console_logger}` when AGGREGATOR_LOG_FORMAT=json, else Dagster's default console."""
    env = os.environ if environ is None else environ
    return {"console": json_console_logger} if env.get("AGGREGATOR_LOG_FORMAT", "").lower() == "json" else {}
