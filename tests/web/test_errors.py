"""Error pages per side: patients and staff each get their own words and layout."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import create_user, login

PATIENT_EXPIRED = (
    "This page was open too long or in another window, so for your "
    "privacy we couldn't save it. Please open your link again."
)
STAFF_EXPIRED = "This form expired, so nothing was saved. Please reload the page and try again."
PATIENT_CRASHED = "Your earlier answers are saved"


def is_patient_page(html: str) -> bool:
    return '<body class="patient">' in html and "Go to the start page" in html


def is_staff_page(html: str) -> bool:
    return '<body class="staff">' in html and "Back to the board" in html


def test_patient_form_that_expired_keeps_the_patient_message(patient, invitation):
    patient.start(invitation.token)
    response = patient.client.post("/step/1", data={"action": "next"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert PATIENT_EXPIRED in html
    assert is_patient_page(html) and "reload" not in html


def test_staff_login_form_that_expired_says_reload(client):
    response = client.post("/staff/login", data={"email": "dr@example.org", "password": "x"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert STAFF_EXPIRED in html
    assert is_staff_page(html) and "open your link" not in html


def test_staff_form_that_expired_keeps_the_staff_layout(app, psychiatrist):
    for url in ("/staff/invitations/new", "/staff/admin/users", "/staff/account"):
        response = psychiatrist.post(url, data={})
        html = response.get_data(as_text=True)
        assert response.status_code == 400, url
        assert STAFF_EXPIRED in html and is_staff_page(html), url


@pytest.mark.parametrize(
    ("url", "side"),
    [
        ("/staff/no-such-page", is_staff_page),
        ("/staff/admin/no-such-page", is_staff_page),
        ("/staff/visits/9999/summary", is_staff_page),  # a 404 raised inside a staff route
        ("/v/not/a/route", is_patient_page),
        ("/v/" + "x" * 101, is_patient_page),  # a 404 raised inside a patient route
        ("/no-such-page", is_patient_page),
        ("/staffroom", is_patient_page),
    ],
)
def test_not_found_shows_the_page_of_the_side_the_url_belongs_to(psychiatrist, url, side):
    response = psychiatrist.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "We couldn" in html and side(html)


@pytest.mark.parametrize(
    ("url", "side"), [("/staff/logout", is_staff_page), ("/language", is_patient_page)]
)
def test_wrong_method_shows_the_page_of_the_side(client, url, side):
    response = client.get(url)
    assert response.status_code == 405
    assert side(response.get_data(as_text=True))


def test_error_pages_keep_the_security_headers(client):
    for response in (client.get("/staff/nope"), client.get("/nope")):
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def crash(*_args, **_kwargs):
    raise RuntimeError("something deep inside broke")


@pytest.mark.parametrize(
    ("endpoint", "url", "side"),
    [("patient.start", "/start", is_patient_page), ("staff.board", "/staff/", is_staff_page)],
)
def test_a_crash_shows_the_page_of_the_side(app, client, monkeypatch, caplog, endpoint, url, side):
    app.config["CATCH_ERRORS_IN_TESTS"] = True
    monkeypatch.setitem(app.view_functions, endpoint, crash)
    with caplog.at_level(logging.ERROR):
        response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "something went wrong on our side" in html and side(html)
    assert (PATIENT_CRASHED in html) == (side is is_patient_page)
    assert "unhandled RuntimeError on GET" in caplog.text
    assert "deep inside" not in caplog.text


def test_a_crash_is_raised_in_tests_unless_asked_to_catch_it(app, client, monkeypatch):
    monkeypatch.setitem(app.view_functions, "staff.board", crash)
    with pytest.raises(RuntimeError):
        client.get("/staff/")


def test_staff_error_page_keeps_the_navigation_for_a_logged_in_user(app, client):
    create_user(app, "admin@example.org", "admin")
    login(client, "admin@example.org")
    html = client.get("/staff/admin/users/999").get_data(as_text=True)
    assert is_staff_page(html) and 'class="staff-nav"' in html
