"""Benchmark of the patient side, run by hand:  python bench/run.py  (or `make bench`).

Prints ONE table:
  * page weight: each patient page's HTML + its CSS + its JS, raw and gzipped, against the
    budgets (30 KB raw, 10 KB gzipped, JS 5 KB if any), and the HTML's size on the wire
    as the app itself sends it to a phone that accepts gzip (budget 14 KB: one round trip);
  * load: p50 / p95 latency and throughput of a patient step (GET /step/N, then POST Next
    with the CSRF token) on the production server (`flask --app app serve`: waitress in
    PATIENTAPP_WORKERS processes on one port) with 50 simulated patients, beside a Flask
    hello-world served by the same code (patientapp.cli.serve.run, same workers,
    threads and limits) and the app's versioned stylesheet, and the ratio (targets: p95
    under 100 ms, at least 40 % of hello-world);
  * cpu: server CPU per unit (utime + stime of the supervisor and its workers, from /proc,
    divided by the units served): per patient step, per hello-world GET+POST, per static
    GET; and the load generator's own;
  * machine: during each phase, the machine's other load (busy CPU from /proc/stat minus
    the server's, the load generator's and the bench's) and the load average, since the
    machine may be shared;
  * rush: 300 phones arriving over 5 s, each on one keep-alive connection kept open as a
    browser does, reading each screen 3-10 s (seeded) and walking a few steps: how many got
    their first page within 30 s (starved otherwise), errors, p95 of every request
    (target under 150 ms);
  * burst: 200 patients, each already answered up to review, all pressing "Send" at once:
    acknowledged (302 to /thanks) vs stored (status 'submitted' in SQLite), errors (must
    be 0) and PRAGMA integrity_check;
  * staff: render time of the fullest one-page summary (target under 50 ms) and of its
    plain-text export.

The load generator runs in processes of its own (--load-processes, threads holding
keep-alive connections in each), so the bench process's GIL does not cap what it measures;
it still shares the machine's cores with the server, which is why CPU per unit is printed.

Everything runs against servers started here on 127.0.0.1 with a temporary instance folder
(never the repo's instance/); nothing is written inside the repository. Every loop is
bounded by a count and by time. The exit code is 1 when a row says FAIL (an error, a lost
answer, a damaged database); a target missed (SLOW, LOW, OVER) is reported, not failed.

  python bench/run.py --smoke   runs every measurement with tiny counts (3 patients, 0.3 s
                                phases, a rush of 6, a burst of 5) in seconds:
                                tests/ops/test_bench.py runs it, so the bench cannot rot.
  --workers N, --threads N      the servers' processes and threads (default: the cores, 8)
  --only load --only rush       only those measurements (page, load, rush, burst, staff)

Adding a measurement is one function: decorate it with @measurement("name"); it receives
the Bench (servers, invitations, the database) and returns table rows.

Not a test module: pytest never collects it (no test_ prefix, outside tests/).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import math
import multiprocessing
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed

from patientapp import config, create_app  # noqa: E402
from patientapp.cli import examples  # noqa: E402
from patientapp.cli.serve import CAN_FORK, DEFAULT_THREADS, cores, default_workers  # noqa: E402
from patientapp.db import storage  # noqa: E402
from patientapp.domain import visits  # noqa: E402
from patientapp.domain.passwords import hash_password  # noqa: E402
from patientapp.questionnaire import model as questionnaire  # noqa: E402
from patientapp.web.context import get_db  # noqa: E402

HOST = "127.0.0.1"  # the bench only ever talks to this machine

KB = 1024
BUDGET_RAW = 30 * KB
BUDGET_GZIP = 10 * KB
BUDGET_JS = 5 * KB
BUDGET_WIRE = 14 * KB  # the HTML as sent: about what fits in TCP's first round trip
TARGET_P95_MS = 100.0
TARGET_RATIO = 0.40

SECTIONS = 8
FORM_ANSWERS = examples.LOWER_THE_DOSE_FORM  # one patient, step by step, as the forms post
FIELD_RE = re.compile(r"^([A-Za-z0-9]+?)(?:_text|-\d+-.*)?$")  # "M1-0-name" -> "M1"


def _screens() -> list[tuple[str, dict]]:
    """Each phone screen as a phone posts it: its address and its example answers (a
    screen may end one section and begin the next, patient_forms.pages)."""
    from patientapp.patient import forms as patient_forms

    fields = {key: value for form in FORM_ANSWERS.values() for key, value in form.items()}
    screens = []
    for page in patient_forms.pages(questionnaire.default().sections):
        if page.items and page.items[0].instrument:
            continue  # a standard measure: these visits include none (ask nothing more)
        ids = {item.id for item in page.items}
        path = f"/step/{page.number}" + (f"?screen={page.screen}" if page.screen > 1 else "")
        form = {k: v for k, v in fields.items() if FIELD_RE.match(k).group(1) in ids}
        screens.append((path, {**form, "screen": str(page.screen)}))
    return screens


SCREENS = _screens()


@dataclass(frozen=True)
class Scale:
    """How much each measurement does. --smoke runs every one at SMOKE, in seconds, to show
    the bench still works: its numbers mean nothing."""

    patients: int = 50  # concurrent simulated patients (and hello/static clients)
    load_seconds: float = 10.0  # each load phase runs this long (every server alike)
    units_per_client: int = 1000  # ... or stops earlier after this many units per client
    alone_steps: int = 200  # one patient alone, for the unloaded latency
    rush_phones: int = 300  # the rush: phones, each on one keep-alive connection
    rush_arrival_seconds: float = 5.0  # they arrive spread over this long
    rush_pause: tuple[float, float] = (3.0, 10.0)  # reading a screen, seeded at random
    rush_steps: int = 3  # steps each walks after the welcome screen
    rush_seconds: float = 50.0  # no new request after this (the phase's bound)
    morning_phones: int = 3000  # a health system's morning: the rush, ten times over
    morning_arrival_seconds: float = 60.0
    morning_seconds: float = 110.0
    burst: int = 200  # patients sending at once
    summary_renders: int = 200  # timed GETs of the summary (and of its .txt export)
    summary_warmup: int = 5  # untimed first requests: templates, catalogs, caches


FULL = Scale()
SMOKE = Scale(
    patients=3,
    load_seconds=0.3,
    alone_steps=5,
    rush_phones=6,
    rush_arrival_seconds=0.3,
    rush_pause=(0.05, 0.15),
    rush_steps=2,
    rush_seconds=5.0,
    morning_phones=8,
    morning_arrival_seconds=0.5,
    morning_seconds=5.0,
    burst=5,
    summary_renders=5,
    summary_warmup=1,
)

TOKEN_RE = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
ASSET_RE = re.compile(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"|<script[^>]+src="([^"]+)"')
INLINE_SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the table -------------------------------------------------------------------------------


@dataclass
class Row:
    section: str
    what: str
    value: str
    gzip: str = ""
    js: str = ""
    target: str = ""
    gzip_budget: str = ""
    js_budget: str = ""
    result: str = ""
    wire: str = ""
    wire_budget: str = ""


COLUMNS = (
    "section",
    "measurement",
    "value",
    "gzip",
    "JS",
    "wire",
    "budget / target",
    "gzip budget",
    "JS budget",
    "wire budget",
    "result",
)


def render(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (
            r.section,
            r.what,
            r.value,
            r.gzip,
            r.js,
            r.wire,
            r.target,
            r.gzip_budget,
            r.js_budget,
            r.wire_budget,
            r.result,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    right = {2, 3, 4, 5}  # measured values line up on the right

    def line(row):
        return "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(cells[0]), rule]
    previous = None
    for row, data in zip(rows, cells[1:], strict=False):
        if previous is not None and row.section != previous:
            out.append(rule)
        out.append(line(data))
        previous = row.section
    return "\n".join(out)


def size(n: int) -> str:
    return f"{n} B" if n < KB else f"{n / KB:.1f} KB"


def verdict(ok: bool, good: str = "OK", bad: str = "OVER") -> str:
    return good if ok else bad


# --- HTTP: a patient's phone, as a plain client with its own cookies ---------------------


class Phone:
    """One simulated patient: one keep-alive connection and its own cookie jar. Like a
    browser it accepts gzip (and unpacks it), and when the server has closed the idle
    connection it reconnects once and sends the request again."""

    def __init__(self, port: int, timeout: float = 60.0):
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0
        self.last_wire = 0  # the last response's body as sent (compressed or not)
        self.last_encoding = ""

    def connect(self) -> None:
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, form: dict | None = None):
        fresh = self.conn is None
        if fresh:
            self.connect()
        headers = {"Accept-Encoding": "gzip"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if fresh:
                raise
            self.reconnects += 1  # the server closed it while idle: as a browser, retry
            return self.request(method, path, form)
        except Exception:
            self.close()
            raise
        self.last_wire = len(data)
        self.last_encoding = (response.getheader("Content-Encoding") or "").lower()
        if self.last_encoding == "gzip":
            data = gzip.decompress(data)
        for raw in response.headers.get_all("Set-Cookie") or ():
            name, _, rest = raw.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in raw.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, response.getheader("Location", ""), data

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, form: dict):
        return self.request("POST", path, form)

    def token(self, path: str) -> str:
        status, _, body = self.get(path)
        match = TOKEN_RE.search(body.decode())
        if status != 200 or not match:
            raise RuntimeError(f"GET {path}: {status}, no CSRF token")
        return match.group(1)

    def post_form(self, path: str, form: dict):
        """GET the page for its CSRF token, then POST the form: one patient action."""
        return self.post(path, {"csrf_token": self.token(path), **form})


def location_path(location: str) -> str:
    return urlsplit(location).path


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))]


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server the bench starts: its command, where it listens, its log."""

    command: list[str]
    port: int
    log_path: Path
    ready_path: str
    process: subprocess.Popen | None = None


@contextmanager
def running(command: list[str], env: dict, port: int, log_path: Path, ready_path: str):
    """One server (bench/fhir_api.py uses it too); yields its process."""
    with running_all([Server(command, port, log_path, ready_path)], env) as (server,):
        yield server.process


@contextmanager
def running_all(servers: list[Server], env: dict):
    """Starts every server at once, waits until each answers, stops them all at the end."""
    try:
        for server in servers:
            with server.log_path.open("wb") as out:
                server.process = subprocess.Popen(
                    server.command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + 60
        for server in servers:
            while True:
                if server.process.poll() is not None:
                    raise RuntimeError(f"server exited: {server.log_path.read_text()[-2000:]}")
                url = f"http://{HOST}:{server.port}{server.ready_path}"
                try:
                    with urllib.request.urlopen(url, timeout=2):
                        break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        log_tail = server.log_path.read_text()[-2000:]
                        raise RuntimeError(f"server not ready: {log_tail}") from exc
                    time.sleep(0.05)
        yield servers
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.process.terminate()
        for server in servers:
            if server.process is None:
                continue
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


@dataclass
class Bench:
    """What every measurement gets: the app's server, its database, invitations."""

    workdir: Path
    threads: int
    workers: int = 1
    load_processes: int = 2
    scale: Scale = FULL
    app_port: int = 0
    app_pid: int = 0
    hello_port: int = 0  # the hello-world, served by serve.run as the app is
    hello_pid: int = 0
    app_log: Path | None = None
    app: object = None
    database: Path | None = None
    env: dict = field(default_factory=dict)
    _refs: int = 0

    def invite(self, prefix: str) -> tuple[str, str, int]:
        """A new invitation: (patient_ref, token, visit_id), via the Python API."""
        self._refs += 1
        ref = f"{prefix}-{self._refs}"
        with self.app.app_context():
            made = visits.create(
                get_db(),
                patient_ref=ref,
                appointment_at=datetime.now() + timedelta(hours=1),
                psychiatrist_id=None,
                suggested_language="",
                extra_days=0,
                created_by=None,
                now=datetime.now(),
            )
        return ref, made.token, made.visit_id

    def answer_up_to_review(self, visit_id: int) -> None:
        """Store a full set of answers the way the steps do, leaving the visit on review."""
        with self.app.app_context():
            db = get_db()
            now = datetime.now()
            q = questionnaire.default()
            visits.start(db, visit_id, language="en", version=q.version, now=now)
            for number, answers in examples.by_step(examples.LOWER_THE_DOSE, q).items():
                visits.save_step(db, visit_id, answers, step=number, next_step=number + 1, now=now)

    def server_setting(self, key: str):
        """A setting as the servers read it (their environment, else the default)."""
        return {**config.DEFAULTS, **config.from_environment(self.env)}[key]

    def connection_limit(self) -> int:
        """Open connections each server process accepts, as serve sizes it (the servers
        inherit this process's raised file limit)."""
        return config.connection_limit(self.server_setting("CONNECTION_LIMIT"), config.file_limit())

    @property
    def server(self) -> str:
        return f"{self.workers} workers x {self.threads} threads"

    def server_errors(self) -> int:
        text = self.app_log.read_text(errors="replace") if self.app_log else ""
        return text.count("Traceback") + text.count("unhandled ")


Measurement = Callable[[Bench], list[Row]]
MEASUREMENTS: dict[str, Measurement] = {}


def measurement(name: str) -> Callable[[Measurement], Measurement]:
    """Register a measurement; the table shows them in the order they are defined."""

    def register(function: Measurement) -> Measurement:
        MEASUREMENTS[name] = function
        return function

    return register


# --- 1. page weight --------------------------------------------------------------------------


def _weigh(phone: Phone, name: str, html: bytes, page_path: str, cache: dict, wires: dict) -> Row:
    wire, encoding = phone.last_wire, phone.last_encoding  # before fetching the assets
    text = html.decode()
    css = js = b""
    for stylesheet, script in ASSET_RE.findall(text):
        url = urljoin(f"http://{HOST}{page_path}", stylesheet or script)
        if url not in cache:
            status, _, body = phone.get(urlsplit(url)._replace(scheme="", netloc="").geturl())
            cache[url] = body if status == 200 else b""
            wires[url] = (phone.last_wire, phone.last_encoding)
        if stylesheet:
            css += cache[url]
        else:
            js += cache[url]
    js_inline = "".join(INLINE_SCRIPT_RE.findall(text)).encode()
    js_total = len(js) + len(js_inline)
    raw = len(html) + len(css) + len(js)
    # Each file is compressed on its own, as a reverse proxy serves it (level 6).
    zipped = sum(len(gzip.compress(part, 6)) for part in (html, css, js) if part)
    ok = (
        raw <= BUDGET_RAW
        and zipped <= BUDGET_GZIP
        and js_total <= BUDGET_JS
        and wire <= BUDGET_WIRE
    )
    return Row(
        "page weight",
        name,
        size(raw),
        size(zipped),
        size(js_total) if js_total else "none",
        target=f"<= {BUDGET_RAW // KB} KB",
        gzip_budget=f"<= {BUDGET_GZIP // KB} KB",
        js_budget=f"<= {BUDGET_JS // KB} KB",
        wire=f"{size(wire)} {encoding or 'raw'}",
        wire_budget=f"<= {BUDGET_WIRE // KB} KB",
        result=verdict(ok),
    )


@measurement("page")
def page_weights(bench: Bench) -> list[Row]:
    log("page weight: visiting every patient page")
    rows: list[Row] = []
    cache: dict[str, bytes] = {}
    wires: dict[str, tuple[int, str]] = {}  # each asset as sent: (bytes, Content-Encoding)

    def weigh(phone, name, path, response):
        status, _, body = response
        if status >= 500:
            raise RuntimeError(f"{name}: HTTP {status}")
        rows.append(_weigh(phone, name, body, path, cache, wires))

    visitor = Phone(bench.app_port)
    weigh(visitor, "start (code entry)", "/start", visitor.get("/start"))
    weigh(visitor, "start, error shown", "/start", visitor.post_form("/start", {"code": "AAAA"}))
    weigh(visitor, "link invalid", "/v/x", visitor.get("/v/not-a-real-invitation-token"))
    weigh(visitor, "ended", "/ended", visitor.get("/ended"))

    _, token, _ = bench.invite("WEIGH")
    patient = Phone(bench.app_port)
    status, location, _ = patient.get(f"/v/{token}")
    weigh(patient, "welcome", "/welcome", patient.get(location_path(location)))
    patient.post_form("/welcome", {})
    for number, (path, form) in enumerate(SCREENS, start=1):
        weigh(patient, f"step {number}", path, patient.get(path))
        if number == 1:
            weigh(
                patient,
                "step 1, error shown",
                path,
                patient.post_form(
                    path, {"T1": ["calm", "hopeful", "worried", "sad"], "action": "next"}
                ),
            )
        status, location, _ = patient.post_form(path, {**form, "action": "next"})
        if status != 302:
            raise RuntimeError(f"POST {path}: HTTP {status}")
    weigh(patient, "safety", "/safety", patient.get("/safety"))
    weigh(patient, "review", "/review", patient.get("/review"))
    status, location, _ = patient.post_form("/review", {"action": "submit", "in_person": "T2"})
    weigh(patient, "thanks", "/thanks", patient.get(location_path(location)))
    weigh(patient, "already sent", "/v/x", patient.get(f"/v/{token}"))
    visitor.close()
    patient.close()
    for url, body in cache.items():  # fetched once a day at most: ?v= and long caching
        wire, encoding = wires[url]
        rows.append(
            Row(
                "page weight",
                f"asset {urlsplit(url).path} (once, then cached)",
                size(len(body)),
                size(len(gzip.compress(body, 6))),
                wire=f"{size(wire)} {encoding or 'raw'}",
            )
        )
    return rows


# --- CPU accounting: the server's processes, the load generator's, the machine's -------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 onwards."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """root and every process descending from it (the supervisor and its forked workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of root and its descendants, all threads included."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def open_connections(port: int) -> int:
    """TCP connections established to this port on this machine (accepted or still in
    the backlog), from /proc/net/tcp; 0 where there is no /proc."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    wanted = f":{port:04X}"
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "01":
            count += 1
    return count


class ConnectionWatch:
    """The most connections open at once to a port while a phase runs (sampled)."""

    def __init__(self, port: int, every: float = 0.25):
        self.port, self.every, self.most = port, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.most = max(self.most, open_connections(self.port))

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Sample:
    server: float
    machine: float
    bench: float  # this process (it mostly waits while the load processes work)

    @classmethod
    def take(cls, server_pid: int) -> Sample:
        return cls(tree_cpu_seconds(server_pid), machine_busy_seconds(), time.process_time())


# --- 2. load: the load generator, in processes of its own --------------------------------------


@dataclass(frozen=True)
class Plan:
    """One load phase as each load process gets it (picklable)."""

    kind: str  # "hello", "static", "patient" or "rush"
    port: int
    path: str = "/"  # hello and static: the URL fetched
    units: int = 0  # each client stops after this many units ...
    seconds: float = 0.0  # ... or this long after the start (the rush: its whole bound)
    scale: Scale = FULL
    seed: int = 2026


@dataclass
class Phase:
    """What a load phase measured, summed over the load processes."""

    label: str
    unit: str  # what one unit is: "steps", "pairs", "GETs", "requests"
    latencies: list[float]
    errors: int
    seconds: float
    server_cpu: float  # seconds of CPU, the server's processes
    client_cpu: float  # seconds of CPU, the load processes
    machine_busy: float  # seconds of CPU, the whole machine
    bench_cpu: float
    loadavg: tuple[float, float, float]
    units: int = 0
    extra: list[dict] = field(default_factory=list)  # the rush's per-phone records
    most_connections: int = 0  # open to the server at once (sampled)

    @property
    def throughput(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    def ms_per_unit(self, cpu: float) -> float:
        return 1000 * cpu / self.units if self.units else float("nan")

    @property
    def other_cores(self) -> float:
        """The machine's busy CPU that is neither the server's nor the bench's own."""
        other = self.machine_busy - self.server_cpu - self.client_cpu - self.bench_cpu
        return max(0.0, other) / self.seconds if self.seconds else float("nan")

    def cores(self, cpu: float) -> float:
        return cpu / self.seconds if self.seconds else float("nan")

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct) * 1000


def _unit_for(plan: Plan, spec) -> Callable[[], float]:
    """A client's setup; returns the callable doing one timed unit (seconds)."""
    phone = Phone(plan.port, timeout=30)
    if plan.kind == "hello":
        form = {"csrf_token": "x" * 40, "action": "next", **FORM_ANSWERS[2]}

        def hello() -> float:
            began = time.perf_counter()
            status_get, _, _ = phone.get(plan.path)
            status_post, _, _ = phone.post(plan.path, form)
            if status_get != 200 or status_post != 200:
                raise RuntimeError("hello world failed")
            return time.perf_counter() - began

        return hello
    if plan.kind == "static":

        def static() -> float:
            began = time.perf_counter()
            status, _, body = phone.get(plan.path)
            if status != 200 or not body:
                raise RuntimeError(f"GET {plan.path}: HTTP {status}")
            return time.perf_counter() - began

        return static
    status, location, _ = phone.get(f"/v/{spec}")
    if status != 302:
        raise RuntimeError(f"opening the invitation: HTTP {status}")
    phone.post_form(location_path(location), {})  # Start
    step = [1]

    def patient_step() -> float:
        number = step[0]  # the screen, from 1: each a GET and a POST, as a phone does
        path, form = SCREENS[number - 1]
        began = time.perf_counter()
        token = phone.token(path)
        status, location, _ = phone.post(path, {"csrf_token": token, "action": "next", **form})
        took = time.perf_counter() - began
        expected = "/review" if number == len(SCREENS) else SCREENS[number][0]
        parts = urlsplit(location)
        if status != 302 or parts.path + (f"?{parts.query}" if parts.query else "") != expected:
            raise RuntimeError(f"POST {path}: HTTP {status} to {location}")
        step[0] = number % len(SCREENS) + 1
        return took

    return patient_step


def _client(plan: Plan, spec, ready: threading.Barrier, go: threading.Event, out: dict, lock):
    try:
        unit = _unit_for(plan, spec)
    except Exception:
        unit = None
    ready.wait()
    go.wait()
    if unit is None:
        with lock:
            out["errors"] += 1
        return
    stop_at = out["start"] + plan.seconds
    mine, failed = [], 0
    for _ in range(plan.units):
        if time.monotonic() >= stop_at:
            break
        try:
            mine.append(unit())
        except Exception:
            failed += 1
    with lock:
        out["latencies"].extend(mine)
        out["units"] += len(mine)
        out["errors"] += failed


FIRST_PAGE_SECONDS = 30.0  # a phone without its first page by then counts as starved


def _rush_phone(plan: Plan, token: str, index: int, out: dict, lock, keep: list) -> None:
    """One phone of the rush: arrives, opens its invitation on one keep-alive connection,
    reads each screen for a seeded 3-10 s, walks a few steps, and keeps the connection
    open to the end of the phase as a browser does."""
    scale = plan.scale
    rng = random.Random(plan.seed * 100_003 + index)  # noqa: S311 - seeded on purpose
    start = out["start"]
    arrive = start + rng.uniform(0, scale.rush_arrival_seconds)
    deadline = start + scale.rush_seconds
    first_limit = min(FIRST_PAGE_SECONDS, scale.rush_seconds)
    record = {"first": None, "errors": 0, "steps": 0, "finished": False, "requests": 0}
    latencies: list[float] = []
    phone = Phone(plan.port, timeout=first_limit)

    def timed(method: str, path: str, form: dict | None = None):
        began = time.monotonic()
        result = phone.request(method, path, form)
        latencies.append(time.monotonic() - began)
        return result

    time.sleep(max(0.0, arrive - time.monotonic()))
    try:
        try:
            status, location, _ = timed("GET", f"/v/{token}")
            if status != 302:
                raise RuntimeError(f"GET /v/: HTTP {status}")
            path = location_path(location)
            status, _, page = timed("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
        except TimeoutError:
            return  # starved: no first page within the limit
        record["first"] = time.monotonic() - arrive
        if phone.conn is not None and phone.conn.sock is not None:
            phone.conn.sock.settimeout(FIRST_PAGE_SECONDS)
        phone.timeout = FIRST_PAGE_SECONDS
        for number in range(scale.rush_steps + 1):  # the welcome screen, then the steps
            pause = rng.uniform(*scale.rush_pause)
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
            match = TOKEN_RE.search(page.decode())
            if not match:
                raise RuntimeError(f"{path}: no CSRF token")
            form = {"action": "next", **FORM_ANSWERS[number]} if number else {}
            status, location, _ = timed("POST", path, {"csrf_token": match.group(1), **form})
            if status != 302 or location_path(location) != f"/step/{number + 1}":
                raise RuntimeError(f"POST {path}: HTTP {status} to {location}")
            path = location_path(location)
            status, _, page = timed("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path}: HTTP {status}")
            record["steps"] += 1 if number else 0
        else:
            record["finished"] = True
    except Exception:
        record["errors"] += 1
    finally:
        record["reconnects"] = phone.reconnects
        record["requests"] = len(latencies)
        with lock:
            out["latencies"].extend(latencies)
            out["units"] += len(latencies)
            out["errors"] += record["errors"]
            out["phones"].append(record)
            keep.append(phone)  # closed when the phase ends, not before


def _load_process(plan: Plan, specs: list, offset: int, ready, go, start_at, results) -> None:
    """One load generator process: a thread per client, all started together."""
    out = {"latencies": [], "units": 0, "errors": 0, "phones": [], "start": 0.0}
    lock = threading.Lock()
    local_go = threading.Event()
    kept: list[Phone] = []
    try:
        barrier = threading.Barrier(len(specs) + 1, timeout=300)
        if plan.kind == "rush":

            def run(index, spec):
                barrier.wait()
                local_go.wait()
                _rush_phone(plan, spec, index, out, lock, kept)

        else:

            def run(index, spec):
                _client(plan, spec, barrier, local_go, out, lock)

        threads = [
            threading.Thread(target=run, args=(offset + i, spec), daemon=True)
            for i, spec in enumerate(specs)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        ready.put(os.getpid())
        go.wait(300)
        cpu = time.process_time()
        out["start"] = start_at.value
        local_go.set()
        bound = plan.seconds + FIRST_PAGE_SECONDS + 60
        for thread in threads:
            thread.join(max(0.1, out["start"] + bound - time.monotonic()))
        out["end"] = time.monotonic()
        out["cpu"] = time.process_time() - cpu
        for phone in kept:
            phone.close()
        with lock:
            results.put(out)
    except BaseException as exc:  # reported, never a hang
        ready.put(os.getpid())
        results.put({"crash": f"{type(exc).__name__}: {exc}"})


def _run_phase(
    bench: Bench, plan: Plan, specs: list, label: str, unit: str, server_pid: int
) -> Phase:
    """Runs one load phase in bench.load_processes processes and samples the CPU of the
    server, of the load processes and of the machine around it."""
    context = multiprocessing.get_context("fork" if CAN_FORK else "spawn")
    count = max(1, min(bench.load_processes, len(specs)))
    ready, results = context.Queue(), context.Queue()
    go, start_at = context.Event(), context.Value("d", 0.0)
    chunks = [specs[i::count] for i in range(count)]
    offsets = [sum(len(c) for c in chunks[:i]) for i in range(count)]
    processes = [
        context.Process(
            target=_load_process,
            args=(plan, chunk, offset, ready, go, start_at, results),
            daemon=True,
        )
        for chunk, offset in zip(chunks, offsets, strict=True)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=300)
        with ConnectionWatch(plan.port) as watch:
            before = Sample.take(server_pid)
            start_at.value = time.monotonic()
            go.set()
            bound = plan.seconds + FIRST_PAGE_SECONDS + 120
            outs = [results.get(timeout=bound) for _ in processes]
            after = Sample.take(server_pid)
        loadavg = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    except BaseException:
        for process in processes:  # waiting for a go that never comes: stop them now
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    crashes = [out["crash"] for out in outs if "crash" in out]
    if crashes:
        raise RuntimeError(f"{label}: a load process crashed: {crashes[0]}")
    seconds = max(out["end"] for out in outs) - start_at.value
    phase = Phase(
        label=label,
        unit=unit,
        latencies=[latency for out in outs for latency in out["latencies"]],
        errors=sum(out["errors"] for out in outs),
        seconds=seconds,
        server_cpu=after.server - before.server,
        client_cpu=sum(out["cpu"] for out in outs),
        machine_busy=after.machine - before.machine,
        bench_cpu=after.bench - before.bench,
        loadavg=loadavg,
        units=sum(out["units"] for out in outs),
        extra=[phone for out in outs for phone in out["phones"]],
        most_connections=watch.most,
    )
    log(
        f"{label}: {phase.units} {unit}, {phase.errors} errors in {seconds:.1f} s; server "
        f"{phase.ms_per_unit(phase.server_cpu):.2f} ms CPU per unit, other load "
        f"{phase.other_cores:.2f} cores, loadavg {loadavg[0]:.2f}"
    )
    return phase


HELLO_WORLD = """
import sys
from flask import Flask
from patientapp import config
from patientapp.cli.serve import run
host, port, workers, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
app = Flask("hello")
@app.route("/", methods=["GET", "POST"])
def hello():
    return "Hello, World!"
settings = {**config.DEFAULTS, **config.from_environment()}
options = {"threads": threads, "ident": "hello", **config.server_options(settings)}
with app.app_context():  # as under `flask serve`
    run(app, host, port, workers, options)
"""


def _static_path(bench: Bench) -> str:
    """The versioned stylesheet URL the patient pages link to."""
    status, _, body = Phone(bench.app_port).get("/start")
    for stylesheet, _script in ASSET_RE.findall(body.decode()):
        if stylesheet:
            return (
                urlsplit(urljoin(f"http://{HOST}/start", stylesheet))
                ._replace(scheme="", netloc="")
                .geturl()
            )
    raise RuntimeError(f"GET /start: HTTP {status}, no stylesheet")


def _machine_row(phase: Phase, section: str = "machine") -> Row:
    one, five, fifteen = phase.loadavg
    return Row(
        section,
        f"other load during {phase.label}",
        f"{phase.other_cores:.2f} cores",
        target=(
            f"loadavg {one:.2f} {five:.2f} {fifteen:.2f}; busy "
            f"{phase.cores(phase.machine_busy):.2f} of {os.cpu_count()}: server "
            f"{phase.cores(phase.server_cpu):.2f}, load gen {phase.cores(phase.client_cpu):.2f}"
        ),
    )


@measurement("load")
def step_under_load(bench: Bench) -> list[Row]:
    scale = bench.scale
    who = f"{scale.patients} clients"
    log(f"load: hello world under serve.run, {bench.server}, {who}")
    hello = _run_phase(
        bench,
        Plan("hello", bench.hello_port, "/", scale.units_per_client, scale.load_seconds),
        [None] * scale.patients,
        "hello world",
        "pairs",
        bench.hello_pid,
    )
    static_path = _static_path(bench)
    log(f"load: the static file {static_path}, {who}")
    static = _run_phase(
        bench,
        Plan("static", bench.app_port, static_path, scale.units_per_client, scale.load_seconds),
        [None] * scale.patients,
        "static file",
        "GETs",
        bench.app_pid,
    )
    log("load: one patient alone")
    alone = _run_phase(
        bench,
        Plan("patient", bench.app_port, units=scale.alone_steps, seconds=scale.load_seconds),
        [bench.invite("ALONE")[1]],
        "one patient alone",
        "steps",
        bench.app_pid,
    )
    log(f"load: {scale.patients} patients open their invitations")
    app = _run_phase(
        bench,
        Plan("patient", bench.app_port, units=scale.units_per_client, seconds=scale.load_seconds),
        [bench.invite("LOAD")[1] for _ in range(scale.patients)],
        f"{scale.patients} patients",
        "steps",
        bench.app_pid,
    )

    ratio = app.throughput / hello.throughput if hello.throughput else 0.0
    static_ratio = 2 * app.throughput / static.throughput if static.throughput else 0.0
    patients = f"{scale.patients} patients"
    step_cpu = app.ms_per_unit(app.server_cpu)
    hello_cpu = hello.ms_per_unit(hello.server_cpu)
    static_cpu = static.ms_per_unit(static.server_cpu)
    busy = min(bench.workers, os.cpu_count() or 1)  # cores the server's workers can use
    return [
        Row(
            "load",
            "patient step p50 / p95, one patient alone",
            f"{alone.p(50):.1f} / {alone.p(95):.1f} ms",
            target=f"({alone.throughput:.0f} steps/s)",
        ),
        Row(
            "load",
            f"patient step (GET+POST) p50 / p95, {patients}",
            f"{app.p(50):.1f} / {app.p(95):.1f} ms",
            target=f"p95 < {TARGET_P95_MS:.0f} ms",
            result=verdict(app.p(95) < TARGET_P95_MS, bad="SLOW"),
        ),
        Row(
            "load",
            "patient step throughput",
            f"{app.throughput:.0f} steps/s",
            target=f"({2 * app.throughput:.0f} req/s, {app.units} steps)",
        ),
        Row(
            "load",
            f"hello world (GET+POST) p50 / p95, {who}",
            f"{hello.p(50):.1f} / {hello.p(95):.1f} ms",
        ),
        Row(
            "load",
            "hello world throughput",
            f"{hello.throughput:.0f} pairs/s",
            target=f"({2 * hello.throughput:.0f} req/s, {hello.units} pairs)",
        ),
        Row(
            "load",
            f"static file GET p50 / p95, {who}",
            f"{static.p(50):.1f} / {static.p(95):.1f} ms",
            target=f"({static_path[:40]})",
        ),
        Row(
            "load",
            "static file throughput",
            f"{static.throughput:.0f} GETs/s",
            target=f"({static.units} GETs)",
        ),
        Row(
            "load",
            "patient step / hello world (per second)",
            f"{ratio:.0%}",
            target=f">= {TARGET_RATIO:.0%}",
            result=verdict(ratio >= TARGET_RATIO, bad="LOW"),
        ),
        Row("load", "patient requests / static GETs (per second)", f"{static_ratio:.0%}"),
        Row(
            "load",
            "errors (patient / hello world / static)",
            f"{app.errors + alone.errors} / {hello.errors} / {static.errors}",
            target="0",
            result=verdict(
                app.errors + alone.errors + hello.errors + static.errors == 0, "OK", "FAIL"
            ),
        ),
        Row(
            "cpu",
            f"server CPU per patient step (GET+POST), {patients}",
            f"{step_cpu:.2f} ms",
            target=f"({app.cores(app.server_cpu):.2f} cores serving)",
        ),
        Row(
            "cpu",
            "server CPU per patient step, one patient alone",
            f"{alone.ms_per_unit(alone.server_cpu):.2f} ms",
            target=f"({alone.units} steps one after another: the steadiest figure)",
        ),
        Row(
            "cpu",
            "server CPU per hello world pair (GET+POST)",
            f"{hello_cpu:.2f} ms",
            target=f"({hello.cores(hello.server_cpu):.2f} cores serving)",
        ),
        Row(
            "cpu",
            "server CPU per static GET",
            f"{static_cpu:.2f} ms",
            target=f"({static.cores(static.server_cpu):.2f} cores serving)",
        ),
        Row(
            "cpu",
            "patient step / hello world, by server CPU per unit",
            f"{hello_cpu / step_cpu:.0%}" if step_cpu else "n/a",
            target=f"({TARGET_RATIO:.0%} needs <= {hello_cpu / TARGET_RATIO:.2f} ms per step)",
        ),
        Row(
            "cpu",
            f"steps/s {busy} cores could serve at this CPU per step",
            f"{1000 * busy / step_cpu:.0f} steps/s" if step_cpu else "n/a",
            target="(no client, no other load on those cores)",
        ),
        Row(
            "cpu",
            "load generator CPU per unit (patient / hello / static)",
            f"{app.ms_per_unit(app.client_cpu):.2f} / {hello.ms_per_unit(hello.client_cpu):.2f}"
            f" / {static.ms_per_unit(static.client_cpu):.2f} ms",
            target=f"({bench.load_processes} processes)",
        ),
        *(_machine_row(phase) for phase in (hello, static, alone, app)),
    ]


# --- 3. the rush: 300 phones keeping their connections open -----------------------------------

TARGET_RUSH_P95_MS = 150.0


@measurement("rush")
def rush(bench: Bench) -> list[Row]:
    return _rush(bench, bench.scale, "rush")


@measurement("morning")
def morning(bench: Bench) -> list[Row]:
    """A health system's morning on one box: the rush with ten times the phones, over a
    minute, each keeping its connection (the file-descriptor and connection limits)."""
    scale = bench.scale
    shaped = replace(
        scale,
        rush_phones=scale.morning_phones,
        rush_arrival_seconds=scale.morning_arrival_seconds,
        rush_seconds=scale.morning_seconds,
    )
    return _rush(bench, shaped, "morning")


def _rush(bench: Bench, scale: Scale, section: str) -> list[Row]:
    phones = scale.rush_phones
    log(f"{section}: inviting {phones} patients")
    tokens = [bench.invite("RUSH")[1] for _ in range(phones)]
    low, high = scale.rush_pause
    log(
        f"{section}: {phones} phones arrive over {scale.rush_arrival_seconds:g} s, "
        f"{low:g}-{high:g} s pauses, {scale.rush_steps} steps (at most {scale.rush_seconds:g} s)"
    )
    phase = _run_phase(
        bench,
        Plan("rush", bench.app_port, seconds=scale.rush_seconds, scale=scale),
        tokens,
        f"the {section}",
        "requests",
        bench.app_pid,
    )
    records = phase.extra
    firsts = [r["first"] for r in records if r["first"] is not None]
    served = sum(1 for first in firsts if first <= FIRST_PAGE_SECONDS)
    errored = sum(1 for r in records if r["errors"])
    starved = phones - served - sum(1 for r in records if r["errors"] and r["first"] is None)
    finished = sum(1 for r in records if r["finished"])
    steps = sum(r["steps"] for r in records)
    reconnects = sum(r.get("reconnects", 0) for r in records)
    f50, f95 = (percentile(firsts, p) * 1000 for p in (50, 95))
    what = (
        f"{phones} phones, keep-alive, arriving over {scale.rush_arrival_seconds:g} s, "
        f"{low:g}-{high:g} s pauses"
    )
    return [
        Row(
            section,
            f"{what}: first page within {FIRST_PAGE_SECONDS:.0f} s",
            f"{served}/{phones}",
            target=f"{phones}",
            result=verdict(served == phones, bad="SLOW"),
        ),
        Row(
            section,
            f"starved (no first page within {FIRST_PAGE_SECONDS:.0f} s)",
            str(starved),
            target="0",
            result=verdict(starved == 0, bad="SLOW"),
        ),
        Row(
            section,
            "first page p50 / p95 / slowest",
            f"{f50:.0f} / {f95:.0f} / {max(firsts, default=0) * 1000:.0f} ms",
        ),
        Row(
            section,
            "every request p50 / p95",
            f"{phase.p(50):.1f} / {phase.p(95):.1f} ms",
            target=f"p95 < {TARGET_RUSH_P95_MS:.0f} ms",
            result=verdict(phase.p(95) < TARGET_RUSH_P95_MS, bad="SLOW"),
        ),
        Row(
            section,
            "requests / steps walked / phones done / reconnects",
            f"{phase.units} / {steps} / {finished} / {reconnects}",
            target=f"({scale.rush_steps} steps each, {phase.seconds:.0f} s)",
        ),
        Row(
            section,
            "most connections open to the server at once",
            str(phase.most_connections),
            target=f"(connection limit {bench.connection_limit():,} per worker)",
        ),
        Row(
            section,
            "errors (phones with an error)",
            str(errored),
            target="0",
            result=verdict(errored == 0, bad="FAIL"),
        ),
        Row(
            section,
            "server CPU per request",
            f"{phase.ms_per_unit(phase.server_cpu):.2f} ms",
            target=f"({phase.cores(phase.server_cpu):.2f} cores serving)",
        ),
        _machine_row(phase, section),
    ]


# --- 4. burst: 200 patients press "Send" at once ---------------------------------------------


@measurement("burst")
def submit_burst(bench: Bench) -> list[Row]:
    burst = bench.scale.burst
    log(f"burst: preparing {burst} visits answered up to review")
    visits = []
    for _ in range(burst):
        ref, token, visit_id = bench.invite("burst")
        bench.answer_up_to_review(visit_id)
        visits.append((ref, token))

    go = threading.Barrier(burst + 1, timeout=120)
    outcomes: list[tuple[str, float, float]] = []  # (outcome, sent at, answered at)
    lock = threading.Lock()

    def patient(token: str) -> None:
        phone = Phone(bench.app_port, timeout=90)
        try:
            status, location, _ = phone.get(f"/v/{token}")
            if status != 302 or location_path(location) != "/review":
                raise RuntimeError(f"open: {status} {location}")
            csrf = phone.token("/review")
            # Each sends on a fresh connection: the burst measures the writes, while
            # connections held open are the rush's subject (CONNECTION_LIMIT).
            phone.close()
        except Exception:
            phone.close()
            go.wait()
            with lock:
                outcomes.append(("error (before sending)", 0.0, 0.0))
            return
        go.wait()
        sent = time.perf_counter()
        try:
            status, location, _ = phone.post(
                "/review", {"csrf_token": csrf, "action": "submit", "in_person": "T2"}
            )
            outcome = (
                "ack"
                if status == 302 and location_path(location) == "/thanks"
                else (f"HTTP {status} {location_path(location)}")
            )
        except Exception as exc:
            outcome = f"error ({type(exc).__name__})"
        finally:
            phone.close()
        with lock:
            outcomes.append((outcome, sent, time.perf_counter()))

    threads = [threading.Thread(target=patient, args=(token,), daemon=True) for _, token in visits]
    for thread in threads:
        thread.start()
    log(f"burst: {burst} patients send at once")
    go.wait()
    for thread in threads:
        thread.join(120)
    timed = [(sent, done) for _, sent, done in outcomes if done]
    slowest = max((done - sent for sent, done in timed), default=0.0)
    elapsed = (max(done for _, done in timed) - min(sent for sent, _ in timed)) if timed else 0.0

    acked = sum(1 for outcome, _, _ in outcomes if outcome == "ack")
    failures = [outcome for outcome, _, _ in outcomes if outcome != "ack"]
    failures += ["no answer"] * (burst - len(outcomes))
    refs = [ref for ref, _ in visits]
    db = sqlite3.connect(bench.database, timeout=30)
    try:
        marks = ",".join("?" * len(refs))
        stored = db.execute(
            f"SELECT COUNT(*) FROM visits WHERE status = 'submitted' AND patient_ref IN ({marks})",
            refs,
        ).fetchone()[0]
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    kinds = sorted(set(failures))
    return [
        Row(
            "burst",
            f"{burst} send at once: acknowledged (302 /thanks)",
            f"{acked}/{burst}",
            target=f"{burst}",
            result=verdict(acked == burst, bad="FAIL"),
        ),
        Row(
            "burst",
            "stored (status 'submitted' in SQLite)",
            f"{stored}/{burst}",
            target="= acknowledged",
            result=verdict(stored == acked, bad="FAIL"),
        ),
        Row(
            "burst",
            "errors" + (f": {', '.join(kinds)[:60]}" if kinds else ""),
            str(len(failures)),
            target="0",
            result=verdict(not failures, bad="FAIL"),
        ),
        Row(
            "burst",
            "server errors logged (whole run)",
            str(bench.server_errors()),
            target="0",
            result=verdict(bench.server_errors() == 0, bad="FAIL"),
        ),
        Row(
            "burst", "slowest send / whole burst", f"{slowest * 1000:.0f} / {elapsed * 1000:.0f} ms"
        ),
        Row(
            "burst",
            "PRAGMA integrity_check",
            integrity,
            target="ok",
            result=verdict(integrity == "ok", bad="FAIL"),
        ),
    ]


# --- 5. the staff side: the fullest summary ------------------------------------------------

TARGET_SUMMARY_MS = 50.0
SUMMARY_PSYCHIATRIST = ("dr.bench@example.org", "bench-password-2026")
MAXIMAL_VISIT = REPO_ROOT / "tests" / "browser" / "maximal_visit.py"


def _maximal_visit_module():
    """The fullest summary's data, shared with the browser tests' one-page print check
    (loaded by path: it imports only patientapp)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_maximal_visit", MAXIMAL_VISIT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _summary_app(bench: Bench):
    """An app of its own (create_app, a temporary database in the bench's folder) with a
    psychiatrist and the fullest visit plus the previous one; returns (app, visit_id)."""
    app = create_app(
        {
            "SECRET_KEY": "bench-summary",
            "DATABASE": str(bench.workdir / "summary" / "patientapp.db"),
            # This times the summary, not signing in: a password alone gets there.
            "MFA_REQUIRED_ROLES": (),
        }
    )
    email, password = SUMMARY_PSYCHIATRIST
    with app.app_context():
        db = get_db()
        doctor = storage.create_user(
            db,
            email=email,
            display_name="Dr. Bench",
            password_hash=hash_password(password),
            role="psychiatrist",
            now=datetime.now(),
        )
        stored = _maximal_visit_module().store_maximal_visit(
            db, "BENCH-MAX", psychiatrist_id=doctor, acknowledged_by=doctor
        )
    return app, stored.visit_id


def _signed_in(app):
    """A test client logged in through the real login form, CSRF token included."""
    client = app.test_client()
    page = client.get("/staff/login")
    match = TOKEN_RE.search(page.get_data(as_text=True))
    if page.status_code != 200 or not match:
        raise RuntimeError(f"GET /staff/login: {page.status_code}, no CSRF token")
    email, password = SUMMARY_PSYCHIATRIST
    response = client.post(
        "/staff/login", data={"csrf_token": match.group(1), "email": email, "password": password}
    )
    if response.status_code != 302 or not response.location.endswith("/staff/"):
        raise RuntimeError(f"login: HTTP {response.status_code} to {response.location}")
    return client


def _time_gets(client, path: str, must_contain: str, scale: Scale) -> tuple[list[float], int]:
    """scale.summary_renders timed GETs after a short warm-up: (seconds each, errors)."""
    latencies, errors = [], 0
    for number in range(scale.summary_warmup + scale.summary_renders):
        began = time.perf_counter()
        response = client.get(path)
        body = response.get_data(as_text=True)
        took = time.perf_counter() - began
        if response.status_code != 200 or must_contain not in body:
            errors += 1
        if number >= scale.summary_warmup:
            latencies.append(took)
    return latencies, errors


@measurement("staff")
def summary_render(bench: Bench) -> list[Row]:
    log("staff: the fullest summary (with a previous visit) through the test client")
    app, visit_id = _summary_app(bench)
    client = _signed_in(app)
    first = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    for fullest in ("Nearly every day", "Worries no longer named", "Stance: "):
        if fullest not in first:  # the page measured must be the fullest one
            raise RuntimeError(f"the summary lacks {fullest!r}")
    must = "Patient-reported; not a diagnosis."
    page, page_errors = _time_gets(client, f"/staff/visits/{visit_id}/summary", must, bench.scale)
    text, text_errors = _time_gets(
        client, f"/staff/visits/{visit_id}/summary.txt", must, bench.scale
    )
    p50, p95 = (percentile(page, p) * 1000 for p in (50, 95))
    t50, t95 = (percentile(text, p) * 1000 for p in (50, 95))
    log(f"staff: summary p50 {p50:.1f} ms, p95 {p95:.1f} ms; text p50 {t50:.1f} ms")
    errors = page_errors + text_errors
    return [
        Row(
            "staff",
            f"summary render p50 / p95 (fullest, {bench.scale.summary_renders} GETs, test client)",
            f"{p50:.1f} / {p95:.1f} ms",
            target=f"p95 < {TARGET_SUMMARY_MS:.0f} ms",
            result=verdict(p95 < TARGET_SUMMARY_MS, bad="SLOW"),
        ),
        Row("staff", "plain-text export p50 / p95 (summary.txt)", f"{t50:.1f} / {t95:.1f} ms"),
        Row(
            "staff",
            "summary errors (not 200 or incomplete)",
            str(errors),
            target="0",
            result=verdict(errors == 0, bad="FAIL"),
        ),
    ]


# --- main ------------------------------------------------------------------------------------


def raise_file_limit() -> None:
    """Hundreds of open connections need as many descriptors (client and server alike):
    the soft limit goes up to the hard one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    began = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("PATIENTAPP_THREADS") or DEFAULT_THREADS),
        help="waitress threads per process for every server (default: the serve default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("PATIENTAPP_WORKERS") or default_workers()),
        help="server processes on one port for every server (default: the cores)",
    )
    parser.add_argument(
        "--load-processes",
        type=int,
        default=max(2, min(4, cores())),
        help="processes of the load generator (default: the cores, 2 to 4)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(MEASUREMENTS),
        help="run only this measurement (repeatable)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run every measurement with tiny counts, in seconds, to check the bench works",
    )
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    raise_file_limit()

    with tempfile.TemporaryDirectory(prefix="patientapp-bench-") as tmp:
        workdir = Path(tmp)
        instance = workdir / "instance"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
        env.update(
            {
                "PATIENTAPP_INSTANCE": str(instance),
                "PATIENTAPP_SECRET_KEY": "bench",
                "PATIENTAPP_THREADS": str(args.threads),
                "PATIENTAPP_WORKERS": str(args.workers),
                "PYTHONUNBUFFERED": "1",
            }
        )
        os.environ.update({"PATIENTAPP_INSTANCE": str(instance)})
        app = create_app({"SECRET_KEY": "bench", "DATABASE": str(instance / "patientapp.db")})
        bench = Bench(
            workdir=workdir,
            threads=args.threads,
            workers=args.workers,
            load_processes=args.load_processes,
            scale=scale,
            app=app,
            database=instance / "patientapp.db",
            env=env,
            app_port=free_port(),
            app_log=workdir / "app.log",
        )
        rows: list[Row] = []
        command = [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "serve",
            "--host",
            HOST,
            "--port",
            str(bench.app_port),
            "--threads",
            str(args.threads),
            "--workers",
            str(args.workers),
        ]
        servers = [Server(command, bench.app_port, bench.app_log, "/start")]
        if not args.only or "load" in args.only:
            while bench.hello_port in (0, bench.app_port):
                bench.hello_port = free_port()
            hello = [HOST, str(bench.hello_port), str(args.workers), str(args.threads)]
            servers.append(
                Server(
                    [sys.executable, "-c", HELLO_WORLD, *hello],
                    bench.hello_port,
                    workdir / "hello.log",
                    "/",
                )
            )
        with running_all(servers, env):  # they start side by side
            bench.app_pid = servers[0].process.pid
            bench.hello_pid = servers[-1].process.pid
            log(f"the servers are up: {time.monotonic() - began:.1f} s")
            for name, measure in MEASUREMENTS.items():
                if not args.only or name in args.only:
                    took = time.monotonic()
                    rows.extend(measure(bench))
                    log(f"{name}: {time.monotonic() - took:.1f} s")
    kind = "SMOKE RUN (tiny counts: the timings mean nothing), " if args.smoke else ""
    print(
        f"Patient side benchmark, {kind}{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, every server: waitress {bench.server} "
        f"(serve.run), load generator {args.load_processes} processes, KB = 1024 B"
    )
    print(render(rows))
    print(
        "gzip: each file compressed alone at level 6, as a reverse proxy would serve it; "
        "wire: the HTML's body as the app sent it to a client accepting gzip (raw: not "
        "compressed). CPU: utime + stime of the server's processes per unit served; other "
        "load: the machine's busy CPU minus the server's, the load generator's and the "
        "bench's, in cores."
    )
    log(f"whole run: {time.monotonic() - began:.1f} s")
    return 1 if any(row.result == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
