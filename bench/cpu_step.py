"""Server CPU per patient step, run by hand:  python bench/cpu_step.py [--rounds N]

Walks patients through every screen of every step (GET the screen, then POST Next with
its CSRF token and the example answers of patientapp/cli/examples.py) with Flask's test
client, in one process, and prints the CPU time (time.process_time) the application
itself spent per screen: each request is timed inside the WSGI call, so the test client's
own work is not counted. One new visit per round, a few untimed rounds first (templates,
catalogs, caches), for each language asked (English and Arabic by default).

A "step" here is one screen's GET plus its POST, as a patient presses Next once.

Everything runs with a temporary instance folder and database; nothing is written inside
the repository. Not a test module: pytest never collects it.

  python bench/cpu_step.py --rounds 30 --languages en,ar
  python bench/cpu_step.py --json out.json     also writes the numbers as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the app runs from the source tree, not installed

TOKEN_RE = re.compile(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"')
FIELD_RE = re.compile(r"^([A-Za-z0-9]+?)(?:_text|-\d+-.*)?$")


class CpuTimer:
    """WSGI middleware: the CPU time of each request inside the application, by label."""

    def __init__(self, app):
        self.app = app
        self.label: str | None = None
        self.times: dict[str, list[float]] = defaultdict(list)

    def __call__(self, environ, start_response):
        began = time.process_time()
        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if self.label is not None:
            self.times[self.label].append(time.process_time() - began)
        return [body]


def _token(html: str) -> str:
    match = TOKEN_RE.search(html)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


def _screen_fields(form: dict, items) -> dict:
    """The example answers of one screen: the fields naming one of its items."""
    ids = {item.id for item in items}
    return {key: value for key, value in form.items() if FIELD_RE.match(key).group(1) in ids}


def _path(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def walk(app, timer: CpuTimer, language: str, timed: bool) -> None:
    """One new patient from the invitation link to the review page."""
    from patientapp.cli import examples
    from patientapp.domain import visits
    from patientapp.patient import forms as patient_forms
    from patientapp.questionnaire import model as questionnaire
    from patientapp.web.context import get_db

    with app.app_context():
        made = visits.create(
            get_db(),
            patient_ref=f"CPU-{time.monotonic_ns()}",
            appointment_at=datetime.now() + timedelta(hours=1),
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=0,
            created_by=None,
            now=datetime.now(),
        )
    client = app.test_client()
    timer.label = None
    opened = client.get(f"/v/{made.token}")
    assert opened.status_code == 302, opened.status_code
    page = client.get("/welcome")
    started = client.post("/welcome", data={"csrf_token": _token(page.get_data(as_text=True))})
    assert started.status_code == 302 and "/step/1" in started.location, started.location
    q = questionnaire.default()
    # Every screen as a phone posts it (a screen may end one section and begin the next):
    # the example answers of every section, each screen taking the fields of its items.
    form = {k: v for answers in examples.LOWER_THE_DOSE_FORM.values() for k, v in answers.items()}
    for number, section in enumerate(q.sections, start=1):
        for screen, items in enumerate(patient_forms.screens(section), start=1):
            path = f"/step/{number}" + (f"?screen={screen}" if screen > 1 else "")
            label = f"{number}.{screen}"
            timer.label = f"GET {label}" if timed else None
            page = client.get(path)
            html = page.get_data(as_text=True)
            assert page.status_code == 200, (path, page.status_code)
            assert f'lang="{language.replace("_", "-")}"' in html, (path, language)
            data = {
                "csrf_token": _token(html),
                "action": "next",
                "screen": str(screen),
                **_screen_fields(form, items),
            }
            timer.label = f"POST {label}" if timed else None
            sent = client.post(f"/step/{number}", data=data)
            timer.label = None
            assert sent.status_code == 302, (path, sent.status_code, sent.get_data(as_text=True))
    assert _path(sent.location) == "/review", sent.location


def measure(rounds: int, warmup: int, languages: list[str]) -> dict:
    from patientapp import create_app
    from patientapp.web.context import close_thread_db

    results = {}
    with tempfile.TemporaryDirectory(prefix="cpu-step-") as workdir:
        os.environ["PATIENTAPP_INSTANCE"] = str(Path(workdir) / "instance")
        os.environ.setdefault("PATIENTAPP_WORKERS", "1")
        app = create_app(
            {
                "SECRET_KEY": "bench-cpu-step",
                "DATABASE": str(Path(workdir) / "patientapp.db"),
                "COMPILED_TRANSLATIONS": str(Path(workdir) / "mo"),
            }
        )
        timer = CpuTimer(app.wsgi_app)
        app.wsgi_app = timer
        for language in languages:
            timer.times.clear()
            for _ in range(warmup):
                walk(app, timer, language, timed=False)
            for _ in range(rounds):
                walk(app, timer, language, timed=True)
            results[language] = {label: list(values) for label, values in timer.times.items()}
        close_thread_db()
    return results


def summarise(times: dict[str, list[float]]) -> tuple[dict[str, float], float]:
    """Median CPU ms of GET + POST per screen, and the mean over every screen."""
    screens = sorted(
        {label.split(" ")[1] for label in times}, key=lambda s: tuple(map(int, s.split(".")))
    )
    per_screen = {
        screen: 1000
        * (statistics.median(times[f"GET {screen}"]) + statistics.median(times[f"POST {screen}"]))
        for screen in screens
    }
    rounds = len(times[f"GET {screens[0]}"])
    total = sum(sum(values) for values in times.values())
    return per_screen, 1000 * total / (rounds * len(screens))


# --- a py-spy profile by layer ------------------------------------------------------------

# Where a sample's own frame is: the first matching prefix of its file names the layer.
LAYERS = (
    ("Jinja (templates, markupsafe)", ("jinja2/", "markupsafe/", ".html")),
    ("WTForms / Flask-WTF", ("wtforms/", "flask_wtf/")),
    ("Babel / Flask-Babel", ("babel/", "flask_babel/")),
    ("signing (itsdangerous)", ("itsdangerous/",)),
    ("SQL (sqlite, storage)", ("sqlite_utils/", "sqlcipher3/", "patientapp/db/storage.py")),
    ("Flask / Werkzeug", ("flask/", "werkzeug/", "blinker/")),
    ("app code (patientapp)", ("patientapp/",)),
)
# Inclusive shares of a few calls (a sample counts once per call on its stack).
CALLS = (
    ("render_template", "render_template ("),
    ("building a form (FormMeta.__call__)", "FormMeta.__call__"),
    ("Form.validate", "validate ("),
    ("session cookie open + save", "SessionInterface."),
    ("CSRF token make + check", "_csrf ("),
    ("Flask-Babel get_translations", "get_translations ("),
    ("wtforms catalog load (wtforms/i18n.py)", "wtforms/i18n.py"),
    ("database (storage.py)", "patientapp/db/storage.py"),
)


def _layer(frames: list[str]) -> str:
    """A sample's layer: its own frame's, or, for the standard library, its caller's."""
    for frame in reversed(frames):
        where = frame.rpartition("(")[2]
        for layer, prefixes in LAYERS:
            if any(prefix in where for prefix in prefixes):
                return layer
    return "standard library / other"


def layers(path: str) -> None:
    """Print a py-spy raw profile of cpu_step.py by layer, requests only."""
    own, calls, total = defaultdict(int), defaultdict(int), 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        inside = next((i for i, f in enumerate(frames) if f.startswith("CpuTimer.__call__")), None)
        if inside is None:
            continue  # app start, the test client's own work
        frames = frames[inside + 1 :]
        if not frames:
            continue  # the timer's own line: no frame of the app (the clock call, or lost)
        total += int(count)
        own[_layer(frames)] += int(count)
        joined = ";".join(frames)
        for name, marker in CALLS:
            if marker in joined:
                calls[name] += int(count)
    print(f"{path}: {total} samples inside requests")
    for layer, count in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {layer:<40} {100 * count / total:5.1f} %")
    print("  inclusive:")
    for name, _marker in CALLS:
        print(f"  {name:<40} {100 * calls[name] / total:5.1f} %")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed patients per language")
    parser.add_argument("--warmup", type=int, default=3, help="untimed patients first")
    parser.add_argument("--languages", default="en,ar", help="comma-separated codes")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--layers", help="only summarise this py-spy raw profile by layer")
    args = parser.parse_args(argv)
    if args.layers:
        layers(args.layers)
        return 0
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    results = measure(args.rounds, args.warmup, languages)
    summaries = {language: summarise(times) for language, times in results.items()}
    screens = list(next(iter(summaries.values()))[0])
    print("CPU ms per step (one screen's GET + POST Next), median over", args.rounds, "patients")
    print("screen  " + "  ".join(f"{language:>8}" for language in languages))
    for screen in screens:
        print(
            f"{screen:<6}  " + "  ".join(f"{summaries[lang][0][screen]:8.2f}" for lang in languages)
        )
    print("mean    " + "  ".join(f"{summaries[lang][1]:8.2f}" for lang in languages))
    medians = {lang: statistics.mean(summaries[lang][0].values()) for lang in languages}
    print("median  " + "  ".join(f"{medians[lang]:8.2f}" for lang in languages))
    gets = {
        lang: 1000
        * statistics.mean(v for k, vs in results[lang].items() if k.startswith("GET") for v in vs)
        for lang in languages
    }
    posts = {
        lang: 1000
        * statistics.mean(v for k, vs in results[lang].items() if k.startswith("POST") for v in vs)
        for lang in languages
    }
    print("GET     " + "  ".join(f"{gets[lang]:8.2f}" for lang in languages))
    print("POST    " + "  ".join(f"{posts[lang]:8.2f}" for lang in languages))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"raw": results, "mean": {k: v[1] for k, v in summaries.items()}})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
