"""Tags pydantic inserts into error locations for discriminated unions; error messages drop them."""

from __future__ import annotations

from pydantic import BaseModel

from aggregator.pipelines.alerts_spec import CHANNEL_TYPES
from aggregator.pipelines.checks_spec import CHECK_TYPES
from aggregator.pipelines.steps import STEP_NAMES
from aggregator.pipelines.streams import STREAM_MODELS
from connectors.strict import _models


def _type_tags(models: tuple[type[BaseModel], ...]) -> set[str]:
    """The `type` tags of `models` and of every model nested in their fields (pagination:, auth:, …)."""
    tags: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo = list(models)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        tag = model.model_fields.get("type")
        if tag is not None and isinstance(tag.default, str):
            tags.add(tag.default)
        for field in model.model_fields.values():
            todo.extend(_models(field.annotation))
    return tags


UNION_TAGS = frozenset(_type_tags((*STREAM_MODELS, *CHECK_TYPES)) | set(STEP_NAMES) | set(CHANNEL_TYPES))
