"""Alert channels obey the connectors' egress rule: a webhook or SMTP server is written by users (the alerts
API), and the sender runs in the worker and the code server, so a channel must not reach what a connector
may not (a private network not allowed, the platform's own services). Found in review: webhooks were posted
with a plain http.client connection to any address."""

from __future__ import annotations

import socket

import pytest

from aggregator.alerts.deliver import DeliveryError, send_email, send_webhook
from aggregator.alerts.message import AlertMessage
from aggregator.pipelines.alerts_spec import EmailChannel, WebhookChannel
from aggregator_tests.alerts.receivers import HttpReceiver

MESSAGE = AlertMessage(kind="test", subject="egress", title="egress test", summary="a test message")


def test_a_webhook_reaches_an_allowed_address_and_nothing_else(
    http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = WebhookChannel(url=f"{http_receiver.base_url}/hook")
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")
    send_webhook(channel, MESSAGE)
    assert len(http_receiver.on("/hook")) == 1
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "10.99.0.0/16")
    with pytest.raises(DeliveryError, match=r"refused: .*loopback.*AGGREGATOR_ALLOWED_NETWORKS"):
        send_webhook(channel, MESSAGE)
    # The platform's own services stay refused even where their network is allowed.
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")
    port = http_receiver.base_url.rsplit(":", 1)[1]
    monkeypatch.setenv("AGGREGATOR_PROTECTED_SERVICES", f"127.0.0.1:{port}")
    with pytest.raises(DeliveryError, match="refused"):
        send_webhook(channel, MESSAGE)
    assert len(http_receiver.on("/hook")) == 1  # nothing more arrived


def test_an_smtp_server_outside_the_allowed_networks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare listener, not aiosmtpd: the refused connection is closed before the server's greeting, which left
    aiosmtpd an unclosed transport at shutdown (a ResourceWarning in the next test)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        channel = EmailChannel(host="127.0.0.1", port=port, starttls=False, sender="a@example.com",
                               to=["b@example.com"])
        monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "10.99.0.0/16")
        with pytest.raises(DeliveryError, match=r"SMTP 127\.0\.0\.1:\d+ refused: .*AGGREGATOR_ALLOWED_NETWORKS"):
            send_email(channel, MESSAGE)
        listener.settimeout(1)
        with listener.accept()[0] as accepted:  # the TCP handshake happened; not a byte was sent
            accepted.settimeout(5)
            assert accepted.recv(1) == b""
