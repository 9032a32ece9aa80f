"""How fast invitations and reminders leave, run by hand: python bench/delivery.py

The server's own delivery loop (patientapp/domain/delivery.py, the thread `serve` starts
in every process) runs against a real SQLite file in a temporary folder, with the real
clock, and sends to a real SMTP server on loopback (aiosmtpd) and to a local HTTP server
standing in for a text gateway's API (Twilio-style form body). Measured:

1. Throughput: N invitations queued at once by e-mail, then N by text; from the wake to
   the last one received: messages per minute through the loop.
2. Reminder punctuality: K reminders, each scheduled at its own second 2 to 2 + K*2 s
   ahead (appointment = that second + the Settings hour); for each, the time from its
   scheduled moment to its arrival at the SMTP server: p50, p95, max.

  --messages N    invitations per channel (default 200)
  --reminders K   reminders (default 20)
  --smoke         10 messages and 3 reminders: the numbers mean nothing

Prints ONE table on stdout; progress goes to stderr. Nothing is written inside the
repository. Not a test module.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed

from aiosmtpd.controller import Controller  # noqa: E402

from patientapp import create_app  # noqa: E402
from patientapp.db import storage  # noqa: E402
from patientapp.domain import delivery, visits  # noqa: E402
from patientapp.web.context import base_url, get_db, now  # noqa: E402

BASE = "https://reflect.clinic.example"


class Inbox:
    def __init__(self):
        self.arrivals: list[tuple[float, str]] = []  # (wall clock, subject)

    async def handle_DATA(self, server, session, envelope):
        subject = ""
        for line in envelope.content.decode("utf-8", "replace").splitlines():
            if line.startswith("Subject:"):
                subject = line[8:].strip()
                break
        self.arrivals.append((time.time(), subject))
        return "250 2.0.0 Ok: queued"


def gateway() -> tuple[ThreadingHTTPServer, list[float]]:
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.time())
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, arrivals


def make_app(folder: Path):
    app = create_app(
        {
            "DATABASE": str(folder / "bench.db"),
            "SECRET_KEY": "bench",
            "BASE_URL": BASE,
            "HOLD_DATABASE_IN_USE": False,
        }
    )
    return app


def queue(app, count: int, *, email: str = "", phone: str = "", appointment=None) -> None:
    with app.app_context():
        db, moment = get_db(), now()
        settings = storage.get_settings(db)
        for n in range(count):
            invitation = visits.create(
                db,
                patient_ref=f"B-{n}",
                appointment_at=appointment or moment + timedelta(days=2),
                psychiatrist_id=None,
                suggested_language="",
                extra_days=0,
                created_by=None,
                now=moment,
            )
            with storage.write(db):
                visit = storage.get_visit(db, invitation.visit_id)
                delivery.plan(db, visit, email=email, phone=phone, settings=settings, now=moment)


def wait_for(arrivals: list, count: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while len(arrivals) < count and time.time() < deadline:
        time.sleep(0.01)
    if len(arrivals) < count:
        raise SystemExit(f"only {len(arrivals)} of {count} arrived in {timeout} s")


def throughput(app, arrivals: list, count: int, **contact) -> float:
    """Messages per minute: from the wake to the last arrival."""
    before = len(arrivals)
    queue(app, count, **contact)
    started = time.time()
    delivery.wake()
    wait_for(arrivals, before + count, timeout=600)
    last = max(a if isinstance(a, float) else a[0] for a in arrivals[before:])
    return count / (last - started) * 60


def punctuality(app, inbox: Inbox, count: int) -> list[float]:
    """Seconds from each reminder's scheduled moment to its arrival."""
    with app.app_context():
        start = now() + timedelta(seconds=3 + 0.1 * count)  # after queueing them all
    scheduled = [start + timedelta(seconds=2 * n) for n in range(count)]
    before = len(inbox.arrivals)
    for moment in scheduled:  # reminder_hours_before is 1: the appointment an hour later
        queue(app, 1, email="patient@mail.example", appointment=moment + timedelta(hours=1))
    delivery.wake()  # the invitations leave now; the reminders at their second
    wait_for(inbox.arrivals, before + 2 * count, timeout=count * 2 + 60)
    time.sleep(0.5)
    reminders = sorted(at for at, subject in inbox.arrivals if subject.startswith("Reminder"))
    due = [moment.timestamp() for moment in scheduled]
    return [arrived - planned for arrived, planned in zip(reminders[-count:], due, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--reminders", type=int, default=20)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.reminders = 10, 3
    folder = Path(tempfile.mkdtemp(prefix="patientapp-bench-delivery-"))
    inbox = Inbox()
    with socket.socket() as probe:  # a free loopback port for the relay
        probe.bind(("127.0.0.1", 0))
        relay_port = probe.getsockname()[1]
    relay = Controller(inbox, hostname="127.0.0.1", port=relay_port)
    relay.start()
    server, texts = gateway()
    try:
        app = make_app(folder)
        with app.app_context():
            storage.save_settings(
                get_db(),
                {
                    "clinic_name": "Bench Clinic",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": relay_port,
                    "smtp_security": "none",
                    "mail_from": "clinic@clinic.example",
                    "quiet_from": "00:00",  # no quiet hours: the bench runs at any hour
                    "quiet_until": "00:00",
                    "reminder_hours_before": 1,
                    "sms_mode": "http",
                    "sms_http_url": f"http://127.0.0.1:{server.server_address[1]}/Messages",
                    "sms_http_body": "To={to}&From={from}&Body={body}",
                    "sms_from": "+15550001111",
                },
            )
        stop = delivery.start(app, now, base_url)
        print("e-mail throughput ...", file=sys.stderr)
        mail_rate = throughput(app, inbox.arrivals, args.messages, email="patient@mail.example")
        print("text throughput ...", file=sys.stderr)
        text_rate = throughput(app, texts, args.messages, phone="+15552017788")
        print("reminder punctuality ...", file=sys.stderr)
        late = punctuality(app, inbox, args.reminders)
        stop.set()
    finally:
        relay.stop()
        server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    quantiles = statistics.quantiles(late, n=20) if len(late) > 1 else late * 19
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'e-mail invitations through the loop':<44}{mail_rate:>8.0f}/min")
    print(f"{'text invitations through the loop (HTTP)':<44}{text_rate:>8.0f}/min")
    print(f"{'reminder: scheduled second to arrival p50':<44}{statistics.median(late):>10.2f} s")
    print(f"{'reminder: scheduled second to arrival p95':<44}{quantiles[18]:>10.2f} s")
    print(f"{'reminder: scheduled second to arrival max':<44}{max(late):>10.2f} s")
    print(f"{'reminders measured':<44}{len(late):>12}")


if __name__ == "__main__":
    main()
