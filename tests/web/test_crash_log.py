"""A crash on a page holding answers: the patient sees a calm page, the log no request data."""

from __future__ import annotations

import logging

from patientapp.domain import visits

ANSWER = "I stopped my lithium last week and nobody knows"


def test_an_unexpected_error_shows_the_generic_page_and_logs_no_request_data(
    app, patient, invitation, monkeypatch, caplog
):
    app.config["CATCH_ERRORS_IN_TESTS"] = True

    def broken_disk(_db, _visit_id, values, **_kwargs):
        raise RuntimeError(f"disk I/O error while saving {values}")

    monkeypatch.setattr(visits, "save_step", broken_disk)
    patient.start(invitation.token)
    with caplog.at_level(logging.ERROR):
        response = patient.post(
            "/step/1?note=private-query", {"action": "next", "T1": ["sad"], "T2": ANSWER}
        )
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Sorry, something went wrong on our side. Your earlier answers are saved." in page
    assert ANSWER not in page and "disk I/O" not in page
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unhandled RuntimeError on POST" in logged
    for private in (ANSWER, "disk I/O", "private-query", invitation.token):
        assert private not in logged
    session_cookie = patient.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert session_cookie.value not in logged
