"""JSON lines for run logs, carrying the run id, step and the launching request's id.

Installed through Dagster's own instance setting, so every run of every job uses it without run config:

    python_logs:
      dagster_handler_config:
        handlers:
          json: {class: logging.StreamHandler, stream: ext://sys.stderr, formatter: json}
        formatters:
          json: {(): aggregator.logs.run_logger.RunJsonFormatter}
"""

from __future__ import annotations

import logging

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
        raw = ("dagster_meta", "dagster_event", "dagster_event_batch_metadata")
        fields = {k: v for k, v in vars(record).items() if k not in raw}
        event = getattr(record, "dagster_event", None) or meta.get("dagster_event")
        fields.update(
            run_id=meta.get("run_id"), job_name=meta.get("job_name"), step_key=meta.get("step_key"),
            event_type=event.event_type.name if event is not None else None,
            correlation_id=(meta.get("job_tags") or {}).get(REQUEST_ID_TAG),
        )
        if meta.get("orig_message") is not None:
            fields.update(msg=meta["orig_message"], args=None)
        return super().format(logging.makeLogRecord(fields))
