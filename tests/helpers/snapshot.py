"""Every page, print view, text export, CSV and FHIR document for a fixed set of visits,
written to a folder: run it before and after a restructuring and compare the folders byte
for byte (`diff -r`). Behaviour that must not change is then proved, not hoped.

    python -m tests.helpers.snapshot OUT_FOLDER

Only the app factory, the command line and HTTP are used, so the script runs unchanged
on both sides of a move of modules. Randomness is seeded and the clock is fixed; the two
values that depend on the wall clock (a CSRF token's signature, a cookie's expiry) are
replaced by a placeholder.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import sys
import tempfile
from datetime import datetime
from pathlib import Path

_random = random.Random(20261206)  # noqa: S311 - a fixed sequence is the point


def _token_bytes(n: int | None = None) -> bytes:
    return _random.randbytes(32 if n is None else n)


secrets.token_bytes = _token_bytes
secrets.token_hex = lambda n=None: _token_bytes(n).hex()
secrets.token_urlsafe = lambda n=None: (
    __import__("base64").urlsafe_b64encode(_token_bytes(n)).rstrip(b"=").decode()
)
secrets.choice = _random.choice
secrets.randbelow = _random.randrange
os.urandom = _token_bytes

from patientapp import create_app  # noqa: E402
from tests.conftest import FULL_ANSWERS, Clock, csrf_from  # noqa: E402

CSRF_RE = re.compile(
    r'data-csrf="[^"]+"|'
    r'(name="csrf_token"[^>]*value=")[^"]+|(value=")[^"]+("[^>]*name="csrf_token")'
)
PASSWORD = "tulip-harbor-2026"  # the demo accounts' published password


def _placeholder(match: re.Match) -> str:
    if match.group(0).startswith("data-csrf"):
        return 'data-csrf="CSRF"'
    return (match.group(1) or match.group(2)) + "CSRF" + (match.group(3) or "")


class Snapshot:
    def __init__(self, out: Path, workdir: Path):
        self.out, self.count = out, 0
        self.clock = Clock(datetime(2026, 11, 25, 9, 0, 0))
        os.environ["PATIENTAPP_INSTANCE"] = str(workdir / "instance")
        os.environ["PATIENTAPP_WORKERS"] = "1"
        self.app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "snapshot-secret",
                "DATABASE": str(workdir / "snapshot.db"),
                "CLOCK": self.clock,
                "COMPILED_TRANSLATIONS": str(workdir / "mo"),
                "PASSWORD_HASHER": "fast",
                "HOLD_DATABASE_IN_USE": False,
                "MFA_REQUIRED_ROLES": (),
            }
        )

    def keep(self, name: str, response) -> str:
        body = response.get_data(as_text=True)
        self.count += 1
        kept = CSRF_RE.sub(_placeholder, body)
        header = f"{response.status_code} {response.headers.get('Content-Type')}\n"
        location = response.headers.get("Location")
        if location:
            header += f"Location: {location}\n"
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        (self.out / f"{self.count:03d}-{safe}.txt").write_text(header + kept, encoding="utf-8")
        return body

    def post(self, client, url: str, data: dict, name: str, page: str | None = None):
        html = client.get(page or url).get_data(as_text=True)
        response = client.post(url, data={"csrf_token": csrf_from(html), **data})
        self.keep(name, response)
        return response

    def run(self) -> int:
        runner = self.app.test_cli_runner()
        result = runner.invoke(args=["demo"])
        assert result.exit_code == 0, result.output
        staff = self.app.test_client()
        self.login(staff, "dr.rivera@example.org")
        admin = self.app.test_client()
        self.login(admin, "demo-admin@example.org")
        for lang in ("en", "es", "ar"):
            self.journey(staff, lang)
        self.empty_visit(staff)
        self.staff_pages(staff, admin)
        return self.count

    def login(self, client, email: str) -> None:
        html = client.get("/staff/login").get_data(as_text=True)
        response = client.post(
            "/staff/login",
            data={"csrf_token": csrf_from(html), "email": email, "password": PASSWORD},
        )
        assert response.status_code == 302, response.status_code

    def invite(self, staff, ref: str, language: str = "") -> str:
        response = self.post(
            staff,
            "/staff/invitations/new",
            {
                "patient_ref": ref,
                "day": "2026-11-25",
                "time": "14:00",
                "language": language,
                "psychiatrist": "2",
            },
            f"invite-{ref}",
        )
        location = response.headers["Location"]
        page = self.keep(f"invitation-{ref}", staff.get(location))
        return re.search(r"/v/([A-Za-z0-9_-]{20,})", page).group(1)

    def journey(self, staff, lang: str) -> None:
        token = self.invite(staff, f"S-{lang}", "" if lang == "en" else lang)
        patient = self.app.test_client()
        self.keep(f"{lang}-open", patient.get(f"/v/{token}", follow_redirects=True))
        if lang != "en":
            self.post(
                patient, "/language", {"lang": lang, "next": "/welcome"}, f"{lang}-lang", "/welcome"
            )
        self.keep(f"{lang}-welcome", patient.get("/welcome"))
        url = self.post(patient, "/welcome", {}, f"{lang}-welcome-post").headers["Location"]
        seen = 0
        while url.startswith("/step/") and seen < 40:
            seen += 1
            number = int(re.match(r"/step/(\d+)", url).group(1))
            name = f"{lang}-{seen:02d}-step{number}"
            self.keep(f"{name}-empty", patient.get(url))
            wrong = {"action": "next", "T1": ["worried", "tired", "sad", "angry"], "M4": "eleven"}
            self.post(patient, url, wrong, f"{name}-error")
            if number == 3 and "switched" not in locals():
                switched = "es" if lang != "es" else "en"
                self.post(patient, url, {"action": "lang", "lang": switched}, f"{name}-switch")
                self.keep(f"{name}-switched", patient.get(url))
                self.post(patient, url, {"action": "lang", "lang": lang}, f"{name}-switch-back")
            data = {"action": "next", **FULL_ANSWERS.get(number, {})}
            if number == 8 and lang == "es":
                data["S1"] = "nearly_every_day"
            response = self.post(patient, url, data, f"{name}-post")
            self.keep(f"{name}-answered", patient.get(url))
            url = response.headers.get("Location", "")
        self.keep(f"{lang}-review", patient.get("/review"))
        held = ["T2", "F2"] if lang == "ar" else []
        self.post(patient, "/review", {"action": "submit", "in_person": held}, f"{lang}-submit")
        self.keep(f"{lang}-thanks", patient.get("/thanks"))
        self.keep(f"{lang}-after", patient.get("/step/1"))

    def empty_visit(self, staff) -> None:
        token = self.invite(staff, "S-empty")
        patient = self.app.test_client()
        patient.get(f"/v/{token}")
        self.post(patient, "/welcome", {}, "empty-welcome")
        url, seen = "/step/1", 0
        while url.startswith("/step/") and seen < 40:
            seen += 1
            response = self.post(patient, url, {"action": "next"}, f"empty-{seen:02d}")
            url = response.headers.get("Location", "")
        self.keep("empty-review", patient.get("/review"))
        self.post(patient, "/review", {"action": "submit"}, "empty-submit")

    def staff_pages(self, staff, admin) -> None:
        board = self.keep("board", staff.get("/staff/"))
        self.keep("board-json", staff.get("/staff/board.json"))
        ids = sorted({int(n) for n in re.findall(r"/staff/visits/(\d+)/", board)})
        for visit_id in ids:
            base = f"/staff/visits/{visit_id}"
            for view in ("summary", "print", "summary.txt", "fhir.json", "invitation", "slip"):
                self.keep(f"visit{visit_id}-{view}", staff.get(f"{base}/{view}"))
        self.keep(
            "export-csv", admin.get("/staff/admin/export.csv?since=2026-11-01&until=2026-11-30")
        )
        self.keep("export-csv-default", admin.get("/staff/admin/export.csv"))
        self.keep("settings", admin.get("/staff/admin/settings"))
        self.keep("users", admin.get("/staff/admin/users"))
        page = self.post(admin, "/staff/admin/integrations", {"name": "Snapshot engine"}, "token")
        token = re.search(r"<code[^>]*>([A-Za-z0-9_.-]{30,})</code>", page.get_data(as_text=True))
        api = self.app.test_client()
        headers = {"Authorization": f"Bearer {token.group(1)}"} if token else {}
        for query in (
            "/api/fhir/Questionnaire/pre-visit-reflection",
            "/api/fhir/Questionnaire/reflection",
            "/api/fhir/QuestionnaireResponse",
            "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-01-01&_count=2",
            "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-01-01&_count=2&_page=3",
            "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25",
            "/api/fhir/QuestionnaireResponse?_count=abc",
        ):
            self.keep(f"api{query}", api.get(query, headers=headers))
        self.keep("audit", admin.get("/staff/admin/audit"))
        self.keep("account", staff.get("/staff/account"))
        self.keep("new-invitation", staff.get("/staff/invitations/new"))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        count = Snapshot(out, Path(work)).run()
    print(f"{count} documents written to {out}")


if __name__ == "__main__":
    main()
