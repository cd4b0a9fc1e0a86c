"""Secrets in a connection written through the API must be `{env: NAME}` references, never values.

The connector models do not mark their secret fields, so a value is treated as a secret by where it sits:
a key named like a credential (the redactor's set, connectors/redact.py, plus a few config names), a URL
carrying a password, or a URL query parameter of that set. Refusing too much is the safe side: the fix is
always the same, `{env: NAME}`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from aggregator.pipelines import bounded_yaml
from connectors.redact import SECRET_PARAMS, is_secret_key, sanitize_url
from connectors.secrets import is_env_ref

PLACEHOLDERS = re.compile(r"(\{[A-Za-z_][A-Za-z0-9_.]*\}\s*)+")


def _secret_key(key: Any) -> bool:
    """A key (config option, header or parameter name) whose value is a credential (connectors/redact.py)."""
    return is_secret_key(key)


def _templated(value: Any) -> bool:
    """Only placeholders (`{parent.token}`, `{{ with.x }}`): filled in at run time, not a literal."""
    return isinstance(value, str) and ("{{" in value or bool(PLACEHOLDERS.fullmatch(value)))


def inline_secrets(value: Any, path: tuple[str | int, ...] = (), root: str = "config") -> list[str]:
    """Dotted paths (under `root`) of values that look like secrets and are not `{env: NAME}`."""
    found: list[str] = []
    if is_env_ref(value):
        return found
    if isinstance(value, dict):
        for key, sub in value.items():
            if _secret_key(key) and not is_env_ref(sub) and sub not in (None, "") and not isinstance(
                    sub, dict | list) and not _templated(sub):
                found.append(".".join(str(p) for p in (root, *path, key)))
            else:
                found.extend(inline_secrets(sub, (*path, key), root))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found.extend(inline_secrets(sub, (*path, index), root))
    elif isinstance(value, str) and value.lower().startswith(("bearer ", "basic ")) and not _templated(
            value.split(" ", 1)[1]):
        found.append(".".join(str(p) for p in (root, *path)))
    elif isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        secret_query = any(k.lower() in SECRET_PARAMS for k, _ in parse_qsl(parts.query, keep_blank_values=True))
        if ":" in userinfo or secret_query:
            found.append(".".join(str(p) for p in (root, *path)))
    return found


def masked(value: Any) -> Any:
    """`value` with every inline secret `inline_secrets` would name replaced by `***` (for reading back
    hand-written files, which may hold them)."""
    if is_env_ref(value):
        return value
    if isinstance(value, dict):
        return {k: "***" if _secret_key(k) and not is_env_ref(v) and v not in (None, "") and not isinstance(v, dict | list)
                else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and inline_secrets(value):
        return sanitize_url(value)
    return value


def file_secrets(content: str) -> list[str]:
    """Inline secrets anywhere in a spec file's text, as dotted paths (`connections.<name>.config...`,
    `pipelines.0.sources.1.stream.headers.Authorization`, templates and alert channels alike): a stream,
    template or alert may hold no credential either, since every viewer reads the file."""
    try:
        data = bounded_yaml.safe_load(content)
    except yaml.YAMLError:
        return []
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    for key, value in data.items():
        for path in inline_secrets(value, (), str(key)):
            hint = "" if key == "connections" else " (streams hold no secrets: set it in the connection's auth or headers)"
            found.append(path + hint)
    return found
