"""The minutes promised on the welcome page and the slip (patientapp/questionnaire/timing.py):
the measured typical figure rounded up, the largest figure for a language the file does
not list, and a safe promise (logged) when the file is missing or malformed. That the
committed figures still match a measurement is tests/browser/test_minutes_promise.py."""

from __future__ import annotations

import json
import logging
import re

import pytest

from patientapp.i18n import LANGUAGES
from patientapp.questionnaire import timing
from tests.conftest import create_user, csrf_from, login


@pytest.fixture
def minutes_file(tmp_path, monkeypatch):
    """Write a minutes.json of one's own; promised_minutes reads it (once)."""
    path = tmp_path / "minutes.json"
    monkeypatch.setattr(timing, "MINUTES_PATH", path)
    timing.typical_minutes.cache_clear()

    def write(content) -> None:
        text = content if isinstance(content, str) else json.dumps(content)
        path.write_text(text, encoding="utf-8")
        timing.typical_minutes.cache_clear()

    yield write
    timing.typical_minutes.cache_clear()


def test_the_figure_is_rounded_up_never_down(minutes_file):
    minutes_file({"typical": {"en": 5.01, "es": 6.0, "fr": 6.99, "vi": 0.2, "ar": 5}})
    assert timing.promised_minutes("en") == 6  # 5.01 is more than 5 minutes
    assert timing.promised_minutes("es") == 6  # exactly 6
    assert timing.promised_minutes("fr") == 7
    assert timing.promised_minutes("vi") == 1  # never "about 0 minutes"
    assert timing.promised_minutes("ar") == 5


def test_a_language_the_file_does_not_list_gets_the_largest_figure(minutes_file):
    minutes_file({"typical": {"en": 5.2, "es": 6.4, "fr": 5.9}})
    assert timing.promised_minutes("zh_Hans") == 7
    assert timing.promised_minutes("pt_BR") == 7
    assert timing.promised_minutes("en") == 6


def test_the_file_is_read_once(minutes_file):
    minutes_file({"typical": {"en": 5.2}})
    assert timing.promised_minutes("en") == 6
    timing.MINUTES_PATH.write_text(json.dumps({"typical": {"en": 9.5}}), encoding="utf-8")
    assert timing.promised_minutes("en") == 6  # cached: no file read per page


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[5.4, 6.1]",
        json.dumps({"measured": "2026-12-06"}),
        json.dumps({"typical": [5.4]}),
        json.dumps({"typical": {}}),
        json.dumps({"typical": {"en": "5.4", "es": None, "fr": -1, "vi": True}}),
        '{"typical": {"en": NaN, "es": Infinity}}',
    ],
)
def test_a_malformed_file_promises_the_safe_default_and_says_so(minutes_file, caplog, content):
    minutes_file(content)
    with caplog.at_level(logging.WARNING, logger=timing.__name__):
        assert timing.promised_minutes("en") == timing.FALLBACK_MINUTES
        assert timing.promised_minutes("ar") == timing.FALLBACK_MINUTES
    [record] = [r for r in caplog.records if r.name == timing.__name__]
    assert "minutes.json" in record.getMessage()
    assert str(timing.FALLBACK_MINUTES) in record.getMessage()


def test_a_missing_file_promises_the_safe_default_and_says_so(minutes_file, caplog):
    with caplog.at_level(logging.WARNING, logger=timing.__name__):
        assert timing.promised_minutes("en") == timing.FALLBACK_MINUTES
    [record] = [r for r in caplog.records if r.name == timing.__name__]
    assert "missing" in record.getMessage() and "bench/screens.py --write" in record.getMessage()


def test_an_unusable_entry_is_skipped_and_that_language_gets_the_largest(minutes_file, caplog):
    minutes_file({"typical": {"en": 5.3, "es": "six", "fr": 6.2}})
    with caplog.at_level(logging.WARNING, logger=timing.__name__):
        assert timing.promised_minutes("es") == 7
        assert timing.promised_minutes("en") == 6
    [record] = [r for r in caplog.records if r.name == timing.__name__]
    assert "es" in record.getMessage()


def test_the_safe_default_is_not_shorter_than_the_old_promise():
    assert timing.FALLBACK_MINUTES >= 6


def test_the_committed_file_lists_every_shipped_language():
    data = json.loads(timing.MINUTES_PATH.read_text(encoding="utf-8"))
    assert {"measured", "model", "typical", "fullest"} <= set(data)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["measured"])
    for answers in ("typical", "fullest"):
        assert set(data[answers]) == set(LANGUAGES), f"{answers}: run bench/screens.py --write"
    figures = timing.typical_minutes(timing.MINUTES_PATH)
    assert figures == data["typical"]
    for code, figure in figures.items():
        assert figure <= data["fullest"][code]
        assert figure <= timing.promised_minutes(code) < figure + 1


# --- the app, with a broken file --------------------------------------------------------


def _slip(client) -> str:
    page = client.get("/staff/invitations/new")
    data = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "patient_ref": "MRN 51120",
        "day": "2026-11-25",
        "time": "14:30",
        "psychiatrist": "0",
        "language": "es",
    }
    html = client.post("/staff/invitations/new", data=data, follow_redirects=True)
    html = html.get_data(as_text=True)
    return client.get(re.search(r'href="(/staff/visits/\d+/slip)"', html).group(1)).get_data(
        as_text=True
    )


def test_the_welcome_and_the_slip_show_the_figure(minutes_file, app, client, patient, invitation):
    minutes_file({"typical": {"en": 4.2, "es": 5.6}})
    welcome = patient.open(invitation.token).get_data(as_text=True)
    assert '<li class="duration">It takes about 5 minutes.</li>' in welcome
    create_user(app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    slip = " ".join(_slip(client).split())
    # Spanish (the suggested language): its own figure, whatever the words say until
    # the sentence is translated.
    assert re.search(r"(?<!\d)6(?!\d)", slip.split("<h1>", 1)[1].split("</p>", 1)[0]), slip


def test_the_app_starts_and_promises_the_default_when_the_file_is_broken(
    minutes_file, app, client, patient, invitation, caplog
):
    minutes_file("{broken")
    with caplog.at_level(logging.WARNING, logger=timing.__name__):
        page = patient.open(invitation.token)
    assert page.status_code == 200
    expected = f"It takes about {timing.FALLBACK_MINUTES} minutes."
    assert expected in page.get_data(as_text=True)
    assert any("minutes.json" in r.getMessage() for r in caplog.records)
    # The log line names the file and the fallback only: nothing of the visit.
    for record in caplog.records:
        if record.name == timing.__name__:
            assert invitation.token not in record.getMessage()
