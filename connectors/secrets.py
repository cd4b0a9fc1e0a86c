"""`{env: NAME}`: the one resolver of secret references, and the rule on which names a spec may read.

A spec is written by users the platform does not fully trust (an editor scoped to one pipeline), so the
variables it can name are limited twice:

* **Reserved names can never be named**, whatever the configuration: the platform's own settings and
  secrets. `AGGREGATOR_*` (admin password, proxy/OIDC secrets, worker token, the proxy, platform and
  warehouse database URLs — the platform builds its own warehouse resource from settings, never from a
  spec), `DAGSTER_*` (instance and run storage, e.g. `DAGSTER_PG_URL`), libpq's `PG<LETTERS>` (`PGPASSWORD`,
  `PGHOST`…), `POSTGRES_*` (the database server's own) and the deploy files' component passwords
  (`PROXY_DB_PASSWORD`, `DAGSTER_DB_PASSWORD`, `WAREHOUSE_DB_PASSWORD`, `BACKUP_DB_PASSWORD`).
* **`AGGREGATOR_SECRET_NAMES`** (comma-separated names, or prefixes ending in `*`) lists what specs may
  name; unset or `*` means every name that is not reserved.

Every place that reads `{env: NAME}` goes through this module: spec loading (deferred to run time as
`dg.EnvVar`), `aggregator connections check/discover`, the worker (resolved now) and alert channels. A
refused name is a `SecretNameError` carrying the field path, so spec errors point at file, line and field.
Messages name the variable and the rule, never a value.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, ConfigDict, Field, field_validator

SECRET_NAMES_ENV = "AGGREGATOR_SECRET_NAMES"  # noqa: S105 (a variable name, not a secret)
RESERVED_PREFIXES = ("AGGREGATOR_", "DAGSTER_", "POSTGRES_")
RESERVED_NAMES = frozenset({"PROXY_DB_PASSWORD", "DAGSTER_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "BACKUP_DB_PASSWORD"})
_LIBPQ = re.compile(r"^PG[A-Z]+$")  # PGPASSWORD, PGHOST, PGSERVICEFILE …: libpq reads them, never a spec
RESERVED_RULE = ("AGGREGATOR_*, DAGSTER_*, POSTGRES_*, PG<LETTERS> (libpq) and "
                 + ", ".join(sorted(RESERVED_NAMES)))
Path = tuple[str | int, ...]


class SecretReferenceError(ValueError):
    """A `{env: NAME}` that cannot be resolved; `path` is the field holding it (below the config root)."""

    def __init__(self, message: str, path: Path = (), reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message  # the message without "where: field:", for spec errors that locate it


class SecretNameError(SecretReferenceError):
    """A `{env: NAME}` naming a variable specs may not read."""


class MissingSecretError(SecretReferenceError):
    """A `{env: NAME}` naming an allowed variable that is not set."""


def is_env_ref(value: Any) -> bool:
    """True for `{env: NAME}` (exactly one key, a string)."""
    return isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str)


def env_refs(value: Any, path: Path = ()) -> list[tuple[Path, str]]:
    """Every `{env: NAME}` in a config tree with its path."""
    if is_env_ref(value):
        return [(path, value["env"])]
    if isinstance(value, dict):
        return [ref for k, v in value.items() for ref in env_refs(v, (*path, k))]
    if isinstance(value, list):
        return [ref for i, v in enumerate(value) for ref in env_refs(v, (*path, i))]
    return []


def is_reserved(name: str) -> bool:
    """A variable of the platform itself, which no spec may name."""
    upper = name.upper()
    return upper.startswith(RESERVED_PREFIXES) or upper in RESERVED_NAMES or bool(_LIBPQ.match(upper))


@dataclass(frozen=True)
class SecretPolicy:
    """Which variable names `{env: NAME}` may read: `patterns` (`*` = all) minus the reserved ones."""

    patterns: tuple[str, ...] = ("*",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretPolicy:
        env = os.environ if environ is None else environ
        raw = env.get(SECRET_NAMES_ENV, "").strip()
        patterns = tuple(p.strip() for p in raw.split(",") if p.strip()) if raw else ("*",)
        return cls(patterns or ("*",))

    def refusal(self, name: str) -> str | None:
        """Why `name` may not be read (naming the rule), or None when it may."""
        if is_reserved(name):
            return (f"environment variable {name} is reserved for the platform ({RESERVED_RULE}); a spec may "
                    "read only its pipelines' own secrets: use a variable of your own, e.g. SALES_API_TOKEN")
        for pattern in self.patterns:
            if pattern == "*" or name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                return None
        return (f"environment variable {name} is not one specs may read; {SECRET_NAMES_ENV} allows "
                f"{', '.join(self.patterns)}")

    def check(self, name: str, where: str, path: Path = ()) -> None:
        """Raise SecretNameError naming `where` (e.g. `connection 'api'`) and the field when `name` is refused."""
        reason = self.refusal(name)
        if reason is not None:
            raise SecretNameError(f"{where}: {_field(path)}{reason}", path, reason)



class EnvRef(BaseModel):
    """A value read from an environment variable when it is used: `{env: NAME}`. Never stored resolved; the
    name must be one specs may read (connectors/secrets.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")

    @field_validator("env")
    @classmethod
    def _allowed(cls, name: str) -> str:
        reason = SecretPolicy.from_env().refusal(name)
        if reason is not None:
            raise ValueError(reason)
        return name


def _field(path: Path) -> str:
    return f"{'.'.join(str(p) for p in path)}: " if path else ""


@dataclass
class Resolver:
    """Resolves `{env: NAME}` references under one policy and remembers every value it handed out, so the
    caller can redact them by value from anything it sends back (the worker does)."""

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    policy_: SecretPolicy | None = None
    values: set[str] = field(default_factory=set)

    @property
    def policy(self) -> SecretPolicy:
        """The given policy, else the one `environ` configures."""
        return self.policy_ or SecretPolicy.from_env(self.environ)

    def check_names(self, tree: Any, where: str, prefix: Path = ()) -> None:
        """Raise SecretNameError for the first reference the policy refuses."""
        for path, name in env_refs(tree, prefix):
            self.policy.check(name, where, path)

    def resolve(self, tree: Any, where: str, prefix: Path = ()) -> Any:
        """`tree` with every reference replaced by its variable's value now (outside a run: the worker, the
        CLI). A refused name raises SecretNameError, an unset one MissingSecretError; never a value."""
        self.check_names(tree, where, prefix)
        return self._resolve(tree, where, prefix)

    def _resolve(self, value: Any, where: str, path: Path) -> Any:
        if is_env_ref(value):
            name = value["env"]
            if name not in self.environ:
                reason = f"reads environment variable {name}, which is not set; set it here as the run's environment would"
                dotted = ".".join(str(p) for p in path)
                raise MissingSecretError(f"{where}: {dotted + ' ' if dotted else ''}{reason}", path, reason)
            resolved = self.environ[name]
            self.values.add(resolved)
            return resolved
        if isinstance(value, dict):
            return {k: self._resolve(v, where, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, where, (*path, i)) for i, v in enumerate(value)]
        return value

    def deferred(self, tree: Any, where: str, prefix: Path = ()) -> Any:
        """`tree` with every reference replaced by `dg.EnvVar(NAME)`: Dagster resolves it when a run starts,
        so nothing is resolved or stored now. Refused names raise SecretNameError here, at load time."""
        import dagster as dg

        self.check_names(tree, where, prefix)

        def swap(value: Any) -> Any:
            if is_env_ref(value):
                return dg.EnvVar(value["env"])
            if isinstance(value, dict):
                return {k: swap(v) for k, v in value.items()}
            if isinstance(value, list):
                return [swap(v) for v in value]
            return value

        return swap(tree)

    def redact(self, text: str, mask: str = "***") -> str:
        """`text` with every value this resolver handed out replaced by `mask`, longest first (so a value
        containing another is masked whole). Values under 4 characters are not secrets worth the noise."""
        forms = {form for value in self.values if len(value) >= 4 for form in encoded_forms(value)}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, mask)
        return text


# Shorter base64 cores than this are not masked: they would mask innocent text and reveal too little.
_MIN_CORE = 6


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that depend only on `raw`, wherever `raw` sits in a longer encoded value (HTTP
    Basic credentials `user:secret`, a token in a JSON document, ...): one core per alignment, in the standard
    and the URL-safe alphabet. Prefix bytes share the first character(s) of their group with `raw` and
    following bytes its last, so those characters are dropped."""
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        start = (0, 2, 3)[shift]  # the first character computed from `raw`'s bytes alone
        end = len(encoded) - (1 if (shift + len(raw)) % 3 else 0)  # the last one may mix with what follows
        core = encoded[start:end]
        if len(core) >= _MIN_CORE:
            cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def encoded_forms(value: str) -> set[str]:
    """The ways a resolved secret shows up in text a connector sends back: as given, percent-encoded (URLs),
    JSON-escaped (an echoed document), hex, and base64 at any alignment (Basic auth, tokens in payloads)."""
    raw = value.encode()
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
             raw.hex(), raw.hex().upper(), *_base64_cores(raw)}
    return {form for form in forms if form}


def resolve(tree: Any, where: str, environ: Mapping[str, str] | None = None, prefix: Path = ()) -> Any:
    """Resolve every `{env: NAME}` in `tree` now, under the policy of `environ` (default: this process's)."""
    return Resolver(os.environ if environ is None else environ).resolve(tree, where, prefix)


def deferred(tree: Any, where: str, prefix: Path = ()) -> Any:
    """Every `{env: NAME}` in `tree` as `dg.EnvVar`, after the name check (spec loading, compiling)."""
    return Resolver().deferred(tree, where, prefix)
