"""Tags pydantic inserts into error locations for discriminated unions; error messages drop them."""

from __future__ import annotations

from aggregator.alerts.config import CHANNEL_TYPES
from aggregator.pipelines.checks_spec import CHECK_TYPES
from aggregator.pipelines.steps import STEP_NAMES
from aggregator.pipelines.streams import STREAM_MODELS

UNION_TAGS = frozenset(
    {m.model_fields["type"].default for m in (*STREAM_MODELS, *CHECK_TYPES)} | set(STEP_NAMES) | set(CHANNEL_TYPES)
)
