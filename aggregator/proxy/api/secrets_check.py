"""Secrets in a connection written through the API must be `{env: NAME}` references, never values.

The connector models do not mark their secret fields, so a value is treated as a secret by where it sits:
a key named like a credential (the redactor's set, connectors/redact.py, plus a few config names), a URL
carrying a password, or a URL query parameter of that set. Refusing too much is the safe side: the fix is
always the same, `{env: NAME}`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from aggregator.pipelines import bounded_yaml
from connectors.redact import SECRET_PARAMS, sanitize_url

SECRET_KEYS = SECRET_PARAMS | {"private_key", "credentials", "authorization", "passphrase", "client_secret"}


def _is_env_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str)


def inline_secrets(value: Any, path: tuple[str | int, ...] = ()) -> list[str]:
    """Dotted paths (under `config`) of values that look like secrets and are not `{env: NAME}`."""
    found: list[str] = []
    if _is_env_ref(value):
        return found
    if isinstance(value, dict):
        for key, sub in value.items():
            if str(key).lower() in SECRET_KEYS and not _is_env_ref(sub) and sub not in (None, ""):
                found.append(".".join(str(p) for p in ("config", *path, key)))
            else:
                found.extend(inline_secrets(sub, (*path, key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found.extend(inline_secrets(sub, (*path, index)))
    elif isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        secret_query = any(k.lower() in SECRET_PARAMS for k, _ in parse_qsl(parts.query, keep_blank_values=True))
        if ":" in userinfo or secret_query:
            found.append(".".join(str(p) for p in ("config", *path)))
    return found


def masked(value: Any) -> Any:
    """`value` with every inline secret `inline_secrets` would name replaced by `***` (for reading back
    hand-written files, which may hold them)."""
    if _is_env_ref(value):
        return value
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in SECRET_KEYS and not _is_env_ref(v) and v not in (None, "")
                else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and inline_secrets(value):
        return sanitize_url(value)
    return value


def file_secrets(content: str) -> list[str]:
    """Inline secrets in the connections of a spec file's text, as `connections.<name>.config...` paths."""
    try:
        data = bounded_yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    connections = data.get("connections") if isinstance(data, dict) else None
    if not isinstance(connections, dict):
        return []
    found: list[str] = []
    for name, conn in connections.items():
        if isinstance(conn, dict):
            found.extend(f"connections.{name}.{path}" for path in inline_secrets(conn.get("config") or {}))
    return found
