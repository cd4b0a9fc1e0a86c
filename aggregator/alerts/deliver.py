"""Deliver one message through one channel, with bounded retries; never raises."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

from aggregator.alerts.message import AlertMessage
from aggregator.pipelines.alerts_spec import (
    AlertsConfig,
    Channel,
    Delivery,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from connectors import secrets
from connectors.egress import EgressError, check_socket
from connectors.redact import sanitize_url
from connectors.secrets import EnvRef

log = logging.getLogger(__name__)


TEST_KIND = "test"  # the `kind` of a channel test: in the webhook payload, the e-mail subject and the history


class DeliveryError(Exception):
    """A channel could not take the message; the text never holds a secret."""


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    attempts: int
    error: str | None = None


def resolve(value: str | EnvRef, what: str) -> str:
    if isinstance(value, EnvRef):
        try:
            resolved: str = secrets.resolve(value.model_dump(), what)
        except secrets.SecretReferenceError as exc:
            raise DeliveryError(str(exc)) from None
        if not resolved:
            raise DeliveryError(f"{what}: environment variable {value.env} is empty")
        return resolved
    return value


def display_url(url: str) -> str:
    """scheme://host[:port]/*** — Slack and many webhooks carry their token in the path, so the path is hidden."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return sanitize_url(f"{parts.scheme}://{host}/***") if parts.path not in ("", "/") else sanitize_url(url)


class _CheckedHTTP(http.client.HTTPConnection):
    """An HTTP connection whose peer passes the connectors' egress rule (connectors/egress.py) before a byte
    is sent: a channel's URL is written by users (the alerts API), and the sender runs in the worker and the
    code server, so it must reach nothing a connector could not (the platform's own services, metadata
    addresses, private networks not allowed). The peer is checked, not the name: no DNS-rebinding window."""

    def connect(self) -> None:
        super().connect()
        check_socket(self.sock)


class _CheckedHTTPS(http.client.HTTPSConnection):
    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # the TCP connection only
        check_socket(self.sock)  # before the TLS handshake
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _CheckedSMTP(smtplib.SMTP):
    """SMTP to a server that passes the egress rule, for the same reason as `_CheckedHTTP`."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        check_socket(sock)
        return sock


def _post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
    # http.client, not requests/httpx: urllib3 logs every full URL at DEBUG and httpx at INFO, and for Slack
    # and token-in-query webhooks the URL is the secret.
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"{display_url(url)} is not an http(s) URL")
    conn_class = _CheckedHTTPS if parts.scheme == "https" else _CheckedHTTP
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        conn.request("POST", target, body=body, headers={**headers, "Content-Length": str(len(body))})
        status = conn.getresponse().status
    except EgressError as exc:
        raise DeliveryError(f"POST {display_url(url)} refused: {exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"POST {display_url(url)} failed: {type(exc).__name__}") from None
    finally:
        conn.close()
    if status >= 300:
        raise DeliveryError(f"POST {display_url(url)} answered HTTP {status}")


def send_webhook(channel: WebhookChannel, message: AlertMessage) -> None:
    url = resolve(channel.url, "webhook url")
    body = json.dumps(message.payload(), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "data-aggregator-alerts"}
    if channel.secret is not None:
        key = resolve(channel.secret, "webhook secret").encode()
        headers[channel.signature_header] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    _post_json(url, body, headers, channel.timeout_seconds)


def send_slack(channel: SlackChannel, message: AlertMessage) -> None:
    url = resolve(channel.url, "slack url")
    icon = ":white_check_mark:" if message.resolved else ":test_tube:" if message.kind == TEST_KIND \
        else ":rotating_light:"
    body = json.dumps({"text": f"{icon} {message.text()}"}).encode()
    _post_json(url, body, {"Content-Type": "application/json"}, channel.timeout_seconds)


def send_email(channel: EmailChannel, message: AlertMessage) -> None:
    mail = EmailMessage()
    mail["Subject"] = ("[resolved] " if message.resolved else "[test] " if message.kind == TEST_KIND
                       else "[alert] ") + message.title
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail.set_content(message.text())
    username = resolve(channel.username, "smtp username") if channel.username is not None else None
    password = resolve(channel.password, "smtp password") if channel.password is not None else None
    try:
        with _CheckedSMTP(channel.host, channel.port, timeout=channel.timeout_seconds) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=channel.ca_file))
            if username is not None:
                smtp.login(username, password or "")
            smtp.send_message(mail)
    except EgressError as exc:
        raise DeliveryError(f"SMTP {channel.host}:{channel.port} refused: {exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        # SMTP errors echo the server's reply, never our password; the class and code say enough
        code = getattr(exc, "smtp_code", None)
        raise DeliveryError(
            f"SMTP {channel.host}:{channel.port} failed: {type(exc).__name__}" + (f" {code}" if code else "")
        ) from None


def send_once(channel: Channel, message: AlertMessage) -> None:
    if isinstance(channel, WebhookChannel):
        send_webhook(channel, message)
    elif isinstance(channel, SlackChannel):
        send_slack(channel, message)
    else:
        send_email(channel, message)


def deliver(name: str, channel: Channel, message: AlertMessage, policy: Delivery) -> DeliveryResult:
    """Try up to `policy.attempts` times with doubling backoff; a failure is logged and returned, not raised."""
    error = ""
    for attempt in range(1, policy.attempts + 1):
        try:
            send_once(channel, message)
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in one channel must not stop the sensor or other channels
            error = f"{type(exc).__name__} while sending"
        else:
            return DeliveryResult(ok=True, attempts=attempt)
        log.warning("alert %s via channel %s: attempt %d/%d failed: %s",
                    message.subject, name, attempt, policy.attempts, error)
        if attempt < policy.attempts:
            time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
    log.error("alert %s via channel %s not delivered after %d attempts: %s",
              message.subject, name, policy.attempts, error)
    return DeliveryResult(ok=False, attempts=policy.attempts, error=error)


def channel_test_message(channel: str, ui_url: str, sent_by: str | None = None) -> AlertMessage:
    """The clearly marked sample alert a channel test sends (no incident is opened or closed by it)."""
    by = f" by {sent_by}" if sent_by else ""
    return AlertMessage(
        kind=TEST_KIND, subject=f"test:{channel}", title=f"TEST: alert channel {channel} works",
        summary=f"This is a test message sent{by} to check the channel; nothing failed.", url=ui_url,
    )


def send_test(channel: str, config: AlertsConfig, sent_by: str | None = None) -> tuple[AlertMessage, DeliveryResult]:
    """Send the test message through `channel` of `config` with the channel's delivery policy, as an alert
    would go; raises KeyError for a channel `config` does not declare."""
    message = channel_test_message(channel, config.ui_url, sent_by)
    return message, deliver(channel, config.channels[channel], message, config.delivery)
