"""`flask serve` sets waitress's limits on purpose, so one client holding many idle
connections cannot stall every patient."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import waitress

from patientapp import config

ROOT = Path(__file__).resolve().parents[2]


def test_serve_passes_the_limits_and_no_proxy_by_default(runner, monkeypatch):
    served = {}
    monkeypatch.setattr(waitress, "serve", lambda app_, **kw: served.update(kw))
    assert runner.invoke(args=["serve"]).exit_code == 0
    assert served["channel_timeout"] == 30
    # Sized from the open-file limit serve raised (tests/ops: the morning of 3,000 phones).
    assert served["connection_limit"] == config.connection_limit(0, config.file_limit())
    assert served["asyncore_use_poll"] is True  # select() fails past descriptor 1023
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


def test_the_connection_limit_is_sized_from_the_open_file_limit(caplog):
    reserved = config.FILES_RESERVED
    assert config.connection_limit(0, 1024) == 1024 - reserved  # automatic: the room left
    assert config.connection_limit(0, 1_000_000) == config.AUTO_CONNECTION_CAP
    assert config.connection_limit(50, 1024) == 50  # a clinic's own number, when it fits
    assert config.connection_limit(5000, 1024) == 1024 - reserved  # never past the room
    assert "PATIENTAPP_CONNECTION_LIMIT 5000 is more than" in caplog.text
    assert config.connection_limit(0, None) == 1000  # no limit known (no resource module)


def test_serve_raises_the_open_file_limit_towards_the_hard_one():
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        raised = config.raise_file_limit()
        assert raised == (65_536 if hard == resource.RLIM_INFINITY else min(65_536, hard))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_one_process_keeps_more_than_a_thousand_phones_connected(tmp_path):
    """A health system's morning: every phone keeps its connection. Past 1,023 open
    descriptors select() cannot watch them (waitress's default loop) and a fixed limit of
    500 left the rest waiting: both starved phones in bench/run.py's morning."""
    resource = pytest.importorskip("resource")
    phones = 1100
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2 * phones + 300:
        pytest.skip("the hard open-file limit is too low for this machine")
    config.raise_file_limit()
    env = {"PATIENTAPP_WORKERS": "1"}
    with serving(tmp_path, env) as port, contextlib.ExitStack() as stack:
        held = []
        for _ in range(phones):
            conn = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=20))
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            held.append(conn)
        answered = 0
        for conn in held:  # each answered on its own connection, which stays open
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = conn.recv(4096)
                assert chunk, "the server closed a phone's connection"
                reply += chunk
            answered += reply.startswith(b"HTTP/1.1 200")
        assert answered == phones
        assert get_status(port) == 200  # and one more still gets in


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


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _served_by(conn: socket.socket, workers: set[int]) -> int | None:
    """Which worker process holds the server end of this client connection (Linux)."""
    here = f"{0x0100007F:08X}:{conn.getsockname()[1]:04X}"
    inode = next(
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[2] == here
    )
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    return None


def _exchange(conn: socket.socket, request: bytes) -> bytes:
    conn.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_two_workers_share_the_port_the_secret_key_and_the_limits(tmp_path):
    """A code typed on a page served by one process is checked by the other (same secret
    key, so the session and CSRF token hold), and wrong codes count across both."""
    limit = 30  # CODE_FAILURES_PER_ADDRESS
    with serving(tmp_path, {"PATIENTAPP_WORKERS": "2"}) as port:
        server = _server_pid(port)
        deadline = time.monotonic() + 20
        while len(_children(server)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _children(server)
        assert len(workers) == 2
        # A page from each process (a worker still starting on a loaded machine may take
        # a while to accept: ask until both have answered).
        pages: dict[int, tuple[bytes, bytes]] = {}
        deadline = time.monotonic() + 30
        while len(pages) < 2 and time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as page:
                reply = _exchange(page, b"GET /start HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                worker = _served_by(page, workers)
            if worker is not None:  # None: a connection the server already let go of
                cookie = re.search(rb"Set-Cookie: ([^;]+)", reply).group(1)
                token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', reply).group(1)
                pages.setdefault(worker, (cookie, token))
        assert set(pages) == workers  # both processes serve
        statuses, crossed = [], False
        for attempt in range(limit + 1):
            issued_by = sorted(pages)[attempt % 2]  # tokens of both processes, in turn
            cookie, token = pages[issued_by]
            body = b"csrf_token=" + token + b"&code=7KQ2M-9XD4P"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as post:
                reply = _exchange(
                    post,
                    b"POST /start HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + cookie + b"\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
                )
                checked_by = _served_by(post, workers)
            crossed |= checked_by is not None and checked_by != issued_by
            statuses.append(int(reply.split()[1]))
    assert crossed  # a session and token made by one process were checked by the other
    assert statuses[:limit] == [422] * limit  # each a checked wrong code: CSRF held
    assert statuses[limit] == 429  # the per-address limit counted across both


def _server_pid(port: int) -> int:
    """The `flask serve` process listening on port (the supervisor)."""
    here = f"{0x0100007F:08X}:{port:04X}"
    inode = next(
        line.split()[9]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[1] == here and line.split()[3] == "0A"
    )
    holders = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) == f"socket:[{inode}]" for fd in (proc / "fd").iterdir()):
                    holders.append(int(proc.name))
    return min(holders, key=lambda pid: int(Path(f"/proc/{pid}/stat").read_text().split()[21]))


def test_workers_default_to_three_per_core_and_a_crash_loop_stops_the_server(capsys):
    from patientapp.cli import serve

    assert serve.default_workers() == 3 * len(os.sched_getaffinity(0))
    sock = serve._bind("127.0.0.1", 0, 16)
    supervisor = serve.Supervisor(sock, 2, target=lambda: None)  # each worker ends at once
    with pytest.raises(SystemExit) as stopped:
        supervisor.run()
    assert stopped.value.code == 1
    assert supervisor.children == {}
    assert sock.fileno() == -1  # the port is released
    assert "stopped at start" in capsys.readouterr().err
