"""Forms sent from another site or a sibling subdomain are refused, as a browser tells
(`Sec-Fetch-Site`), even with a valid token: the layer Flask-WTF's Referer check gave,
which the app's no-referrer policy leaves off (SECURITY.md)."""

from __future__ import annotations

import pytest

from tests.conftest import Patient, create_user, csrf_from, make_invitation


def sign_in(client, site: str | None):
    page = client.get("/staff/login")
    headers = {"Sec-Fetch-Site": site} if site else {}
    return client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "email": "desk@example.org",
            "password": "correct horse battery",
        },
        headers=headers,
    )


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_sign_in_posted_from_another_site_is_refused_with_a_valid_token(app, client, site):
    create_user(app, "desk@example.org", "frontdesk")
    refused = sign_in(client, site)
    assert refused.status_code == 400
    assert "This form expired" in refused.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302  # not signed in


@pytest.mark.parametrize("site", ["same-origin", "none", None])
def test_a_sign_in_from_this_site_or_a_client_without_the_header_goes_through(app, client, site):
    create_user(app, "desk@example.org", "frontdesk")
    assert sign_in(client, site).status_code == 302


def test_a_patients_answers_posted_from_a_sibling_subdomain_are_refused(app, client):
    invitation = make_invitation(app)
    patient = Patient(client)
    patient.start(invitation.token)
    html = client.get("/step/1").get_data(as_text=True)
    data = {"csrf_token": csrf_from(html), "action": "next", "T2": "planted words"}
    refused = client.post("/step/1", data=data, headers={"Sec-Fetch-Site": "same-site"})
    assert refused.status_code == 400
    assert "planted words" not in client.get("/step/1").get_data(as_text=True)
    sent = client.post("/step/1", data=data, headers={"Sec-Fetch-Site": "same-origin"})
    assert sent.status_code == 302
