"""A `requests` transport adapter that checks the address each new socket actually connected to against the
egress rule (connectors/egress.py) before a byte is sent: redirects, OAuth2 token endpoints and DNS that
answers differently each time all go through it."""

from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from connectors.egress import check_socket


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        check_socket(sock)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        check_socket(sock)  # before the TLS handshake: nothing reaches a refused peer
        return sock


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class EgressAdapter(HTTPAdapter):
    """HTTPAdapter whose connection pools refuse peers the egress rule refuses (EgressError, not retried)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # Through an HTTP(S)_PROXY (proxy_manager_for) the peer is the operator's proxy, which is then the
        # egress control; everything else connects through these pools.
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def guard(session: requests.Session) -> requests.Session:
    """Mount the checking adapter on every scheme of `session` (keeps the default pool sizes)."""
    adapter = EgressAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
