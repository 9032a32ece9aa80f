"""Benchmark of the patient side, run by hand:  python bench/run.py  (or `make bench`).

Prints ONE table:
  * page weight: each patient page's HTML + its CSS + its JS, raw and gzipped, against the
    budgets (30 KB raw, 10 KB gzipped, JS 5 KB if any);
  * load: p50 / p95 latency and throughput of a patient step (GET /step/N, then POST Next
    with the CSRF token) on the production server (`flask --app app serve`, waitress) with
    50 simulated patients, beside a Flask hello-world on waitress with the same thread
    count, and the ratio (targets: p95 under 100 ms, at least 40 % of hello-world);
  * burst: 200 patients, each already answered up to review, all pressing "Send" at once:
    acknowledged (302 to /thanks) vs stored (status 'submitted' in SQLite), errors (must
    be 0) and PRAGMA integrity_check;
  * staff: render time of the fullest one-page summary (target under 50 ms) and of its
    plain-text export.

Everything runs against servers started here on 127.0.0.1 with a temporary instance folder
(never the repo's instance/); nothing is written inside the repository. Every loop is
bounded by a count and by time. The exit code is 1 when a row says FAIL (an error, a lost
answer, a damaged database); a target missed (SLOW, LOW, OVER) is reported, not failed.

  python bench/run.py --smoke   runs every measurement with tiny counts (3 patients, 1 s
                                phases, a burst of 5) in seconds: tests/test_bench.py runs
                                it, so the bench cannot rot unnoticed.

Adding a measurement is one function: decorate it with @measurement; it receives the
Bench (servers, invitations, the database) and returns table rows.

Not a test module: pytest never collects it (no test_ prefix, outside tests/).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import math
import os
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed

from patientapp import create_app, examples, questionnaire, storage, visits  # noqa: E402
from patientapp.auth import hash_password  # noqa: E402
from patientapp.web import get_db  # noqa: E402

HOST = "127.0.0.1"  # the bench only ever talks to this machine

KB = 1024
BUDGET_RAW = 30 * KB
BUDGET_GZIP = 10 * KB
BUDGET_JS = 5 * KB
TARGET_P95_MS = 100.0
TARGET_RATIO = 0.40

SECTIONS = 8
FORM_ANSWERS = examples.LOWER_THE_DOSE_FORM  # one patient, step by step, as the forms post


@dataclass(frozen=True)
class Scale:
    """How much each measurement does. --smoke runs every one at SMOKE, in seconds, to show
    the bench still works: its numbers mean nothing."""

    patients: int = 50  # concurrent simulated patients in the load phase
    load_seconds: float = 10.0  # each load phase runs this long (both servers alike)
    units_per_client: int = 400  # ... or stops earlier after this many units per client
    alone_steps: int = 40  # one patient alone, for the unloaded latency
    burst: int = 200  # patients sending at once
    summary_renders: int = 200  # timed GETs of the summary (and of its .txt export)
    summary_warmup: int = 5  # untimed first requests: templates, catalogs, caches


FULL = Scale()
SMOKE = Scale(
    patients=3,
    load_seconds=1.0,
    alone_steps=5,
    burst=5,
    summary_renders=5,
    summary_warmup=1,
)

TOKEN_RE = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
ASSET_RE = re.compile(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"|<script[^>]+src="([^"]+)"')
INLINE_SCRIPT_RE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)

HELLO_WORLD = """
import sys, waitress
from flask import Flask
app = Flask("hello")
@app.route("/", methods=["GET", "POST"])
def hello():
    return "Hello, World!"
waitress.serve(app, host=sys.argv[1], port=int(sys.argv[2]), threads=int(sys.argv[3]),
               ident="hello")
"""


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


COLUMNS = (
    "section",
    "measurement",
    "value",
    "gzip",
    "JS",
    "budget / target",
    "gzip budget",
    "JS budget",
    "result",
)


def render(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (r.section, r.what, r.value, r.gzip, r.js, r.target, r.gzip_budget, r.js_budget, r.result)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    right = {2, 3, 4}  # measured values line up on the right

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
    """One simulated patient: one keep-alive connection and its own cookie jar."""

    def __init__(self, port: int, timeout: float = 60.0):
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, form: dict | None = None):
        if self.conn is None:
            self.connect()
        headers = {}
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
        except Exception:
            self.close()
            raise
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


@contextmanager
def running(command: list[str], env: dict, port: int, log_path: Path, ready_path: str):
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}{ready_path}", timeout=2):
                    break
            except OSError as exc:
                if time.monotonic() > deadline:
                    log_tail = log_path.read_text()[-2000:]
                    raise RuntimeError(f"server not ready: {log_tail}") from exc
                time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Bench:
    """What every measurement gets: the app's server, its database, invitations."""

    workdir: Path
    threads: int
    scale: Scale = FULL
    app_port: int = 0
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

    def server_errors(self) -> int:
        text = self.app_log.read_text(errors="replace") if self.app_log else ""
        return text.count("Traceback") + text.count("unhandled ")


Measurement = Callable[[Bench], list[Row]]
MEASUREMENTS: list[Measurement] = []


def measurement(function: Measurement) -> Measurement:
    """Register a measurement; the table shows them in the order they are defined."""
    MEASUREMENTS.append(function)
    return function


# --- 1. page weight --------------------------------------------------------------------------


def _weigh(phone: Phone, name: str, html: bytes, page_path: str, cache: dict) -> Row:
    text = html.decode()
    css = js = b""
    for stylesheet, script in ASSET_RE.findall(text):
        url = urljoin(f"http://{HOST}{page_path}", stylesheet or script)
        if url not in cache:
            status, _, body = phone.get(urlsplit(url)._replace(scheme="", netloc="").geturl())
            cache[url] = body if status == 200 else b""
        if stylesheet:
            css += cache[url]
        else:
            js += cache[url]
    js_inline = "".join(INLINE_SCRIPT_RE.findall(text)).encode()
    js_total = len(js) + len(js_inline)
    raw = len(html) + len(css) + len(js)
    # Each file is compressed on its own, as a reverse proxy serves it (level 6).
    zipped = sum(len(gzip.compress(part, 6)) for part in (html, css, js) if part)
    ok = raw <= BUDGET_RAW and zipped <= BUDGET_GZIP and js_total <= BUDGET_JS
    return Row(
        "page weight",
        name,
        size(raw),
        size(zipped),
        size(js_total) if js_total else "none",
        target=f"<= {BUDGET_RAW // KB} KB",
        gzip_budget=f"<= {BUDGET_GZIP // KB} KB",
        js_budget=f"<= {BUDGET_JS // KB} KB",
        result=verdict(ok),
    )


@measurement
def page_weights(bench: Bench) -> list[Row]:
    log("page weight: visiting every patient page")
    rows: list[Row] = []
    cache: dict[str, bytes] = {}

    def weigh(phone, name, path, response):
        status, _, body = response
        if status >= 500:
            raise RuntimeError(f"{name}: HTTP {status}")
        rows.append(_weigh(phone, name, body, path, cache))

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
    for number in range(1, SECTIONS + 1):
        path = f"/step/{number}"
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
        status, location, _ = patient.post_form(path, {**FORM_ANSWERS[number], "action": "next"})
        if status != 302:
            raise RuntimeError(f"POST {path}: HTTP {status}")
    weigh(patient, "safety", "/safety", patient.get("/safety"))
    weigh(patient, "review", "/review", patient.get("/review"))
    status, location, _ = patient.post_form("/review", {"action": "submit", "in_person": "T2"})
    weigh(patient, "thanks", "/thanks", patient.get(location_path(location)))
    weigh(patient, "already sent", "/v/x", patient.get(f"/v/{token}"))
    visitor.close()
    patient.close()
    return rows


# --- 2. load: a patient step under 50 concurrent patients ------------------------------------


@dataclass
class LoadResult:
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def _run_load(
    workers: list[Callable[[], float]], label: str, units: int, seconds: float
) -> LoadResult:
    """Each worker callable does one timed unit and returns its latency in seconds.
    All start together; each stops after `units` units or `seconds`, whichever first."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(len(workers) + 1)
    stop_at = [0.0]

    def loop(unit):
        start.wait()
        mine, failed = [], 0
        for _ in range(units):
            if time.monotonic() >= stop_at[0]:
                break
            try:
                mine.append(unit())
            except Exception:
                failed += 1
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    elapsed = time.perf_counter() - began
    log(f"{label}: {len(latencies)} units, {errors[0]} errors in {elapsed:.1f} s")
    return LoadResult(latencies, errors[0], elapsed)


def _patient_worker(bench: Bench) -> Callable[[], float]:
    _, token, _ = bench.invite("LOAD")
    phone = Phone(bench.app_port, timeout=30)
    status, location, _ = phone.get(f"/v/{token}")
    if status != 302:
        raise RuntimeError(f"opening the invitation: HTTP {status}")
    phone.post_form(location_path(location), {})  # Start
    step = [1]

    def unit() -> float:
        number = step[0]
        began = time.perf_counter()
        token = phone.token(f"/step/{number}")
        status, location, _ = phone.post(
            f"/step/{number}", {"csrf_token": token, "action": "next", **FORM_ANSWERS[number]}
        )
        took = time.perf_counter() - began
        expected = "/review" if number == SECTIONS else f"/step/{number + 1}"
        if status != 302 or location_path(location) != expected:
            raise RuntimeError(f"POST /step/{number}: HTTP {status} to {location}")
        step[0] = number % SECTIONS + 1
        return took

    return unit


def _hello_worker(port: int) -> Callable[[], float]:
    phone = Phone(port, timeout=30)
    form = {"csrf_token": "x" * 40, "action": "next", **FORM_ANSWERS[2]}

    def unit() -> float:
        began = time.perf_counter()
        status_get, _, _ = phone.get("/")
        status_post, _, _ = phone.post("/", form)
        if status_get != 200 or status_post != 200:
            raise RuntimeError("hello world failed")
        return time.perf_counter() - began

    return unit


@measurement
def step_under_load(bench: Bench) -> list[Row]:
    scale = bench.scale
    hello_port = free_port()
    log(f"load: hello world on waitress, {bench.threads} threads, {scale.patients} clients")
    with running(
        [sys.executable, "-c", HELLO_WORLD, HOST, str(hello_port), str(bench.threads)],
        bench.env,
        hello_port,
        bench.workdir / "hello.log",
        "/",
    ):
        hello = _run_load(
            [_hello_worker(hello_port) for _ in range(scale.patients)],
            "hello world",
            scale.units_per_client,
            scale.load_seconds,
        )
    log("load: one patient alone")
    alone = _run_load(
        [_patient_worker(bench)], "one patient alone", scale.alone_steps, scale.load_seconds
    )
    log(f"load: {scale.patients} patients open their invitations")
    patients = [_patient_worker(bench) for _ in range(scale.patients)]
    app = _run_load(patients, "patient step", scale.units_per_client, scale.load_seconds)

    p50, p95 = (percentile(app.latencies, p) * 1000 for p in (50, 95))
    h50, h95 = (percentile(hello.latencies, p) * 1000 for p in (50, 95))
    ratio = app.throughput / hello.throughput if hello.throughput else 0.0
    who = f"{scale.patients} patients, {bench.threads} threads"
    a50, a95 = (percentile(alone.latencies, p) * 1000 for p in (50, 95))
    return [
        Row(
            "load",
            "patient step p50 / p95, one patient alone",
            f"{a50:.1f} / {a95:.1f} ms",
            target=f"({alone.throughput:.0f} steps/s)",
        ),
        Row("load", f"patient step p50 ({who})", f"{p50:.1f} ms"),
        Row(
            "load",
            f"patient step p95 ({who})",
            f"{p95:.1f} ms",
            target=f"< {TARGET_P95_MS:.0f} ms",
            result=verdict(p95 < TARGET_P95_MS, bad="SLOW"),
        ),
        Row(
            "load",
            "patient step throughput",
            f"{app.throughput:.0f} steps/s",
            target=f"({2 * app.throughput:.0f} req/s, {len(app.latencies)} steps)",
        ),
        Row("load", "hello world p50 / p95", f"{h50:.1f} / {h95:.1f} ms"),
        Row(
            "load",
            "hello world throughput (GET+POST)",
            f"{hello.throughput:.0f} pairs/s",
            target=f"({2 * hello.throughput:.0f} req/s, {len(hello.latencies)} pairs)",
        ),
        Row(
            "load",
            "patient step / hello world",
            f"{ratio:.0%}",
            target=f">= {TARGET_RATIO:.0%}",
            result=verdict(ratio >= TARGET_RATIO, bad="LOW"),
        ),
        Row(
            "load",
            "errors (patient / hello world)",
            f"{app.errors + alone.errors} / {hello.errors}",
            target="0",
            result=verdict(app.errors + alone.errors == 0 and hello.errors == 0, bad="FAIL"),
        ),
    ]


# --- 3. burst: 200 patients press "Send" at once ---------------------------------------------


@measurement
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
            # waitress serves at most 100 connections (connection_limit) and stops
            # accepting beyond that: holding 200 idle ones here would starve the others.
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


# --- 4. the staff side: the fullest summary ------------------------------------------------

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


@measurement
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("PATIENTAPP_THREADS", "8")),
        help="waitress threads for both servers (default: the serve default)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run every measurement with tiny counts, in seconds, to check the bench works",
    )
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL

    with tempfile.TemporaryDirectory(prefix="patientapp-bench-") as tmp:
        workdir = Path(tmp)
        instance = workdir / "instance"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
        env.update(
            {
                "PATIENTAPP_INSTANCE": str(instance),
                "PATIENTAPP_SECRET_KEY": "bench",
                "PATIENTAPP_THREADS": str(args.threads),
                "PYTHONUNBUFFERED": "1",
            }
        )
        os.environ.update({"PATIENTAPP_INSTANCE": str(instance)})
        app = create_app({"SECRET_KEY": "bench", "DATABASE": str(instance / "patientapp.db")})
        bench = Bench(
            workdir=workdir,
            threads=args.threads,
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
        ]
        with running(command, env, bench.app_port, bench.app_log, "/start"):
            for measure in MEASUREMENTS:
                rows.extend(measure(bench))
    kind = "SMOKE RUN (tiny counts: the timings mean nothing), " if args.smoke else ""
    print(
        f"Patient side benchmark, {kind}{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, waitress {args.threads} threads, KB = 1024 B"
    )
    print(render(rows))
    print(
        "gzip: each file compressed alone at level 6, as a reverse proxy would serve it "
        "(waitress itself sends it uncompressed)."
    )
    return 1 if any(row.result == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
