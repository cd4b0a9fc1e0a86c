"""A small typed router: each route declares its models and role; the OpenAPI document is built from them.

Handlers never see an unauthenticated request (except the public OpenAPI document) nor a body that failed
its pydantic model; the role of the route is checked before the handler runs, pipeline scopes inside it
(they depend on the pipeline named). Every write is recorded through `Services.record_decision`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.proxy.api.errors import API_ERROR_NAMES, ApiError, ErrorBody
from aggregator.proxy.context import RequestContext
from aggregator.proxy.policy import bounded_json
from aggregator.proxy.policy.rbac import Principal, Role

_PARAM = re.compile(r"\{([a-z_]+)\}")
# Path parameters are names (pipelines, assets, connector types) or version numbers: never a slash.
_PARAM_VALUE = r"(?P<\1>[A-Za-z0-9_.-]{1,128})"


M = TypeVar("M", bound=BaseModel)


@dataclass
class ApiRequest:
    """What a handler gets: who asks, the validated parameters and body."""

    ctx: RequestContext
    request: Request
    principal: Principal
    params: dict[str, str]
    query: BaseModel | None
    body: BaseModel | None
    raw_body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    # The route declares its body and query models and the router validated them; these give the handler
    # that model's type. They raise rather than assert: `python -O` drops asserts.
    def body_as(self, model: type[M]) -> M:
        if not isinstance(self.body, model):
            raise TypeError(f"route body is {type(self.body).__name__}, not the declared {model.__name__}")
        return self.body

    def query_as(self, model: type[M]) -> M:
        if not isinstance(self.query, model):
            raise TypeError(f"route query is {type(self.query).__name__}, not the declared {model.__name__}")
        return self.query


Handler = Callable[[ApiRequest], Awaitable[Response | BaseModel | list[Any]]]


@dataclass(frozen=True)
class Documented:
    """An endpoint the proxy serves outside the typed router (forms, redirects, GraphQL, the UI, WebSockets):
    listed so the OpenAPI document and the access-matrix test know it and its role (None = public)."""

    method: str
    path: str
    summary: str
    role: Role | None
    note: str


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    role: Role = Role.viewer
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a model, `list[Model]`, or None with `media` for a streamed body
    media: tuple[str, ...] = ("application/json",)
    statuses: tuple[int, ...] = ()
    headers_in: tuple[str, ...] = ()
    raw_body: bool = False  # the handler reads the body itself (uploads); no JSON model
    optional_body: bool = False  # an empty body means the body model's defaults (the trigger)
    public: bool = False  # answered without a principal (health check, the OpenAPI document)
    max_body_bytes: int | None = None  # a smaller byte cap than the proxy's for this route's body
    reads: bool = False  # a POST that changes nothing (queries, validation): no editor role, no write audit
    unscoped: bool = False  # the role is needed with an unscoped grant (shared things: connections, audit)
    event: str | None = None  # the audit event of its requests when not `api` (user administration: `admin`)
    # A wider value pattern for some path parameters (user names hold `@`); never one that matches `/`.
    param_patterns: dict[str, str] = field(default_factory=dict)
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile("^" + _PARAM.sub(self._param_value, self.path) + "$")

    def _param_value(self, found: re.Match[str]) -> str:
        name = found.group(1)
        if name in self.param_patterns:
            return f"(?P<{name}>{self.param_patterns[name]})"
        return found.expand(_PARAM_VALUE)

    def param_pattern(self, name: str) -> str:
        return self.param_patterns.get(name, "[A-Za-z0-9_.-]{1,128}")

    @property
    def write(self) -> bool:
        return self.method not in ("GET", "HEAD") and not self.reads

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


def _validation_detail(exc: ValidationError, where: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or where
        parts.append(f"{where} {loc}: {err['msg']}")
    return "; ".join(parts)


def parse_json_body(model: type[BaseModel], raw: bytes, content_type: str | None) -> BaseModel:
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "send the body as application/json")
    try:
        data = bounded_json.loads(raw or b"null")
    except bounded_json.JsonBudgetError as exc:
        raise ApiError(exc.status, f"body refused: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, _validation_detail(exc, "body")) from None


def parse_query(model: type[BaseModel], request: Request) -> BaseModel:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise ApiError(400, _validation_detail(exc, "query")) from None


def match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed: list[str] = []
    for route in routes:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method or (method == "HEAD" and route.method == "GET"):
            return route, found.groupdict()
        allowed.append(route.method)
    if allowed:
        raise ApiError(405, f"{method} is not allowed on {path}; allowed: {', '.join(sorted(set(allowed)))}")
    raise ApiError(404, f"no API endpoint {path}; see /api/openapi.json")


def render(result: Response | BaseModel | list[Any]) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump(mode="json"), headers={"cache-control": "no-store"})
    return JSONResponse([r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in result],
                        headers={"cache-control": "no-store"})


# ----------------------------------------------------------------------------------------------- OpenAPI


def _schema_of(annotation: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = getattr(annotation, "__origin__", None)
    if origin is list:
        return {"type": "array", "items": _schema_of(annotation.__args__[0], defs)}
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise TypeError(f"{annotation!r}: a route's body and answer are pydantic models or lists of them")
    schema = annotation.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[name] = sub
    defs[annotation.__name__] = schema
    return {"$ref": f"#/components/schemas/{annotation.__name__}"}


def _query_parameters(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[name] = sub
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required, "schema": prop,
             "description": prop.get("description", "")}
            for name, prop in schema.get("properties", {}).items()]


def _role_text(role: Role | None, scoped: bool, unscoped: bool = False) -> str:
    if role is None:
        return "Public: no credentials needed."
    if unscoped:
        return f"Needs role `{role.name}` with an unscoped grant."
    return f"Needs role `{role.name}`" + (" (within the grant's pipelines when scoped)." if scoped else ".")


def ability(principal: Principal, route: Route) -> tuple[bool, str | None]:
    """Whether the route's role check lets `principal` through, and why not: what the Console shows beside an
    action it disables. Pipeline scopes are checked per request (they depend on the pipeline named)."""
    if not principal.may(route.role):
        return False, f"needs role {route.role.name}; {principal.user} has {principal.role.name}"
    if route.unscoped and principal.scope is not None:
        return False, (f"needs an unscoped {route.role.name} grant; {principal.user}'s is limited to "
                       f"{', '.join(sorted(principal.scope))}")
    return True, None


def openapi_document(routes: list[Route], path_prefix: str,
                     documented: tuple[Documented, ...] = ()) -> dict[str, Any]:
    """OpenAPI 3.1 from the routes' pydantic models: what the handlers validate is what the document says.
    Every operation names its role twice: in prose in the description and as `x-role` (`public` when none)."""
    defs: dict[str, Any] = {}
    error_ref = _schema_of(ErrorBody, defs)
    paths: dict[str, dict[str, Any]] = {}
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
    for route in routes:
        role = None if route.public else route.role
        op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary,
                              "description": f"{(route.handler.__doc__ or '').strip()}\n\n"
                              + _role_text(role, route.role > Role.viewer or route.write, route.unscoped),
                              "x-role": role.name if role is not None else "public",
                              "security": security if role is not None else []}
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": f"^{route.param_pattern(name)}$"}}
            for name in _PARAM.findall(route.path)]
        if route.query is not None:
            params += _query_parameters(route.query, defs)
        params += [{"name": h, "in": "header", "required": False, "schema": {"type": "string"}}
                   for h in route.headers_in]
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {"required": not route.optional_body,
                                 "content": {"application/json": {"schema": _schema_of(route.body, defs)}}}
        elif route.raw_body:
            op["requestBody"] = {"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if route.response is not None:
            ok["content"] = {"application/json": {"schema": _schema_of(route.response, defs)}}
        else:
            ok["content"] = {m: {"schema": {"type": "string"}} for m in route.media}
        responses: dict[str, Any] = {"200": ok}
        for status in (400, 401, 403, 404, *route.statuses):
            responses[str(status)] = ({**ok, "description": "Created"} if status < 400 else
                                      {"description": API_ERROR_NAMES.get(status, "error"),
                                       "content": {"application/json": {"schema": error_ref}}})
        op["responses"] = responses
        paths.setdefault(path_prefix + route.path, {})[route.method.lower()] = op
    for doc in documented:
        paths.setdefault(path_prefix + doc.path, {})[doc.method.lower()] = {
            "summary": doc.summary, "description": f"{doc.note}\n\n{_role_text(doc.role, False)}",
            "x-role": doc.role.name if doc.role is not None else "public",
            "security": security if doc.role is not None else [],
            "responses": {"200": {"description": "OK"}, **({} if doc.role is None else {
                "401": {"description": "unauthenticated", "content": {"application/json": {"schema": error_ref}}},
                "403": {"description": "forbidden", "content": {"application/json": {"schema": error_ref}}}})}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Data Aggregator management API", "version": "1",
                 "description": "Pipelines, read-only queries, exports and connector types; see docs/api.md."},
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API token (`aggregator tokens`)."},
            "session": {"type": "apiKey", "in": "cookie", "name": "aggregator_session"}}},
    }
