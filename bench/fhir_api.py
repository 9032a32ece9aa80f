"""Benchmark of the read-only FHIR API for a 500-visit day:  python bench/fhir_api.py

Fills a temporary database with one clinic day of sent visits (fictional answers from
patientapp/cli/examples.py, the safety history included), creates an integration token,
starts the production server (`flask --app app serve`, waitress) on a free loopback port,
and has an integration engine read the whole day: GET /api/fhir/QuestionnaireResponse
?_lastUpdated=ge<start of day>, page after page (_count=100), following the Bundle's
"next" links, several rounds, by 1 and by 4 clients at once. Prints the visits read per
second, the time to read the day and each page's p50 / p95; every response is checked
(200, a searchset Bundle, the expected number of entries).

  python bench/fhir_api.py --smoke   20 visits and one round, in seconds (tests run it)

Nothing is written inside the repository; the rate limit is raised for the run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from run import HOST, free_port, percentile, running  # noqa: E402

from patientapp import create_app  # noqa: E402
from patientapp.cli import examples  # noqa: E402
from patientapp.db import storage  # noqa: E402
from patientapp.domain import api_tokens, visits  # noqa: E402
from patientapp.web.context import get_db  # noqa: E402

DAY = datetime(2026, 11, 25, 8, 0)
ANSWER_SETS = [
    getattr(examples, name)
    for name in ("LOWER_THE_DOSE", "SAFETY_CONCERN", "AMBIVALENT", "IN_PERSON", "SPANISH")
]


def fill(app, count: int) -> str:
    """A day of `count` sent visits; the token that reads them."""
    with app.app_context():
        db = get_db()
        for n in range(count):
            moment = DAY + timedelta(minutes=n)
            invitation = visits.create(
                db,
                patient_ref=f"BENCH-{n:04d}",
                appointment_at=moment + timedelta(hours=1),
                psychiatrist_id=None,
                suggested_language="",
                extra_days=0,
                created_by=None,
                now=moment,
            )
            answers = ANSWER_SETS[n % len(ANSWER_SETS)]
            visits.start(db, invitation.visit_id, language="en", version="2026.1", now=moment)
            with storage.write(db):
                storage.save_answers(db, invitation.visit_id, answers, now=moment, language="en")
                storage.record_safety_answer(db, invitation.visit_id, answers["S1"], moment)
            assert visits.submit(db, invitation.visit_id, set(), moment + timedelta(minutes=6))
        _id, token = api_tokens.create_token(db, "bench", None, DAY)
    return token


def read_day(port: int, token: str, expected: int) -> tuple[float, list[float], int]:
    """One integration engine reading the whole day: seconds, page times, errors."""
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    path = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T00:00:00&_count=100"
    pages, errors, seen = [], 0, 0
    start = time.perf_counter()
    while path:
        began = time.perf_counter()
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        body = response.read()
        pages.append(time.perf_counter() - began)
        if response.status != 200:
            errors += 1
            break
        bundle = json.loads(body)
        seen += len(bundle.get("entry", ()))
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        path = (lambda u: f"{u.path}?{u.query}")(urlsplit(following[0])) if following else ""
    connection.close()
    if seen != expected:
        errors += 1
    return time.perf_counter() - start, pages, errors


def rounds(port, token, expected, clients: int, count: int):
    results = []

    def engine():
        for _ in range(count):
            results.append(read_day(port, token, expected))

    threads = [threading.Thread(target=engine) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    pages = [p for _s, page_times, _e in results for p in page_times]
    return {
        "visits_per_s": expected * len(results) / wall,
        "day_s": sum(s for s, _p, _e in results) / len(results),
        "p50_ms": percentile(pages, 50) * 1000,
        "p95_ms": percentile(pages, 95) * 1000,
        "errors": sum(e for _s, _p, e in results),
        "reads": len(results),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    count = 20 if args.smoke else args.visits
    repeat = 1 if args.smoke else 5
    with tempfile.TemporaryDirectory(prefix="patientapp-fhir-bench-") as workdir:
        instance = Path(workdir) / "instance"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
        env.update(
            {
                "PATIENTAPP_INSTANCE": str(instance),
                "PATIENTAPP_SECRET_KEY": "bench",
                "PATIENTAPP_THREADS": str(args.threads),
                "PATIENTAPP_API_REQUESTS_PER_MINUTE": "100000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        os.environ["PATIENTAPP_INSTANCE"] = str(instance)
        app = create_app({"SECRET_KEY": "bench", "DATABASE": str(instance / "patientapp.db")})
        started = time.perf_counter()
        token = fill(app, count)
        filled = time.perf_counter() - started
        port = free_port()
        command = [sys.executable, "-m", "flask", "--app", "app", "serve", "--host", HOST]
        command += ["--port", str(port), "--threads", str(args.threads)]
        with running(command, env, port, Path(workdir) / "server.log", "/start"):
            alone = rounds(port, token, count, clients=1, count=repeat)
            four = rounds(port, token, count, clients=4, count=max(1, repeat // 2))
    kind = "SMOKE RUN (tiny counts: the timings mean nothing), " if args.smoke else ""
    print(
        f"FHIR API benchmark, {kind}{datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, waitress {args.threads} threads, "
        f"{count} sent visits (filled in {filled:.1f} s), pages of 100"
    )
    for name, result in (("1 client", alone), ("4 clients", four)):
        print(
            f"{name:<10} {result['visits_per_s']:8.0f} visits/s   whole day "
            f"{result['day_s'] * 1000:7.0f} ms   page p50 / p95 {result['p50_ms']:6.0f} / "
            f"{result['p95_ms']:6.0f} ms   reads {result['reads']}   errors {result['errors']}"
        )
    return 1 if alone["errors"] or four["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
