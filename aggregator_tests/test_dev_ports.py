"""Issue 20.3: right after a crash, `aggregator dev` refused to start for 60 s (`port … already in use`): the
dead listener's connections sat in TIME_WAIT and the port check bound without SO_REUSEADDR, unlike uvicorn."""

from __future__ import annotations

import socket

import pytest

from aggregator.dev import PortInUseError, ensure_port_free


def test_port_in_time_wait_counts_as_free() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    # What the old check did: refused while TIME_WAIT lasts.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    ensure_port_free("127.0.0.1", port)


def test_port_with_a_listener_is_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            ensure_port_free("127.0.0.1", port)
