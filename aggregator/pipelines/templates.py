"""Templates: one pipeline written once with `${param}` placeholders, instantiated many times."""

from __future__ import annotations

from typing import Any

from aggregator.pipelines.spec import PARAM_RE, Template


class TemplateError(ValueError):
    pass


def instantiate(name: str, template: Template, params: dict[str, Any]) -> dict[str, Any]:
    """The template's pipeline with every `${param}` replaced; a value that is exactly `${p}` keeps its type."""
    missing = sorted(set(template.params) - set(params))
    unknown = sorted(set(params) - set(template.params))
    if missing:
        raise TemplateError(f"template {name!r} needs parameter(s) {', '.join(missing)}")
    if unknown:
        raise TemplateError(
            f"template {name!r} has no parameter(s) {', '.join(unknown)}; its parameters: "
            f"{', '.join(template.params) or 'none'}"
        )

    def substitute(value: Any) -> Any:
        if isinstance(value, str):
            whole = PARAM_RE.fullmatch(value)
            if whole:
                return _lookup(whole.group(1))
            return PARAM_RE.sub(lambda m: str(_lookup(m.group(1))), value)
        if isinstance(value, dict):
            return {substitute(k): substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v) for v in value]
        return value

    def _lookup(param: str) -> Any:
        if param not in params:
            raise TemplateError(
                f"template {name!r} uses ${{{param}}}, which is not in its `params` ({', '.join(template.params)})"
            )
        return params[param]

    return substitute(template.pipeline)
