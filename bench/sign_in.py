"""Benchmark of signing in with the clinic's OpenID Provider and of opening the one page
from the EHR (SMART launch):  python bench/sign_in.py

Starts the production server (`flask --app app serve`, waitress) and a real provider
(tests/oidc_provider, oidc-provider on node; run `npm ci --prefix tests/oidc_provider`
first) on loopback, each configured as a clinic's IT would. A browser is played by one
HTTP session per person: the sign-in page, the provider's own login page, and back.
Prints, for each, the p50 / p95 of the whole round trip and of the app's callback alone
(the code exchanged, the ID token checked against the provider's keys, the user info
read; or, for a launch, the token and the two FHIR reads), in milliseconds.

  python bench/sign_in.py --smoke   3 rounds, in seconds (tests run it)

Nothing is written inside the repository.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import requests  # noqa: E402
from run import HOST, free_port, percentile, running  # noqa: E402

from patientapp.db import storage  # noqa: E402
from tests.helpers.oidc_provider import MRN, OpenIDProvider, one_patient_ehr  # noqa: E402

PASSWORD = "a bench password, long enough"  # noqa: S105 - a throwaway account
EHR = one_patient_ehr("bench", "BENCH-1")
ACCOUNTS = {"cy": {"email": "cy@example.org", "email_verified": True, "amr": ["pwd", "mfa"]}}
SIGN_IN = re.compile(r'<a class="button primary" href="([^"]+)">Sign in with ')
FORM = re.compile(r'<form[^>]*action="([^"]+)"')
ONWARD = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')


def follow(person: requests.Session, response: requests.Response, stop: str) -> str:
    """Follow redirects until one leads to a path starting with `stop`; that address."""
    while True:
        if response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
        elif ONWARD.search(response.text):  # the launch's page that moves on by itself
            location = html.unescape(ONWARD.search(response.text).group(1))
        else:
            break
        if urlsplit(location).path.startswith(stop):
            return location
        response = person.get(location, allow_redirects=False, timeout=10)
    if stop == "/staff/login/provider/callback":  # the provider's login page
        action = urljoin(response.url, FORM.search(response.text).group(1))
        answer = person.post(
            action,
            data={"prompt": "login", "login": "cy", "password": "x"},
            allow_redirects=False,
            timeout=10,
        )
        return follow(person, answer, stop)
    raise RuntimeError(f"no redirect to {stop}: {response.status_code}")


def sign_in(base: str) -> tuple[requests.Session, float, float]:
    """A new browser signs in with the provider; (session, total ms, callback ms)."""
    person = requests.Session()
    began = time.perf_counter()
    page = person.get(f"{base}/staff/login", timeout=10)
    link = html.unescape(SIGN_IN.search(page.text).group(1))
    started = person.get(urljoin(page.url, link), allow_redirects=False, timeout=10)
    callback = follow(person, started, "/staff/login/provider/callback")
    at = time.perf_counter()
    done = person.get(callback, allow_redirects=False, timeout=10)
    ended = time.perf_counter()
    if done.headers.get("Location") != "/staff/":
        raise RuntimeError(f"sign-in failed: {done.status_code} {done.text[-300:]}")
    return person, (ended - began) * 1000, (ended - at) * 1000


def launch(person: requests.Session, base: str, fhir_base: str) -> tuple[float, float]:
    """The EHR opens the one page for someone signed in; (total ms, callback ms)."""
    began = time.perf_counter()
    response = person.get(
        f"{base}/smart/launch",
        params={"iss": fhir_base, "launch": "bench"},
        allow_redirects=False,
        timeout=10,
    )
    callback = follow(person, response, "/staff/smart/callback")
    at = time.perf_counter()
    done = person.get(callback, allow_redirects=False, timeout=10)
    ended = time.perf_counter()
    if "/summary" not in done.headers.get("Location", ""):
        raise RuntimeError(f"launch failed: {done.status_code} {done.text[-300:]}")
    return (ended - began) * 1000, (ended - at) * 1000


def prepare(instance: Path, env: dict) -> None:
    """An admin (linked by verified e-mail at first sign-in) and a sent visit today."""
    command = [sys.executable, "-m", "flask", "--app", "app", "create-user", "--role", "admin"]
    subprocess.run(
        [*command, "cy@example.org", "--name", "Cy"],
        input=PASSWORD + "\n",
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    db = storage.connect(str(instance / "patientapp.db"))
    try:
        for key, value in {
            "provider_link_by_email": True,
            "provider_trust_mfa": True,
            "references_are_chart_numbers": True,
            "chart_number_system": MRN,
        }.items():
            storage.save_settings(db, {key: value})
        with storage.write(db):
            from patientapp.domain import visits

            moment = datetime.now().replace(microsecond=0)
            made = visits.create(
                db,
                patient_ref="BENCH-1",
                appointment_at=min(moment + timedelta(hours=1), moment.replace(hour=23, minute=59)),
                psychiatrist_id=None,
                suggested_language="",
                extra_days=0,
                created_by=None,
                now=moment - timedelta(minutes=10),
            )
            visits.start(db, made.visit_id, language="en", version="2026.4", now=moment)
            visits.save_step(db, made.visit_id, {"T2": "Sleep."}, step=10, next_step=11, now=moment)
            assert visits.submit(db, made.visit_id, set(), moment)
    finally:
        db.conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="3 rounds, for the tests")
    args = parser.parse_args(argv)
    rounds = 3 if args.smoke else args.rounds
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        instance = folder / "instance"
        port = free_port()
        base = f"http://{HOST}:{port}"
        provider = OpenIDProvider(folder, base, accounts=ACCOUNTS, smart=EHR).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENTAPP_", "FLASK_"))}
        env.update(
            {
                "PATIENTAPP_INSTANCE": str(instance),
                "PATIENTAPP_SECRET_KEY": "bench",
                "PATIENTAPP_BASE_URL": base,
                **provider.app_env(),
            }
        )
        command = [sys.executable, "-m", "flask", "--app", "app", "serve"]
        command += ["--host", HOST, "--port", str(port)]
        try:
            with running(command, env, port, folder / "server.log", "/healthz"):
                prepare(instance, env)
                signs, sign_callbacks, launches, launch_callbacks = [], [], [], []
                for _ in range(rounds):
                    person, total, callback = sign_in(base)
                    signs.append(total)
                    sign_callbacks.append(callback)
                    total, callback = launch(person, base, provider.fhir_base)
                    launches.append(total)
                    launch_callbacks.append(callback)
        finally:
            provider.stop()
    print(f"rounds: {rounds} (each: a new browser signs in, then opens the one page from the EHR)")
    for label, values in (
        ("sign-in, whole round trip", signs),
        ("sign-in, the app's callback", sign_callbacks),
        ("SMART launch, whole round trip", launches),
        ("SMART launch, the app's callback", launch_callbacks),
    ):
        print(f"{label}: p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms")
    print(json.dumps({"rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
