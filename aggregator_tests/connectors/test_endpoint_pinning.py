"""The storage endpoint is checked once and connected to as checked: a name that answers a permitted address
when checked and another one afterwards (DNS rebinding) never moves the connection, for S3 (Arrow's C++
client), Azure Blob (adlfs over aiohttp) and SFTP (paramiko). Real servers on loopback; only the name
service is replaced, for `rebind.test`, by one that answers 127.0.0.1 once and 127.0.0.2 (refused by the
egress rule, where nothing listens) every time after."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aggregator_tests.azurite import Azurite
from aggregator_tests.rebinding import NAME, Rebinding
from aggregator_tests.rebinding import rebinding as rebinding_names
from aggregator_tests.s3_server import S3Server
from aggregator_tests.sftp_server import SftpServer
from connectors.egress import EgressError, pinned_address
from connectors.files import FilesResource, FileStream


@pytest.fixture
def rebinding(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rebinding]:
    # Only 127.0.0.1 is permitted: the later answer is a loopback address the egress rule refuses.
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.1/32")
    with rebinding_names(monkeypatch, "127.0.0.1", "127.0.0.2") as resolver:
        yield resolver


def test_the_rebinding_name_service_answers_a_refused_address_after_the_first(rebinding: Rebinding) -> None:
    """The premise: without pinning, a client that looks the name up again gets an address the rule refuses."""
    assert pinned_address(NAME, 80, "endpoint") == "127.0.0.1"
    with pytest.raises(EgressError, match="connectors may reach only public addresses"):
        pinned_address(NAME, 80, "endpoint")


def test_s3_connects_to_the_checked_address(rebinding: Rebinding, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="exports/a.csv", Body=b"id\n1\n2\n")
    endpoint = s3_server.endpoint.replace("127.0.0.1", NAME)
    files = FilesResource(base_dir=f"s3://{bucket}/exports", storage_options={
        "endpoint_url": endpoint, "key": s3_server.access_key, "secret": s3_server.secret_key})
    assert [len(b) for b in files.read(FileStream(path="*.csv"))] == [2]
    assert rebinding.answers == 1  # looked up once, by the check; the client used the address it returned


def test_azure_connects_to_the_checked_address(rebinding: Rebinding, azurite: Azurite) -> None:
    container = azurite.new_container()
    azurite.put(container, "exports/a.csv", b"id\n1\n2\n3\n")
    files = FilesResource(base_dir=f"az://{container}/exports", storage_options={
        "endpoint_url": azurite.endpoint.replace("127.0.0.1", NAME), "account_name": azurite.account,
        "account_key": azurite.key})
    assert [len(b) for b in files.read(FileStream(path="*.csv"))] == [3]
    assert rebinding.answers == 1


def test_sftp_connects_to_the_checked_address(rebinding: Rebinding, sftp_server: SftpServer) -> None:
    (sftp_server.root / "pinned").mkdir(exist_ok=True)
    (sftp_server.root / "pinned" / "a.csv").write_text("id\n1\n")
    known_hosts = sftp_server.known_hosts.replace("[127.0.0.1]", f"[{NAME}]")
    files = FilesResource(base_dir=sftp_server.url("/pinned").replace("127.0.0.1", NAME), storage_options={
        "password": sftp_server.password, "known_hosts": known_hosts})
    assert [len(b) for b in files.read(FileStream(path="*.csv"))] == [1]
    assert rebinding.answers == 1


def test_a_name_with_any_refused_address_is_refused_before_connecting(
        monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> None:
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.1/32")
    files = FilesResource(base_dir=f"s3://{s3_server.new_bucket()}/exports", storage_options={
        "endpoint_url": s3_server.endpoint.replace("127.0.0.1", "127.0.0.2"), "key": s3_server.access_key,
        "secret": s3_server.secret_key})
    with pytest.raises(EgressError, match=r"storage endpoint 127\.0\.0\.2:\d+: connectors may reach only public"):
        files.check()


def _brokers() -> list[Any]:
    from connectors.streams.mqtt import MqttResource
    from connectors.streams.nats import JetStreamResource
    from connectors.streams.rabbitmq import RabbitMqResource
    from connectors.streams.redis import RedisStreamsResource

    return [RedisStreamsResource(host=NAME), RabbitMqResource(host=NAME), MqttResource(host=NAME),
            JetStreamResource(servers=[f"nats://{NAME}:4222"])]


@pytest.mark.parametrize("resource", _brokers(), ids=lambda r: type(r).__name__)
def test_a_broker_is_connected_to_at_the_checked_address(rebinding: Rebinding, resource: Any) -> None:
    """Message brokers (plain TCP, the local servers of every broker type) follow the same rule."""
    assert resource.check()
    assert rebinding.answers == 1


def test_a_nats_server_that_refuses_fails_the_read_instead_of_hanging() -> None:
    """nats-py retried a refusing server forever with the options the connector gave it (seen as a kit
    test that hung): now two attempts per server, then an error naming the server."""
    from connectors.errors import SourceReadError
    from connectors.streams.config import NatsStream
    from connectors.streams.nats import JetStreamResource

    closed = JetStreamResource(servers=["nats://127.0.0.1:1"], timeout_seconds=2)
    with pytest.raises(SourceReadError, match=r"nats://127\.0\.0\.1:1: cannot connect: no server accepted"):
        closed.check()
    with pytest.raises(SourceReadError, match="cannot connect"):
        list(closed.read(NatsStream(type="nats", stream="kit")))
