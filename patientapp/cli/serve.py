"""flask serve: the production server (waitress), three processes per core on one port.

One waitress process is held to about one core by Python's GIL, so on Linux (and any
system with fork) ``serve`` binds the port once and forks PATIENTAPP_WORKERS processes
that all accept on that socket. Everything that must hold across them lives in the
database or in files made before the fork: rate limits and lockouts (failures table),
alerts, staff sessions, the secret key (instance/secret_key), the compiled catalogs,
the daily retention run and each escalated alert's one e-mail (both claimed under BEGIN
IMMEDIATE). Patient idle time is in the signed session cookie. Writes queue across
processes on a file lock (storage.write).
Without fork (Windows) one process serves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from patientapp import config as config_module
from patientapp.cli.common import flask_command
from patientapp.domain import copies, delivery, escalation, retention
from patientapp.domain.accounts import issue_setup_token
from patientapp.web.context import base_url, close_db, close_thread_db, get_db, now

CAN_FORK = hasattr(os, "fork")
RESPAWN_AFTER_SECONDS = 5  # a worker that dies sooner is a crash loop: stop instead


PROCESSES_PER_CORE = 3
DEFAULT_THREADS = 4


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - systems without affinity


def default_workers() -> int:
    """Three server processes per core (bench/run.py; README "Performance"). Each
    process's event loop walks every open connection on each pass while holding the GIL:
    with 3,000 phones keeping their connections on one 2-core box that loop took 46 % of
    a process's GIL time, and every request's p95 was 311 ms on 2 processes, 42-213 ms
    on 4 (from run to run) and 40-44 ms on 6. Fewer threads per process (4, not 8)
    also contend less for the GIL: 50 patients got 378 steps/s instead of 298."""
    return PROCESSES_PER_CORE * cores()


@click.command("serve")
@click.option(
    "--host",
    envvar="PATIENTAPP_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    envvar="PATIENTAPP_PORT",
    default=8000,
    show_default=True,
    type=int,
    help="Port to listen on.",
)
@click.option(
    "--threads",
    envvar="PATIENTAPP_THREADS",
    default=DEFAULT_THREADS,
    show_default=True,
    type=int,
    help="Worker threads per process.",
)
@click.option(
    "--workers",
    envvar="PATIENTAPP_WORKERS",
    default=None,
    type=click.IntRange(min=1),
    help="Server processes sharing the port (default: three per core; 1 without fork).",
)
@with_appcontext
def serve_command(host: str, port: int, threads: int, workers: int | None) -> None:
    """Serve the app with waitress, the production server."""
    app = current_app._get_current_object()
    config_module.warn_if_unsafe(host, app.debug)
    problem = (
        config_module.base_url_problem(app.config, host)
        or copies.plan_problem(app.config)
        or copies.litestream_problem(
            app.config["DATABASE"],
            bool(app.config.get("DATABASE_KEY")),
            app.config["LITESTREAM_CONFIG"],
        )
    )
    if problem:
        raise click.ClickException(problem)
    try:
        copies.prepare(app.config)  # the copy folder, made once here, never by a copy
    except OSError as error:
        raise click.ClickException(
            f"PATIENTAPP_COPY_DIR cannot be made: {error.strerror} ({error.filename})"
        ) from None
    app.config["SERVE_HOST"], app.config["SERVE_PORT"] = host, port
    workers = workers or default_workers()
    if not CAN_FORK:  # pragma: no cover - Windows
        workers = 1
    files = config_module.raise_file_limit()  # each phone keeping its connection holds one
    options = {
        "threads": threads,
        "ident": "patientapp",
        **config_module.server_options(app.config),
    }
    click.echo(
        f"Serving on http://{host}:{port}  (database: {app.config['DATABASE']}, "
        f"{workers} process{'es' if workers > 1 else ''} x {threads} threads, "
        f"up to {options['connection_limit']:,} open connections each"
        + (f"; open-file limit {files:,})" if files else ")")
    )
    _announce_setup_link()
    stops = []

    def on_start() -> None:
        # In each serving process: the daily retention run, the escalation loop, the
        # loop that sends invitations and reminders, and the continuous copies.
        stops.append(retention.start(app, now))
        stops.append(escalation.start(app, now, base_url))
        stops.append(delivery.start(app, now, base_url))
        copying = copies.start(app, now)  # continuous copies, when PATIENTAPP_COPY_DIR is set
        if copying is not None:
            stops.append(copying)

    try:
        run(app, host, port, workers, options, on_start=on_start)
    finally:
        for stop in stops:  # waitress has returned: the loops end with it
            stop.set()


def run(app, host: str, port: int, workers: int, options: dict, on_start=None) -> None:
    """Serve a WSGI app with waitress in `workers` processes on one port (also the
    bench's hello-world, so both are measured under the same server)."""
    import waitress  # only this command needs the server: every other command starts faster

    if workers <= 1:
        if on_start:
            on_start()
        waitress.serve(app, host=host, port=port, **options)
        return
    close_db()  # a SQLite connection must never cross a fork
    close_thread_db()
    sock = _bind(host, port, options.get("backlog", 1024))
    Supervisor(sock, workers, lambda: _child(app, sock, options, on_start)).run()


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _child(app, sock, options: dict, on_start) -> None:  # pragma: no cover - runs forked
    import waitress

    parent = os.getppid()

    def watch_parent() -> None:
        # A worker never outlives its supervisor (killed hard, it cannot tell us).
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True, name="watch-parent").start()
    if on_start:
        on_start()
    waitress.serve(app, sockets=[sock], **options)


class Supervisor:
    """Forks the workers, replaces one that dies, stops them all on SIGTERM or SIGINT."""

    def __init__(self, sock, count: int, target):
        self.sock, self.count, self.target = sock, count, target
        self.children: dict[int, float] = {}  # pid -> started at
        self.stopping = False

    def spawn(self) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                self.target()
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def stop(self, *_args) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        failed = False
        try:
            for _ in range(self.count):
                self.spawn()
            while self.children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:  # pragma: no cover
                    break
                except InterruptedError:  # pragma: no cover
                    continue
                started = self.children.pop(pid, None)
                if started is None or self.stopping:
                    continue
                code = os.waitstatus_to_exitcode(status)
                if time.monotonic() - started < RESPAWN_AFTER_SECONDS:
                    click.echo(f"A server process stopped at start (exit {code}).", err=True)
                    failed = True
                    self.stop()  # and reap the others before leaving
                    continue
                click.echo(f"A server process stopped (exit {code}); starting another.", err=True)
                self.spawn()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
        if failed:
            raise SystemExit(1)


def _announce_setup_link() -> None:
    """With no staff account yet, print a one-time link to create the first admin."""
    token = issue_setup_token(get_db())
    if token:
        click.echo("No staff account exists yet. Create the first admin here (works once):")
        click.echo(f"  {base_url()}/staff/setup/{token}")
        click.echo(f"Or run: {flask_command()} --app app create-user --role admin EMAIL")
