"""Alert channels and rules as written in spec files (part of the spec language): a global `alerts:` block and
per-pipeline `alerts:`, and `AlertSetup`, the two assembled. The alert runtime (aggregator/alerts/) reads these;
nothing here imports it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from connectors.secrets import EnvRef

AlertKind = Literal["run_failure", "run_success", "check_failure", "freshness", "spec_error", "schema_change"]

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> dt.timedelta:
    """`26h`, `30m`, `2d`, `1w` or a number of seconds, as a timedelta."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and (match := _DURATION_RE.match(value)) and int(match.group(1)) > 0:
        return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"{value!r} is not a duration; write a positive number with a unit s, m, h, d or w, e.g. '26h'")


Duration = Annotated[
    dt.timedelta,
    BeforeValidator(parse_duration),
    # what the YAML holds (`26h`), not pydantic's ISO-8601 default for timedelta
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\s*[0-9]+\s*[smhdw]\s*$"},
                              {"type": "integer", "minimum": 1}]}),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(Strict):
    """POST a JSON payload to a URL, optionally signed with HMAC-SHA256."""

    type: Literal["webhook"] = "webhook"
    url: str | EnvRef = Field(description="Receiver URL, or `{env: NAME}` when the URL holds a token.")
    secret: EnvRef | None = Field(
        default=None, description="HMAC-SHA256 key from the environment; the body's hex digest is sent in `signature_header`."
    )
    signature_header: str = Field(default="X-Aggregator-Signature", description="Header carrying `sha256=<hex digest>`.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per-attempt HTTP timeout.")


class SlackChannel(Strict):
    """A Slack incoming webhook; its URL is a secret, so it can only come from the environment."""

    type: Literal["slack"] = "slack"
    url: EnvRef = Field(description="`{env: NAME}` holding the incoming-webhook URL.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per-attempt HTTP timeout.")


class EmailChannel(Strict):
    """E-mail through an SMTP server, with STARTTLS unless disabled."""

    type: Literal["email"] = "email"
    host: str = Field(description="SMTP server host name.")
    port: int = Field(default=587, gt=0, lt=65536, description="SMTP port (587 for submission with STARTTLS).")
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS before logging in.")
    ca_file: str | None = Field(
        default=None, description="PEM bundle that verifies the server certificate (default: the system's trust store)."
    )
    username: str | EnvRef | None = Field(default=None, description="SMTP user name, if the server needs a login.")
    password: EnvRef | None = Field(default=None, description="`{env: NAME}` holding the SMTP password.")
    sender: str = Field(description="From: address.")
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    timeout_seconds: float = Field(default=10.0, gt=0, description="Per-attempt SMTP timeout.")


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]
CHANNEL_TYPES: tuple[str, ...] = ("webhook", "slack", "email")


class QuietHours(Strict):
    """A daily window in which alerts are held; they are sent when it ends if the incident is still open."""

    start: dt.time = Field(description="Start of the window, e.g. '22:00'.")
    end: dt.time = Field(description="End of the window, e.g. '07:00' (may be on the next day).")
    timezone: str = Field(default="UTC", description="IANA timezone of `start` and `end`.")

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Berlin')") from exc
        return value

    def contains(self, when: dt.datetime) -> bool:
        from zoneinfo import ZoneInfo

        local = when.astimezone(ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class AlertRule(Strict):
    """When to alert and through which channels."""

    # not `on:`: YAML 1.1 (PyYAML) reads a bare `on` key as the boolean True
    when: AlertKind = Field(
        description="run_failure, run_success (opt-in), check_failure, freshness, spec_error (a spec file "
        "that stops loading) or schema_change (a load added, widened or lost columns: one message per load)."
    )
    channels: list[str] = Field(min_length=1, description="Channel names declared under the global `alerts.channels`.")
    severity: Literal["WARN", "ERROR"] = Field(
        default="ERROR", description="check_failure only: the lowest check severity that alerts (WARN includes ERROR)."
    )
    pipelines: list[str] = Field(
        default_factory=lambda: ["*"], description="Global rules only: pipeline names the rule covers ('*' = all)."
    )
    recovery: bool = Field(default=True, description="Send one recovery message when the incident resolves.")
    quiet_hours: QuietHours | None = Field(default=None, description="Overrides the global quiet hours for this rule.")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: object) -> object:
        if isinstance(data, dict) and True in data:
            raise ValueError("write `when:` instead of `on:` (YAML reads a bare `on` key as the boolean true)")
        return data

    def covers(self, pipeline: str | None) -> bool:
        return "*" in self.pipelines or (pipeline is not None and pipeline in self.pipelines)


class Delivery(Strict):
    """How hard delivery tries before an alert is recorded as failed."""

    attempts: int = Field(default=3, ge=1, le=10, description="Attempts per channel and alert.")
    backoff_seconds: float = Field(default=1.0, ge=0, le=60, description="First wait between attempts; doubles each time.")


class AlertsConfig(Strict):
    """The global `alerts:` block (e.g. in `alerts.yaml` beside the pipeline specs)."""

    ui_url: str = Field(
        default="http://localhost:3000", description="Base URL of the Dagster UI (or the proxy) used in links to runs."
    )
    channels: dict[str, Channel] = Field(default_factory=dict, description="Named channels.")
    rules: list[AlertRule] = Field(default_factory=list, description="Default rules for every pipeline.")
    quiet_hours: QuietHours | None = Field(default=None, description="Hold alerts in this daily window.")
    delivery: Delivery = Field(default_factory=lambda: Delivery(), description="Retries and backoff.")


class PipelineAlerts(Strict):
    """A pipeline's own `alerts:` block: rules added to (or replacing) the global defaults."""

    rules: list[AlertRule] = Field(default_factory=list, description="Rules for this pipeline.")
    inherit: bool = Field(default=True, description="Also apply the global default rules to this pipeline.")


@dataclass(frozen=True)
class AlertSetup:
    """The global config plus each pipeline's own rules, validated against each other."""

    config: AlertsConfig = field(default_factory=lambda: AlertsConfig())
    pipeline_rules: dict[str, tuple[list[AlertRule], bool]] = field(default_factory=dict)  # name -> (rules, inherit)
    freshness: dict[str, tuple[str, dt.timedelta]] = field(default_factory=dict)  # asset key path -> (pipeline, max age)

    def rules_for(self, kind: str, pipeline: str | None, severity: str | None = None) -> list[AlertRule]:
        own, inherit = self.pipeline_rules.get(pipeline or "", ([], True))
        rules = list(own) + ([r for r in self.config.rules if r.covers(pipeline)] if inherit else [])
        out = [r for r in rules if r.when == kind]
        if kind == "check_failure":
            out = [r for r in out if r.severity == "WARN" or severity == "ERROR"]
        return out

    @property
    def enabled(self) -> bool:
        return bool(self.config.rules) or any(rules for rules, _ in self.pipeline_rules.values())
