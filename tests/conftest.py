"""Fixtures: a fresh app and database per test, an injectable clock, patient helpers."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta
from html.parser import HTMLParser

import pytest

from patientapp import create_app
from patientapp.cli import examples
from patientapp.db import storage
from patientapp.domain import accounts, passwords, visits
from patientapp.web.context import close_thread_db, get_db

TOKEN_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|'
    r'type="hidden" name="csrf_token" value="([^"]+)"|'
    r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"'
)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime):
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)


_opened: list[sqlite3.Connection] = []


def _tracking(real_connect):
    def connect(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        _opened.append(connection)
        return connection

    return connect


def _is_open(connection: sqlite3.Connection) -> bool:
    try:
        connection.total_changes  # noqa: B018 - raises once the connection is closed
    except tuple(driver.ProgrammingError for driver in storage.DRIVERS):
        return False
    return True


@pytest.fixture(autouse=True)
def connections_closed(monkeypatch):
    """Every SQLite connection a test opens (through the app or by hand) is closed by its
    end: set up before every other fixture, so it checks after their teardown."""
    for driver in storage.DRIVERS:  # plain sqlite3 and SQLCipher
        monkeypatch.setattr(driver, "connect", _tracking(driver.connect))
    yield
    left_open = [connection for connection in _opened if _is_open(connection)]
    _opened.clear()
    for connection in left_open:
        connection.close()
    assert not left_open, f"{len(left_open)} SQLite connection(s) left open by this test"


@pytest.fixture(scope="session")
def compiled_translations(tmp_path_factory):
    return tmp_path_factory.mktemp("mo")


@pytest.fixture
def clock():
    return Clock(datetime(2026, 11, 25, 9, 0, 0))


@pytest.fixture
def db_key():
    """The database key the app is given (None: a plain database; test_encryption sets one)."""
    return None


@pytest.fixture
def app(tmp_path, clock, compiled_translations, monkeypatch, db_key):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path / "instance"))
    # `serve` run in-process (waitress stubbed) must not fork the test runner.
    monkeypatch.setenv("PATIENTAPP_WORKERS", "1")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE": str(tmp_path / "test.db"),
            "DATABASE_KEY": db_key,
            "CLOCK": clock,
            "COMPILED_TRANSLATIONS": str(compiled_translations),
            "PASSWORD_HASHER": "fast",
            # One process runs every test's app: holding each database's in-use lock
            # would keep a file open per test (tests/ops/test_maintenance_in_use.py runs
            # real servers, which hold it).
            "HOLD_DATABASE_IN_USE": False,
            # Accounts made by create_user have no second factor: tests not about it
            # sign in with a password alone. tests/web/auth/test_mfa.py (the `mfa` fixture) puts
            # the production default back.
            "MFA_REQUIRED_ROLES": (),
        }
    )
    yield app
    close_thread_db()


@pytest.fixture
def db(app):
    """A connection of the test's own to the app's database, closed after the test."""
    connection = storage.connect(app.config["DATABASE"], key=app.config["DATABASE_KEY"])
    yield connection
    connection.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_from(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "no CSRF token on the page"
    return next(group for group in match.groups() if group)


class _InputTags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "input":
            self.found.append(dict(attrs))


def inputs(html: str, name: str) -> list[dict]:
    """The attributes of every <input name=...> on the page, in page order."""
    parser = _InputTags()
    parser.feed(html)
    return [tag for tag in parser.found if tag.get("name") == name]


def checked(html: str, name: str) -> list[str]:
    """The values of the ticked boxes or the chosen radio button called name."""
    return [tag.get("value", "") for tag in inputs(html, name) if "checked" in tag]


def input_value(html: str, name: str) -> str | None:
    """The value shown in the one text input called name."""
    [tag] = inputs(html, name)
    return tag.get("value")


def make_invitation(app, patient_ref="A-1001", when=None, language="", measures=()):
    with app.app_context():
        return visits.create(
            get_db(),
            patient_ref=patient_ref,
            appointment_at=when or app.config["CLOCK"]().replace(hour=14),
            psychiatrist_id=None,
            suggested_language=language,
            extra_days=0,
            created_by=None,
            now=app.config["CLOCK"](),
            measures=measures,
        )


def progress_of(item_id: str, hidden=frozenset(), measures=()) -> str:
    """The progress line of the screen asking this question ("Step 3 of 12"): screens
    are counted as the patient meets them (patient_forms.pages), for a visit asking the
    standard ``measures``."""
    from patientapp.patient import forms as patient_forms
    from patientapp.questionnaire import model as questionnaire

    q = questionnaire.default()
    unoffered = frozenset(q.not_asked({}, measures))
    shown = patient_forms.shown_pages(q, frozenset(hidden) | unoffered)
    return f"Step {shown.index(patient_forms.page_of(q, item_id)) + 1} of {len(shown)}"


class Patient:
    """Drives the patient pages like a person with a browser would."""

    def __init__(self, client):
        self.client = client

    def open(self, token: str):
        return self.client.get(f"/v/{token}", follow_redirects=True)

    def post(self, url: str, data: dict, follow=True):
        # A step whose questions all sit on an earlier step's screen sends its GET there.
        page = self.client.get(url, follow_redirects=True)
        assert page.status_code == 200, page.status_code
        payload = {"csrf_token": csrf_from(page.get_data(as_text=True))}
        payload.update(data)
        return self.client.post(url, data=payload, follow_redirects=follow)

    def start(self, token: str):
        self.open(token)
        return self.post("/welcome", {})

    def to_review(self):
        """On to "Check your answers" as a patient must: Next, with nothing more ticked,
        on every screen from the furthest one reached (the review sends a patient who
        has not passed the last screen back there). The review page."""
        page = self.client.get("/review", follow_redirects=True)
        for _ in range(40):
            if page.request.path == "/review":
                return page
            payload = {"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "next"}
            url = page.request.full_path.rstrip("?")
            page = self.client.post(url, data=payload, follow_redirects=True)
        raise AssertionError(f"the review was not reached: {page.request.path}")

    def send(self, **fields):
        """To the review, then "Send to my psychiatrist" (`fields`: e.g. in_person)."""
        self.to_review()
        return self.post("/review", {"action": "submit", **fields})


@pytest.fixture
def invitation(app):
    return make_invitation(app)


@pytest.fixture
def patient(client):
    return Patient(client)


FULL_ANSWERS = examples.LOWER_THE_DOSE_FORM  # step number -> the fields its form posts


def create_user(app, email, role, password="correct horse battery", name=""):
    from patientapp.db import storage

    with app.test_request_context():
        db = get_db()
        return storage.create_user(
            db,
            email=email,
            display_name=name or email.split("@")[0],
            password_hash=passwords.hash_password(password),
            role=role,
            now=app.config["CLOCK"](),
        )


def login(client, email, password="correct horse battery", code=None):
    """Sign in through the form; with `code`, also the second step (a TOTP or recovery
    code) when the account has a second factor."""
    page = client.get("/staff/login")
    response = client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": email,
            "password": password,
        },
    )
    if code is not None and response.headers.get("Location") == "/staff/login/code":
        response = send_code(client, code)
    return response


def send_code(client, code):
    page = client.get("/staff/login/code")
    return client.post(
        "/staff/login/code",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "code": code},
    )


def enrol(app, user_id, at=None) -> tuple[str, list[str]]:
    """Give an account a second factor as the My account page would; returns its secret
    and recovery codes. The code of the time step `at` (default: now) counts as used."""
    from patientapp.domain import mfa

    secret, codes = mfa.new_secret(), mfa.new_recovery_codes()
    moment = at or app.config["CLOCK"]()
    with app.test_request_context():
        db = get_db()
        storage.set_totp_pending(db, user_id, secret)
        storage.enrol_totp(
            db,
            user_id,
            step=mfa.matching_step(secret, mfa.current_code(secret, moment), moment),
            code_hashes=[passwords.hash_recovery_code(mfa.normalise(code)) for code in codes],
            now=moment,
        )
    return secret, codes


def staff_post(client, url, data=None, page="/staff/"):
    html = client.get(page).get_data(as_text=True)
    return client.post(url, data={"csrf_token": csrf_from(html), **(data or {})})


@pytest.fixture
def psychiatrist(app, client):
    create_user(app, "dr@example.org", "psychiatrist", name="Dr. Lee")
    assert login(client, "dr@example.org").status_code == 302
    return client


def finish_visit(app, answers=None, ref="A-1001", in_person=(), language=""):
    """A whole patient journey through the real pages; returns the invitation."""
    invitation = make_invitation(app, patient_ref=ref, language=language)
    patient = Patient(app.test_client())
    patient.start(invitation.token)
    for number in range(1, 11):
        patient.post(
            f"/step/{number}", {"action": "next", **(answers or FULL_ANSWERS).get(number, {})}
        )
    patient.post("/review", {"action": "submit", "in_person": list(in_person)})
    return invitation


def setup_link(app) -> str:
    """The one-time link that creates the first admin, as `flask serve` prints it."""
    with app.test_request_context():
        return f"/staff/setup/{accounts.issue_setup_token(get_db())}"


def post_setup(client, link: str, email="boss@example.org", password="long enough pw"):
    """Fill in and send the first-admin form behind a setup link."""
    page = client.get(link)
    assert page.status_code == 200
    return client.post(
        link,
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": email,
            "display_name": "Boss",
            "password": password,
            "confirm": password,
        },
    )
