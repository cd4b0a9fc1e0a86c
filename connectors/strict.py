"""Dagster resources accept unknown keyword arguments silently; a misspelt option should fail instead, in
nested blocks (auth:, pagination:, …) too, and name the full path so spec errors point at the right line."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from connectors.secrets import is_env_ref


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation may hold (unions and Optional unpacked)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _member(models: list[type[BaseModel]], value: dict[str, Any]) -> type[BaseModel] | None:
    """The model of a union that `value` is meant as: by its `type` tag, or the only one."""
    if len(models) == 1:
        return models[0]
    for model in models:
        tag = model.model_fields.get("type")
        if tag is not None and tag.default == value.get("type"):
            return model
    return None  # an unknown tag: the model's own validation reports it


def unknown_keys(cls: type[BaseModel], data: dict[str, Any], path: tuple[str | int, ...] = ()) -> list[InitErrorDetails]:
    """An error per key of `data` (and of its nested blocks) that `cls` does not declare, with its full path."""
    fields = cls.model_fields
    errors: list[InitErrorDetails] = []
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            errors.append(InitErrorDetails(
                type=PydanticCustomError(
                    "unknown_option", "unknown option {key}; allowed: {allowed}",
                    {"key": key, "allowed": ", ".join(sorted(fields))},
                ),
                loc=(*path, key), input=value,
            ))
            continue
        if isinstance(value, dict) and not is_env_ref(value):
            member = _member(_models(field.annotation), value)
            if member is not None:
                errors.extend(unknown_keys(member, value, (*path, key)))
    return errors


def reject_unknown(cls: type, data: dict[str, Any]) -> None:
    """Raise a ValidationError (a ValueError) locating every unknown option, nested ones included."""
    errors = unknown_keys(cls, data) if issubclass(cls, BaseModel) else []
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
