"""What each patient page weighs as the app serves it, in every shipped language, with
the fullest answers a patient can give: its HTML plus the stylesheets and scripts that
page itself links (30 KB raw, 10 KB gzipped per page), and the page alone on the wire to a
phone that accepts gzip (14 KB: the first round trip of a new connection, ten TCP
segments). The staff pages' rules live in staff.css, which no patient page links."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from patientapp import i18n
from patientapp.domain import visits
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.browser.maximal_visit import maximal_answers
from tests.conftest import create_user, csrf_from, login, make_invitation, setup_link, staff_post

KB = 1024
BUDGET_RAW = 30 * KB
# The review lists every answer with its own "In person" control and the line that says
# only the topic will be shown (25 rows): 34 KB raw; compressed it stays within 10 KB.
# With both standard measures answered (15 more rows): 40 KB raw, still within 10 KB gzipped.
BUDGET_RAW_REVIEW = 40 * KB
BUDGET_GZIP = 10 * KB  # each file compressed on its own, level 6
BUDGET_WIRE = 14 * KB  # the page's own response as sent with Accept-Encoding: gzip

ASSET_RE = re.compile(r'<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"|<script[^>]+src="([^"]+)"')
LANG_RE = re.compile(r'<html lang="([^"]+)"')


def languages() -> list[str]:
    return i18n.available_languages()


def html_of(response) -> bytes:
    body = response.get_data()
    return gzip.decompress(body) if response.headers.get("Content-Encoding") == "gzip" else body


def _post(client, path: str, data: dict):
    page = html_of(client.get(path)).decode()
    return client.post(path, data={"csrf_token": csrf_from(page), **data})


def _store_answers(app, visit_id: int, language: str) -> None:
    """The fullest answers, stored section by section as the steps store them."""
    answers = maximal_answers()
    with app.app_context():
        db = get_db()
        moment = app.config["CLOCK"]()
        q = questionnaire.default()
        for number, section in enumerate(q.sections, start=1):
            assert visits.save_step(
                db,
                visit_id,
                {item.id: answers.get(item.id) for item in section.items},
                step=number,
                next_step=number + 1,  # the last one leads on to the review
                now=moment + timedelta(seconds=number),
                language=language,
            )


def phone_client(app, accept_encoding: str | None):
    client = app.test_client()
    if accept_encoding:
        client.environ_base["HTTP_ACCEPT_ENCODING"] = accept_encoding
    return client


def patient_pages(
    app, language: str, accept_encoding: str | None = "gzip, deflate, br"
) -> Iterator[tuple[str, object]]:
    """(name, response) for every patient page, each as a phone in `language` gets it
    (a phone's browser accepts gzip; None: a client that sends no Accept-Encoding)."""
    visitor = phone_client(app, accept_encoding)
    yield "code entry", visitor.get(f"/start?lang={language}")
    yield "code entry (error shown)", _post(visitor, "/start", {"code": "AAAA"})
    yield "link invalid", visitor.get("/v/not-a-real-invitation-token")
    yield "closed", visitor.get("/ended")

    # With both standard measures: weighed where they are asked (English).
    measures = ("gad7", "phq9")
    invitation = make_invitation(
        app, patient_ref=f"W-{language}", language=language, measures=measures
    )
    phone = phone_client(app, accept_encoding)
    assert phone.get(f"/v/{invitation.token}?lang={language}").status_code == 302
    yield "welcome", phone.get("/welcome")
    assert _post(phone, "/welcome", {}).status_code == 302
    too_many = {"T1": ["calm", "hopeful", "worried", "sad"], "action": "next"}
    yield "step 1 (error shown)", _post(phone, "/step/1", too_many)
    _store_answers(app, invitation.visit_id, language)
    asked = measures if language == "en" else ()
    for number, section in enumerate(questionnaire.default().sections, start=1):
        if section.items[0].instrument and section.id not in asked:
            continue  # not asked in this language: the step sends the patient on
        for screen in range(1, len(patient_forms.screens(section)) + 1):
            yield f"step {number} screen {screen}", phone.get(f"/step/{number}?screen={screen}")
    yield "safety", phone.get("/safety")
    yield "review", phone.get("/review")
    sent = _post(phone, "/review", {"action": "submit"})
    assert sent.status_code == 302, sent.status_code
    yield "thanks", phone.get("/thanks")
    yield "already sent", phone.get(f"/v/{invitation.token}?lang={language}")


def assets(client, html: str) -> list[tuple[str, bytes]]:
    """Every stylesheet and script the page links, with its body."""
    found = []
    for stylesheet, script in ASSET_RE.findall(html):
        url = (stylesheet or script).replace("&amp;", "&")
        response = client.get(url)
        assert response.status_code == 200, url
        found.append((url, response.get_data()))
        response.close()
    return found


Weights = dict[str, dict[str, tuple[int, int, list[str], int, str]]]


@pytest.fixture
def weighed(app) -> Weights:
    """language -> page -> (raw bytes, gzipped bytes, linked files, bytes on the wire,
    Content-Encoding)."""
    client = app.test_client()
    found: Weights = {}
    for language in languages():
        pages = found[language] = {}
        for name, response in patient_pages(app, language):
            assert response.status_code < 500, (language, name, response.status_code)
            html = html_of(response)
            text = html.decode()
            tag = LANG_RE.search(text).group(1)
            assert tag.replace("-", "_").startswith(language.split("_")[0]), (language, name)
            files = assets(client, text)
            raw = len(html) + sum(len(body) for _, body in files)
            zipped = sum(len(gzip.compress(part, 6)) for part in [html, *(b for _, b in files)])
            linked = [url.split("?")[0] for url, _ in files]
            wire = len(response.get_data())
            pages[name] = (raw, zipped, linked, wire, response.headers.get("Content-Encoding", ""))
    return found


def test_every_patient_page_stays_within_its_weight_budget(weighed):
    over = {
        f"{language} {name}": (raw, zipped)
        for language, pages in weighed.items()
        for name, (raw, zipped, *_) in pages.items()
        if raw > (BUDGET_RAW_REVIEW if name == "review" else BUDGET_RAW) or zipped > BUDGET_GZIP
    }
    assert not over, f"over the raw budget or {BUDGET_GZIP // KB} KB gzipped: {over}"
    assert set(weighed) == set(languages())
    assert {"review", "safety", "thanks", "closed", "welcome", "step 2 screen 1"} <= set(
        weighed["ar"]
    )


def test_patient_pages_link_the_shared_stylesheet_but_not_the_staff_one(weighed):
    for language, pages in weighed.items():
        for name, (_, _, files, *_) in pages.items():
            assert "/static/app.css" in files, (language, name)
            assert "/static/staff.css" not in files, (language, name)


def test_every_patient_page_fits_the_first_round_trip_gzipped(weighed):
    """As the app itself serves it to a phone, every patient page that answers 200 is
    gzipped and at most 14 KB on the wire; the few 4xx pages (a wrong code, a step with a
    mistake, a dead link) go out uncompressed and fit all the same."""
    wire = {
        f"{language} {name}": (size, encoding)
        for language, pages in weighed.items()
        for name, (*_, size, encoding) in pages.items()
    }
    over = {page: size for page, (size, _) in wire.items() if size > BUDGET_WIRE}
    assert not over, f"over {BUDGET_WIRE // KB} KB on the wire: {over}"
    plain = {"code entry (error shown)", "step 1 (error shown)", "link invalid"}
    for page, (_, encoding) in wire.items():
        expected = "" if page.split(" ", 1)[1] in plain else "gzip"
        assert encoding == expected, (page, encoding)


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_client_that_accepts_no_gzip_gets_every_page_as_it_is(app, language):
    for name, response in patient_pages(app, language, accept_encoding=None):
        assert "Content-Encoding" not in response.headers, name
        assert response.get_data().startswith(b"<!doctype html>"), name


def stylesheets(html: str) -> list[str]:
    return [s.split("?")[0] for s, _ in ASSET_RE.findall(html) if s]


def test_staff_pages_add_their_stylesheet_between_the_shared_and_the_print_one(app, client):
    login = client.get("/staff/login").get_data(as_text=True)
    assert stylesheets(login) == ["/static/app.css", "/static/staff.css", "/static/print.css"]
    setup = client.get(setup_link(app)).get_data(as_text=True)
    assert stylesheets(setup)[:2] == ["/static/app.css", "/static/staff.css"]
    href = next(s for s, _ in ASSET_RE.findall(login) if "staff.css" in s)
    assert "?v=" in href
    response = client.get(href.replace("&amp;", "&"))
    assert response.status_code == 200 and b".staff-nav" in response.get_data()
    assert "max-age=86400" in response.headers["Cache-Control"]
    response.close()


def test_the_printed_slip_links_the_staff_stylesheet(app, client):
    create_user(app, "desk@example.org", "frontdesk")
    assert login(client, "desk@example.org").status_code == 302
    data = {"patient_ref": "RB-7", "day": "2026-11-25", "time": "14:30", "psychiatrist": "0"}
    made = staff_post(client, "/staff/invitations/new", {**data, "language": ""})
    assert made.status_code == 302, made.status_code
    html = client.get(made.headers["Location"]).get_data(as_text=True)
    slip = client.get(re.search(r'href="(/staff/visits/\d+/slip)"', html).group(1))
    assert slip.status_code == 200, slip.status_code
    assert stylesheets(slip.get_data(as_text=True)) == ["/static/app.css", "/static/staff.css"]
