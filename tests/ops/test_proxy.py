"""Behind a reverse proxy: the client's address comes from the trusted proxy and from no
one else, so strangers cannot lock every staff member out, nor hide behind a forged
header. These tests drive waitress itself on a loopback port."""

from __future__ import annotations

import contextlib
import http.client
import threading
import urllib.parse

import pytest
import waitress.server

from patientapp import config as config_module
from patientapp.web.context import close_thread_db
from tests.conftest import create_user

PROXY = "127.0.0.2"  # a loopback address of its own, so the test client (127.0.0.1) is not it


def _closing_each_thread(app):
    """The app as waitress calls it, with each worker's database closed after a request."""

    def wsgi(environ, start_response):
        try:
            return list(app(environ, start_response))
        finally:
            close_thread_db()

    return wsgi


@contextlib.contextmanager
def _served(app):
    server = waitress.server.create_server(
        _closing_each_thread(app),
        host="127.0.0.1",
        port=0,
        threads=2,
        **config_module.server_options(app.config),
    )
    stop = threading.Event()

    def run():
        while not stop.is_set():
            server.asyncore.loop(timeout=0.05, map=server._map, count=1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def _sign_in(port, password, forwarded_for, source="127.0.0.1"):
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0)
    )
    body = urllib.parse.urlencode({"email": "dr@example.org", "password": password})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": forwarded_for,
    }
    try:
        connection.request("POST", "/staff/login", body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def proxied(app):
    app.config.update(
        WTF_CSRF_ENABLED=False,
        TRUSTED_PROXY=PROXY,
        LOGIN_FAILURES_PER_CLIENT=3,
        LOGIN_FAILURES_PER_ACCOUNT=100,
    )
    create_user(app, "dr@example.org", "psychiatrist")
    return app


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(proxied):
    with _served(proxied) as port:
        for n in range(3):
            assert _sign_in(port, "wrong password", f"203.0.113.{n}") == 401
        # A fresh forged address does not unlock the peer it really comes from.
        assert _sign_in(port, "correct horse battery", "203.0.113.99") == 401
        # Another client behind the trusted proxy is not locked with it.
        assert _sign_in(port, "correct horse battery", "198.51.100.1", source=PROXY) == 302


def test_the_trusted_proxy_forwards_each_clients_own_address(proxied):
    with _served(proxied) as port:
        for _ in range(3):
            assert _sign_in(port, "wrong password", "198.51.100.7", source=PROXY) == 401
        assert _sign_in(port, "correct horse battery", "198.51.100.7", source=PROXY) == 401
        # The proxy itself is not locked: every other client behind it still signs in.
        assert _sign_in(port, "correct horse battery", "198.51.100.8", source=PROXY) == 302


def test_without_a_trusted_proxy_forwarded_headers_count_for_nothing(proxied):
    proxied.config["TRUSTED_PROXY"] = ""
    with _served(proxied) as port:
        for n in range(3):
            assert _sign_in(port, "wrong password", f"203.0.113.{n}", source=PROXY) == 401
        assert _sign_in(port, "correct horse battery", "198.51.100.1", source=PROXY) == 401
        assert _sign_in(port, "correct horse battery", "198.51.100.1") == 302
