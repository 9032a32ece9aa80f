"""`flask serve` sets waitress's limits on purpose, so one client holding many idle
connections cannot stall every patient."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import waitress

from patientapp import config

ROOT = Path(__file__).resolve().parent.parent


def test_serve_passes_the_limits_and_no_proxy_by_default(runner, monkeypatch):
    served = {}
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: served.update(kw))
    assert runner.invoke(args=["serve"]).exit_code == 0
    assert served["channel_timeout"] == 30
    assert served["connection_limit"] == 500
    assert served["backlog"] == 2048
    assert served["cleanup_interval"] == 10
    assert served["clear_untrusted_proxy_headers"] is True
    assert "trusted_proxy" not in served


def test_serve_trusts_only_the_configured_proxy(app, runner, monkeypatch):
    served = {}
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: served.update(kw))
    app.config.update(TRUSTED_PROXY="127.0.0.1", BASE_URL="https://reflect.example")
    app.config.update(CHANNEL_TIMEOUT=5, CONNECTION_LIMIT=50)
    assert runner.invoke(args=["serve"]).exit_code == 0
    assert served["trusted_proxy"] == "127.0.0.1"
    assert served["trusted_proxy_count"] == 1
    assert served["trusted_proxy_headers"] == {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
    assert (served["channel_timeout"], served["connection_limit"]) == (5, 50)


def test_the_limits_are_read_from_the_environment():
    environ = {"PATIENTAPP_CHANNEL_TIMEOUT": "7", "PATIENTAPP_TRUSTED_PROXY": "10.0.0.1"}
    assert config.from_environment(environ) == {"CHANNEL_TIMEOUT": 7, "TRUSTED_PROXY": "10.0.0.1"}


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server stopped"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port}")


@contextlib.contextmanager
def serving(tmp_path: Path, env: dict):
    """`flask --app app serve` in a subprocess on a free loopback port."""
    port = free_port()
    environ = {
        **os.environ,
        "PATIENTAPP_INSTANCE": str(tmp_path / "instance"),
        "PATIENTAPP_HOST": "127.0.0.1",
        "PATIENTAPP_PORT": str(port),
        "PATIENTAPP_THREADS": "2",
        **env,
    }
    command = [sys.executable, "-m", "flask", "--app", "app", "serve"]
    with running(command, port, tmp_path / "serve.log", cwd=ROOT, env=environ):
        yield port


@contextlib.contextmanager
def running(command: list[str], port: int, log_path: Path, **popen):
    """A server process, its output in log_path, until it listens on port; then stopped."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            wait_for_port(port, process)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=10)


def get_status(port: int, path: str = "/start", timeout: float = 10) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        return int(conn.recv(64).split()[1])


def test_idle_connections_do_not_stall_a_patient(tmp_path):
    env = {"PATIENTAPP_CHANNEL_TIMEOUT": "2", "PATIENTAPP_CLEANUP_INTERVAL": "1"}
    with serving(tmp_path, env) as port, contextlib.ExitStack() as stack:
        idle = []
        for _ in range(110):
            conn = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            conn.sendall(b"GET /start HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            idle.append(conn)
        started = time.monotonic()
        assert get_status(port) == 200
        assert time.monotonic() - started < 5
        # The idle ones are closed by the server soon after the channel timeout.
        idle[0].settimeout(8)
        assert idle[0].recv(1) == b""
