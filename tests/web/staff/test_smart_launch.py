"""The one page opened from the EHR (SMART App Launch 2.2, EHR launch), against a real
authorization server on loopback: oidc-provider (tests/oidc_provider) with a small layer
standing in for the EHR itself (server.mjs says what: its smart-configuration, the
launch context in its token response, its `aud` check, two FHIR reads). The person
signs in at the "EHR" on its real login page over HTTP.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App

from patientapp.db import storage
from patientapp.domain import visits
from patientapp.staff import smart as smart_module
from patientapp.web.context import get_db
from tests.conftest import create_user, login, make_invitation
from tests.helpers.oidc_provider import MRN, OpenIDProvider, available, sign_in_at_provider

APP_URL = "http://127.0.0.1:5998"


def patient(pid: str, chart: str | None) -> dict:
    identifiers = [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "000-00-0000"}]
    if chart:
        identifiers.append({"system": MRN, "value": chart})
    return {"resourceType": "Patient", "id": pid, "identifier": identifiers}


def encounter(eid: str, start: str) -> dict:
    return {"resourceType": "Encounter", "id": eid, "status": "arrived", "period": {"start": start}}


# What the EHR knows: each launch id's context, and the resources its FHIR API serves.
EHR = {
    "launches": {
        "one": {"patient": "p1", "encounter": "e1"},
        # SMART 2.2's fhirContext: a list; the Encounter reference counts, the rest is
        # ignored.
        "in-context": {
            "patient": "p1",
            "fhirContext": [
                {"canonical": "http://example.org/Questionnaire/intake|1"},
                {"reference": "Encounter/e1"},
                {"type": "something new"},
            ],
        },
        "today": {"patient": "p1"},
        "none": {"patient": "p2", "encounter": "e1"},
        "two": {"patient": "p3", "encounter": "e1"},
        "no-chart": {"patient": "p4", "encounter": "e1"},
        "no-patient": {"encounter": "e1"},
        "evening": {"patient": "p1", "encounter": "e2"},
        "wrong-type": {"patient": "p5", "encounter": "e1"},
        "gone": {"patient": "p9", "encounter": "e1"},  # the EHR has no such patient
        "mismatch": {"patient": "p1", "encounter": "e3"},  # e3 is p2's encounter
        "subject": {"patient": "p1", "encounter": "e4"},  # e4 names p1 as its subject
        "undated": {"patient": "p1", "encounter": "e5"},  # planned: no period yet
        "no-id": {"patient": "p6", "encounter": "e1"},  # the EHR's Patient has no id
    },
    "resources": {
        "Patient/p1": patient("p1", "RB-1187"),
        "Patient/p2": patient("p2", "RB-404"),
        "Patient/p3": patient("p3", "RB-22"),
        "Patient/p4": patient("p4", None),
        "Encounter/e1": encounter("e1", "2026-11-27T10:00:00-06:00"),
        "Encounter/e2": encounter("e2", "2026-11-28T02:30:00Z"),
        "Patient/p5": encounter("p5", "2026-11-27T10:00:00-06:00"),  # not a Patient
        "Patient/p6": {k: v for k, v in patient("p6", "RB-1187").items() if k != "id"},
        "Encounter/e3": {
            **encounter("e3", "2026-12-04T10:00:00-06:00"),
            "subject": {"reference": "Patient/p2"},
        },
        "Encounter/e4": {
            **encounter("e4", "2026-11-27T10:00:00-06:00"),
            "subject": {"reference": "Patient/p1/_history/2"},  # a version of p1
        },
        "Encounter/e5": {"resourceType": "Encounter", "id": "e5", "status": "planned"},
    },
}


@pytest.fixture(scope="module")
def ehr(tmp_path_factory):
    available()
    provider = OpenIDProvider(tmp_path_factory.mktemp("ehr"), APP_URL, smart=EHR).start()
    yield provider
    provider.stop()


@pytest.fixture
def smart_app(app, ehr):
    app.config.update(ehr.smart_config(), BASE_URL=APP_URL)
    with app.app_context():
        storage.save_settings(
            get_db(), {"references_are_chart_numbers": True, "chart_number_system": MRN}
        )
    sent = make_invitation(app, patient_ref="RB-1187", when=datetime(2026, 11, 27, 10, 0))
    with app.app_context():
        db, now = get_db(), app.config["CLOCK"]()
        visits.start(db, sent.visit_id, language="en", version="2026.4", now=now)
        visits.save_step(db, sent.visit_id, {"T2": "Sleep."}, step=10, next_step=11, now=now)
        assert visits.submit(db, sent.visit_id, set(), now)
    make_invitation(app, patient_ref="Rb-1187", when=datetime(2026, 12, 4, 10, 0))  # not sent
    make_invitation(app, patient_ref="RB-22", when=datetime(2026, 11, 27, 9, 0))
    make_invitation(app, patient_ref="RB-22", when=datetime(2026, 11, 27, 15, 30))
    return app


@pytest.fixture
def reader(smart_app, client):
    create_user(smart_app, "dr@example.org", "psychiatrist", name="Dr. Lee")
    assert login(client, "dr@example.org").status_code == 302
    return client


def visit_id(app, ref: str, day: str) -> int:
    with app.app_context():
        rows = get_db().execute(
            "SELECT id FROM visits WHERE patient_ref = ? AND appointment_at LIKE ?",
            (ref, f"{day}%"),
        )
        [(found,)] = rows.fetchall()
    return found


def audit(app) -> list[tuple[str, int | None, str]]:
    with app.app_context():
        return [(r["action"], r["visit_id"], r["detail"]) for r in storage.audit_entries(get_db())][
            ::-1
        ]


ONWARD = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')


def to_ehr(client, ehr, launch: str, iss: str | None = None) -> str:
    """The EHR opens the app; the app's page moves on to the EHR's authorization (a
    refresh, not a redirect: see smart.authorize): that address."""
    query = urlencode({"iss": iss or ehr.fhir_base, "launch": launch})
    response = client.get(f"/smart/launch?{query}")
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200, page.get_data(as_text=True)
    return unescape(ONWARD.search(page.get_data(as_text=True)).group(1))


def launched(client, ehr, launch: str, iss: str | None = None):
    """The EHR opens the app, the app sends the browser to the EHR's authorization, the
    person is signed in there, and the EHR sends the browser back: the app's answer."""
    callback = sign_in_at_provider(to_ehr(client, ehr, launch, iss), "dr-lee-at-the-ehr")
    parts = urlsplit(callback)
    return client.get(f"{parts.path}?{parts.query}")


def text(response) -> str:
    return response.get_data(as_text=True)


def test_exactly_one_match_opens_its_summary(smart_app, reader, ehr):
    response = launched(reader, ehr, "one")
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/staff/visits/{wanted}/summary"
    assert reader.get(response.headers["Location"]).status_code == 200
    assert (
        "smart_launch",
        wanted,
        f"1 found (EHR {ehr.fhir_base}, patient p1, encounter e1)",
    ) in audit(smart_app)
    assert ("summary_viewed", wanted, "") in [(a, v, "") for a, v, _ in audit(smart_app)]


def test_the_authorization_request_names_the_launch_the_ehr_and_pkce(smart_app, reader, ehr):
    address = urlsplit(to_ehr(reader, ehr, "one"))
    query = {k: v[0] for k, v in parse_qs(address.query).items()}
    assert f"{address.scheme}://{address.netloc}{address.path}" == f"{ehr.issuer}/auth"
    assert query["launch"] == "one"
    assert query["aud"] == ehr.fhir_base
    assert query["code_challenge_method"] == "S256"
    assert query["scope"] == "launch patient/Patient.rs patient/Encounter.rs"
    assert query["redirect_uri"] == APP_URL + "/staff/smart/callback"
    assert len(query["state"]) >= 20


def test_an_encounter_in_fhir_context_is_used_and_the_rest_ignored(smart_app, reader, ehr):
    response = launched(reader, ehr, "in-context")
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert response.headers["Location"] == f"/staff/visits/{wanted}/summary"


def test_without_an_encounter_today_is_the_day(smart_app, client, ehr, clock):
    # The later visit's day ("Rb-1187", matched ignoring case).
    clock.moment = datetime(2026, 12, 4, 8, 0)
    create_user(smart_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    response = launched(client, ehr, "today")
    wanted = visit_id(smart_app, "Rb-1187", "2026-12-04")
    # Not sent yet: its invitation, which says how far the patient got.
    assert response.headers["Location"] == f"/staff/visits/{wanted}/invitation"


def test_no_match_says_so(smart_app, reader, ehr):
    response = launched(reader, ehr, "none")
    assert response.status_code == 404
    page = text(response)
    assert (
        "No visit here matches this patient (chart number RB-404) on Friday, November 27, 2026"
        in page
    )
    assert (
        "smart_launch",
        None,
        f"0 found (EHR {ehr.fhir_base}, patient p2, encounter e1)",
    ) in audit(smart_app)


def test_two_matches_give_a_chooser_never_a_guess(smart_app, reader, ehr):
    response = launched(reader, ehr, "two")
    assert response.status_code == 200
    page = text(response)
    assert "2 visits here match this patient on Friday, November 27, 2026" in page
    for day_time in ("9:00", "3:30"):
        assert day_time in page
    first, second = (
        visit_id(smart_app, "RB-22", "2026-11-27T09"),
        visit_id(smart_app, "RB-22", "2026-11-27T15"),
    )
    # Not sent yet: each leads to its invitation, which says how far the patient got.
    assert f'href="/staff/visits/{first}/invitation"' in page
    assert f'href="/staff/visits/{second}/invitation"' in page
    assert (
        "smart_launch",
        None,
        f"2 found (EHR {ehr.fhir_base}, patient p3, encounter e1)",
    ) in audit(smart_app)


def test_a_patient_without_the_clinics_chart_number_opens_nothing(smart_app, reader, ehr):
    response = launched(reader, ehr, "no-chart")
    assert response.status_code == 502
    assert "smart_launch_failed" in [a for a, _, _ in audit(smart_app)]
    assert audit(smart_app)[-1][2].startswith("0 chart numbers on the EHR's patient")


def test_a_launch_without_a_patient_opens_nothing(smart_app, reader, ehr):
    response = launched(reader, ehr, "no-patient")
    assert response.status_code == 401
    assert audit(smart_app)[-1][2] == "no patient in the launch context"


def test_chart_numbers_must_be_set_up_first(smart_app, reader, ehr):
    with smart_app.app_context():
        storage.save_settings(get_db(), {"references_are_chart_numbers": False})
    response = launched(reader, ehr, "one")
    assert response.status_code == 502
    assert "Settings say that patient references are chart numbers" in text(response)


# --- what is refused -----------------------------------------------------------------------


def test_an_issuer_not_allowed_is_refused_before_anything(smart_app, reader):
    response = reader.get(
        "/smart/launch?" + urlencode({"iss": "https://ehr.attacker.example/fhir", "launch": "x"})
    )
    assert response.status_code == 403
    assert "does not take launches from that EHR" in text(response)
    assert audit(smart_app)[-1][::2] == ("smart_launch_failed", "issuer not allowed")
    # Nor can the authorize step be reached with it directly.
    direct = reader.get(
        "/staff/smart/authorize?"
        + urlencode({"iss": "https://ehr.attacker.example/fhir", "launch": "x"})
    )
    assert direct.status_code == 403


def test_a_bad_aud_is_refused_by_the_ehr_and_opens_nothing(smart_app, reader, ehr):
    # An allowed base whose discovery answers, but which is not the EHR's own FHIR base:
    # its authorization server refuses the `aud`.
    response = launched(reader, ehr, "one", iss=f"{ehr.issuer}/fhir2")
    assert response.status_code == 401
    assert "did not let this app read" in text(response)
    assert audit(smart_app)[-1][::2] == ("smart_launch_failed", "EHR answered invalid_request")


def test_a_replayed_callback_opens_nothing(smart_app, reader, ehr):
    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    assert reader.get(f"{callback.path}?{callback.query}").status_code == 302
    again = reader.get(f"{callback.path}?{callback.query}")
    assert again.status_code == 400
    assert audit(smart_app)[-1][::2] == ("smart_launch_failed", "no launch in progress")


def test_back_after_a_launch_says_the_launch_was_used_not_that_the_ehr_refused(
    smart_app, reader, ehr
):
    """Found on an EHR walk: Back to the callback after the page opened said "The EHR did
    not let this app read the patient's record"."""
    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    assert reader.get(f"{callback.path}?{callback.query}").status_code == 302
    page = text(reader.get(f"{callback.path}?{callback.query}"))
    assert "This launch from the EHR was already used." in page
    assert "did not let this app read" not in page


def test_an_encounter_of_another_patient_opens_nothing(smart_app, reader, ehr):
    """Found on an EHR walk: the launch's patient p1 (RB-1187) with an encounter whose
    subject is p2 opened RB-1187's page of that encounter's day, a day taken from
    another patient's record."""
    response = launched(reader, ehr, "mismatch")
    assert response.status_code == 502
    assert "did not let this app read" in text(response)
    assert audit(smart_app)[-1][::2] == (
        "smart_launch_failed",
        f"EHR's encounter is another patient's (EHR {ehr.fhir_base}, patient p1, encounter e3)",
    )
    # An encounter naming the launch's own patient (a version of it) opens the page.
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert launched(reader, ehr, "subject").headers["Location"] == f"/staff/visits/{wanted}/summary"


def test_an_encounter_without_a_start_opens_todays_visits_and_says_so(
    smart_app, client, ehr, clock
):
    clock.moment = datetime(2026, 12, 4, 8, 0)
    create_user(smart_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    response = launched(client, ehr, "undated")
    wanted = visit_id(smart_app, "Rb-1187", "2026-12-04")
    assert response.headers["Location"] == f"/staff/visits/{wanted}/invitation"
    assert audit(smart_app)[-1] == (
        "smart_launch",
        wanted,
        f"1 found (EHR {ehr.fhir_base}, patient p1, encounter e5; the encounter has no "
        "start: today's visits)",
    )


def test_a_patient_without_its_id_is_not_taken_for_the_one_asked(smart_app, reader, ehr):
    response = launched(reader, ehr, "no-id")
    assert response.status_code == 502
    assert audit(smart_app)[-1][2].startswith("EHR sent another Patient")


def test_aud_is_the_ehrs_iss_exactly_as_sent(smart_app, reader, ehr):
    """Found on an EHR walk: an iss ending in "/" went back as an aud without it, which
    an EHR comparing aud exactly refuses. The allowed list still matches it."""
    address = urlsplit(to_ehr(reader, ehr, "one", iss=ehr.fhir_base + "/"))
    assert parse_qs(address.query)["aud"] == [ehr.fhir_base + "/"]


def test_the_state_must_be_this_browsers(smart_app, reader, ehr):
    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    response = reader.get(f"{callback.path}?{urlencode(query | {'state': 'x' * 30})}")
    assert response.status_code == 400  # no launch of this browser's has that state
    assert audit(smart_app)[-1][::2] == ("smart_launch_failed", "no launch in progress")


def test_with_two_ehrs_a_callback_goes_only_to_the_ehr_its_launch_went_to(smart_app, reader, ehr):
    first = to_ehr(reader, ehr, "one")  # to the EHR at /fhir
    to_ehr(reader, ehr, "one", iss=f"{ehr.origin}/fhir2")  # then another allowed one
    callback = urlsplit(sign_in_at_provider(first, "dr"))
    response = reader.get(f"{callback.path}?{callback.query}")
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert response.headers["Location"] == f"/staff/visits/{wanted}/summary"
    assert audit(smart_app)[-1] == (
        "smart_launch",
        wanted,
        f"1 found (EHR {ehr.fhir_base}, patient p1, encounter e1)",
    )


def test_an_encounter_time_with_an_offset_is_read_in_the_clinics_day(smart_app, client, ehr):
    with smart_app.app_context():
        storage.save_settings(get_db(), {"time_zone": "America/Chicago"})
    create_user(smart_app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    # 02:30 UTC on the 28th is 20:30 on the 27th in Chicago: the visit of the 27th.
    response = launched(client, ehr, "evening")
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert response.headers["Location"] == f"/staff/visits/{wanted}/summary"


def test_a_resource_of_another_type_opens_nothing(smart_app, reader, ehr):
    response = launched(reader, ehr, "wrong-type")
    assert response.status_code == 502
    assert audit(smart_app)[-1][2].startswith("EHR sent no Patient")


def test_someone_not_signed_in_signs_in_here_first(smart_app, client, ehr):
    create_user(smart_app, "dr@example.org", "psychiatrist")
    response = client.get("/smart/launch?" + urlencode({"iss": ehr.fhir_base, "launch": "one"}))
    assert urlsplit(response.headers["Location"]).path == "/staff/login"
    after = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
    assert after.startswith("/staff/smart/authorize?")
    page = client.get(response.headers["Location"])
    from tests.conftest import csrf_from

    signed = client.post(
        response.headers["Location"],
        data={
            "csrf_token": csrf_from(text(page)),
            "email": "dr@example.org",
            "password": "correct horse battery",
        },
    )
    assert signed.headers["Location"] == after
    page = client.get(after)
    onward = unescape(ONWARD.search(page.get_data(as_text=True)).group(1))
    callback = urlsplit(sign_in_at_provider(onward, "dr"))
    opened = client.get(f"{callback.path}?{callback.query}")
    wanted = visit_id(smart_app, "RB-1187", "2026-11-27")
    assert opened.headers["Location"] == f"/staff/visits/{wanted}/summary"


def test_front_desk_cannot_open_a_summary_from_the_ehr(smart_app, client, ehr):
    create_user(smart_app, "desk@example.org", "frontdesk")
    login(client, "desk@example.org")
    response = client.get("/smart/launch?" + urlencode({"iss": ehr.fhir_base, "launch": "one"}))
    assert client.get(response.headers["Location"]).status_code == 404


def test_the_page_stays_out_of_frames_unless_the_clinic_allows_its_ehr(smart_app, reader):
    summary = f"/staff/visits/{visit_id(smart_app, 'RB-1187', '2026-11-27')}/summary"
    page = reader.get(summary)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    smart_app.config["FRAME_ANCESTORS"] = "https://ehr.clinic.example javascript:alert(1)"
    page = reader.get(summary)
    assert "frame-ancestors https://ehr.clinic.example;" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    # Nothing else: not the board, an account's page, the sign-in or a patient's page.
    for other in ("/staff/", "/staff/account", "/staff/login", "/start"):
        headers = reader.get(other).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], other
        assert headers["X-Frame-Options"] == "DENY", other


def test_launches_are_off_until_configured(app, client):
    assert client.get("/smart/launch?iss=x&launch=y").status_code == 404


# --- what the EHR may get wrong ------------------------------------------------------------


def test_an_ehr_that_cannot_be_reached_is_said_and_audited(smart_app, reader):
    from tests.helpers.oidc_provider import free_port

    down = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there
    smart_app.config["SMART_ISSUERS"] += f" {down}"
    response = reader.get("/smart/launch?" + urlencode({"iss": down, "launch": "one"}))
    page = reader.get(response.headers["Location"])
    assert page.status_code == 503
    assert "did not let this app read" in text(page)
    assert audit(smart_app)[-1][::2] == ("smart_launch_failed", "EHR unreachable")


def test_a_launch_id_too_long_or_missing_opens_nothing(smart_app, reader, ehr):
    for launch in ("", "x" * 1001):
        query = urlencode({"iss": ehr.fhir_base, "launch": launch})
        assert reader.get(f"/smart/launch?{query}").status_code == 400
        assert reader.get(f"/staff/smart/authorize?{query}").status_code == 403


def test_the_ehrs_refusal_and_a_wrong_issuer_are_refusals(smart_app, reader, ehr):
    address = to_ehr(reader, ehr, "one")
    state = parse_qs(urlsplit(address).query)["state"][0]
    refused = reader.get(
        "/staff/smart/callback?" + urlencode({"error": "access_denied", "state": state})
    )
    assert refused.status_code == 401
    assert audit(smart_app)[-1][2] == "EHR answered access_denied"
    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    response = reader.get(f"{callback.path}?{urlencode(query | {'iss': 'https://other'})}")
    assert response.status_code == 401
    assert audit(smart_app)[-1][2] == "wrong issuer in the response"


def test_a_patient_the_ehr_does_not_have_opens_nothing(smart_app, reader, ehr):
    response = launched(reader, ehr, "gone")
    assert response.status_code == 502
    assert audit(smart_app)[-1][2].startswith("EHR answered 404 for Patient")


def test_the_clinic_day_of_every_form_of_a_fhir_date_time(smart_app):
    from datetime import date

    from patientapp.staff.smart import _clinic_day, _encounter_in

    with smart_app.test_request_context():
        assert _clinic_day("2026-11-27") == date(2026, 11, 27)
        assert _clinic_day("2026-11-27T23:30:00") == date(2026, 11, 27)  # no offset
        assert _clinic_day("2026-11") is None
        assert _clinic_day("not a date") is None
    assert _encounter_in("Encounter/e1") is None  # not a list
    assert _encounter_in(["Encounter/e1", {"reference": "Encounter/bad id!"}]) is None
    assert _encounter_in([{"reference": "Patient/p1"}, {"reference": "Encounter/e7"}]) == "e7"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OAuthError("invalid_grant"), "token refused: invalid_grant"),
        (requests.ConnectionError("down"), "EHR unreachable"),
        (ValueError("not JSON"), "EHR's answer unreadable: ValueError"),
        # Authlib's record of the state is gone (an hour passed): never a guess either.
        (MismatchingStateError(), "state does not match this browser's launch"),
    ],
    ids=["refused", "down", "unreadable", "state expired"],
)
def test_every_way_the_ehrs_token_step_fails_is_a_refusal(
    smart_app, reader, ehr, monkeypatch, error, reason
):
    def failing(self, **kwargs):
        raise error

    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    monkeypatch.setattr(FlaskOAuth2App, "authorize_access_token", failing)
    response = reader.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 401
    assert audit(smart_app)[-1][2] == reason


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("down", "EHR unreachable"),
        ("not json", "EHR sent no JSON for Patient"),
        ("other id", "EHR sent another Patient"),
    ],
)
def test_what_the_ehrs_fhir_api_may_answer_wrongly(
    smart_app, reader, ehr, monkeypatch, answer, reason
):

    class Answer:
        status_code = 200

        def json(self):
            if answer == "not json":
                raise ValueError("Expecting value")
            return {"resourceType": "Patient", "id": "p-other"}

    def get(url, **kwargs):
        if answer == "down":
            raise requests.ConnectionError("refused")
        return Answer()

    callback = urlsplit(sign_in_at_provider(to_ehr(reader, ehr, "one"), "dr"))
    monkeypatch.setattr(smart_module.requests, "get", get)
    response = reader.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 502
    assert audit(smart_app)[-1][2].startswith(reason)


def test_refused_launches_from_one_address_cannot_fill_the_audit_log(smart_app, client):
    smart_app.config["UNSIGNED_AUDIT_PER_CLIENT"] = 2
    query = urlencode({"iss": "https://ehr.attacker.example/fhir", "launch": "x"})
    answers = [client.get(f"/smart/launch?{query}").status_code for _ in range(3)]
    assert answers == [403, 403, 429]
    assert [a for a, _, _ in audit(smart_app)].count("smart_launch_failed") == 2
