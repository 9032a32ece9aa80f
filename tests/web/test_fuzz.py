"""Malformed requests to every route in app.url_map: no 5xx, and a sent visit's answers
never change.

A seeded generator (no new dependency): for each rule and method, as the right role,
another role, a patient in a visit and a logged-out client, it sends path values that
are huge, non-ASCII or Unicode digits, and forms or JSON bodies with wrong types, huge
values, Unicode, missing and duplicated fields and dates at the calendar's edges. An
integration with a live token sends the FHIR search odd parameters.

The shapes a 10,000-request run once found giving a 500 (issue 19: a Unicode digit in a
medicine row's field name on step 2 and its draft, a time zone naming a folder of the zone
database or 300 characters long, _count=², _page=², an instant past the calendar's end in
UTC) are in the generator, and each is also sent once on purpose, among odd values, by a
client the route serves, so a change of seed cannot leave one out.
"""

from __future__ import annotations

import random
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from patientapp.domain import api_tokens
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import FULL_ANSWERS, Patient, csrf_from, login, make_invitation
from tests.web.test_access import FORMS, clinic, url_of  # noqa: F401 - clinic is a fixture

SEED = 20261202
ODD_TEXT = [
    "",
    " ",
    "x" * 100_000,
    "é",
    "²",
    "٣",
    "\x00",
    "line\r\nSAFETY: faked",
    "\u2028",
    "<script>alert(1)</script>",
    "9" * 40,
    "-1",
    "1e309",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "25:61",
    "%",
    "../../etc/passwd",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "Europe",
    "Etc",
    "z" * 300,
    '"><img/src=x/onerror=alert(44)>',
]
# Issue 19's shapes, by what reads them.
ODD_ROW_NAMES = ["M1-²-name", "M1-²-feeling", "M1-²", "M1-٣-name", f"M1-{'9' * 5000}-name"]
ODD_ZONES = ["Europe", "Etc", "America/", "z" * 300, "Europe/" * 40]
ODD_INSTANTS = [
    "ge9999-12-31T23:59:59-14:00",
    "ge0001-01-01T00:00:00+14:00",
    "ge0001-01-01",
    "ge9999-12-31",
    "ge2026-11-25T00:00:00Z",
    "ge²⁰²⁶-11-25",
    "ge",
]
ODD_NUMBERS = ["²", "٣", "0", "-1", "1", "500", "501", "1.5", "9" * 5000, ""]
ODD_JSON = [None, 1, 2**70, 1.5, True, [], [1], {"a": 1}, "text", ["a", "b"]]
ODD_PATH_INTS = [str(2**63), str(2**64), "9" * 40, "0", "²", "٣"]
ODD_TOKENS = ["é", "%C3%A9", "a" * 300, "..", "x y"]
FIELD_NAMES = [
    "action",
    *ODD_ROW_NAMES,
    "M1-0-name",
    "M1-99999-name",
    "T1",
    "T2",
    "S1",
    "lang",
    "time_zone",
]
ACTIONS = ["next", "back", "add", "submit", "edit-²", "edit-99999999999999999999", "edit-1", ""]
REQUESTS_PER_RULE = 30
STEP_2 = {"action": "next", **FULL_ANSWERS[2]}
FUZZ_FORMS = {
    **FORMS,
    "admin.settings": {**FORMS["admin.settings"], "time_zone": "Europe/Paris"},
    "patient.step": STEP_2,
    "patient.draft": STEP_2,
    "staff.acknowledge": {"note": "spoke with the patient at the desk", "return_to": "summary"},
}


def odd_value(rng: random.Random, name: str = "") -> str:
    if name == "time_zone" and rng.random() < 0.5:
        return rng.choice(ODD_ZONES)
    return rng.choice(ODD_TEXT)


def odd_form(rng: random.Random, base: dict) -> list[tuple[str, str]]:
    """A form body as pairs: some fields missing, some doubled, some values odd."""
    pairs = []
    for name, value in base.items():
        roll = rng.random()
        if roll < 0.2:
            continue  # missing
        values = value if isinstance(value, list) else [value]
        if roll < 0.6:
            values = [odd_value(rng, name)]
        if rng.random() < 0.2:
            values = [*values, odd_value(rng, name)]  # duplicated
        pairs += [(name, v) for v in values]
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(FIELD_NAMES)
        pairs.append((name, rng.choice(ACTIONS) if name == "action" else odd_value(rng, name)))
    return pairs


def odd_search(rng: random.Random) -> str:
    """A FHIR search query: each parameter odd, ordinary or left out."""
    choices = {
        "_lastUpdated": [*ODD_INSTANTS, odd_value(rng)],
        "_count": [*ODD_NUMBERS, odd_value(rng)],
        "_page": [*ODD_NUMBERS, odd_value(rng)],
    }
    query = {name: rng.choice(values) for name, values in choices.items() if rng.random() < 0.8}
    return "?" + urlencode(query)


def odd_json(rng: random.Random, base: dict):
    if rng.random() < 0.1:
        return rng.choice(ODD_JSON)
    body = {name: rng.choice(ODD_JSON) for name in base}
    body[rng.choice(FIELD_NAMES)] = rng.choice(ODD_JSON)
    return body


def odd_url(rng: random.Random, app, rule, place) -> str:
    buildable = not rule.arguments - {"visit_id", "user_id", "token_id"}
    url = url_of(app, rule, place) if buildable else None
    for name in ("visit_id", "user_id", "token_id"):
        if name in rule.arguments and rng.random() < 0.6:
            return rule.rule.replace(f"<int:{name}>", rng.choice(ODD_PATH_INTS))
    if "resource_id" in rule.arguments:
        return rule.rule.replace("<resource_id>", rng.choice([*ODD_TOKENS, "reflection"]))
    if "token" in rule.arguments:
        return rule.rule.replace("<token:token>", rng.choice(ODD_TOKENS))
    if "number" in rule.arguments:
        return rule.rule.replace("<int:number>", rng.choice([*ODD_PATH_INTS, "1", "2", "2", "9"]))
    if "filename" in rule.arguments:
        return "/static/" + rng.choice([*ODD_TOKENS, "app.css"])
    if rule.endpoint == "api.response_search":
        return url + odd_search(rng)
    query = rng.choice(["", "?day=", "?until=", "?since=", "?page=", "?visit=", "?auto="])
    return url + (query + odd_value(rng) if query else "")


def send(
    rng: random.Random, client, token: str, headers: dict, method: str, url: str, base, extra=()
):
    """One request: a GET, or a POST of an odd JSON body or odd form; the pairs in extra go
    first in the form, so a field read once (WTForms takes the first value) reads them."""
    if method == "GET":
        return client.get(url, headers=headers)
    if not extra and rng.random() < 0.3:
        body = odd_json(rng, base)
        return client.post(url, json=body, headers={**headers, "X-CSRFToken": token})
    named = {name for name, _value in extra}
    rest = odd_form(rng, {k: v for k, v in base.items() if k not in named})
    if extra:  # short enough that no size limit turns the request away before it is read
        rest = [(name, value) for name, value in rest if len(value) <= 1000]
    pairs = [("csrf_token", token), *extra, *rest]
    return client.post(url, data=MultiDict(pairs), headers=headers)


def medicine_screen() -> str:
    """The screen of step 2 that holds the medicine list (M1)."""
    screens = patient_forms.screens(questionnaire.default().sections[1])
    return str(next(n for n, items in enumerate(screens, 1) if any(i.id == "M1" for i in items)))


def issue_19_requests(rng: random.Random):
    """(client, method, url, form, pairs that go first) carrying each shape of issue 19."""
    screen = ("screen", medicine_screen())
    for name in ODD_ROW_NAMES:
        # The whole step (no screen named), the medicine list's screen, and its draft.
        for url, named in (("/step/2", []), ("/step/2", [screen]), ("/step/2/draft", [screen])):
            yield "patient", "POST", url, STEP_2, [(name, odd_value(rng)), *named]
    for zone in ODD_ZONES:
        form = FUZZ_FORMS["admin.settings"]
        yield "admin", "POST", "/staff/admin/settings", form, [("time_zone", zone)]
    search = "/api/fhir/QuestionnaireResponse?"
    for instant in ODD_INSTANTS:
        yield "integration", "GET", search + urlencode({"_lastUpdated": instant}), {}, []
    for param in ("_count", "_page"):
        for number in ODD_NUMBERS:
            query = {"_lastUpdated": "ge2026-11-25T00:00:00Z", param: number}
            yield "integration", "GET", search + urlencode(query), {}, []


def test_malformed_requests_never_give_a_server_error(app, clinic):  # noqa: F811
    app.config["CATCH_ERRORS_IN_TESTS"] = True
    app.config["API_REQUESTS_PER_MINUTE"] = 1_000_000  # the integration is never throttled
    rng = random.Random(SEED)  # noqa: S311 - a repeatable test, not a secret
    clients = {}
    for role in ("frontdesk", "psychiatrist", "admin"):
        clients[role] = app.test_client()
        assert login(clients[role], f"{role}@example.org").status_code == 302
    clients["logged out"] = app.test_client()
    patient = Patient(app.test_client())
    patient.start(make_invitation(app, patient_ref="FUZZ-1").token)
    patient.post("/step/1", {"action": "next"})  # step 2, the medicine list, is open to it
    clients["patient"] = patient.client
    clients["integration"] = app.test_client()
    with app.app_context():
        _token_id, secret = api_tokens.create_token(get_db(), "Fuzz", None, app.config["CLOCK"]())
    auth = {"integration": {"Authorization": f"Bearer {secret}"}}
    pages = {"logged out": "/staff/login", "patient": "/step/1"}
    tokens = {"integration": ""}  # the API takes no CSRF token: no cookie gets it in
    for name, client in clients.items():
        if name != "integration":
            page = client.get(pages.get(name, "/staff/account"))
            tokens[name] = csrf_from(page.get_data(as_text=True))
    with app.app_context():
        before = (
            get_db().execute("SELECT * FROM answers WHERE visit_id = ?", [clinic.sent]).fetchall()
        )

    sent, failures = 0, []
    for name, method, url, base, extra in issue_19_requests(rng):
        response = send(
            rng, clients[name], tokens[name], auth.get(name, {}), method, url, base, extra
        )
        response.close()
        sent += 1
        # Each reached the code that reads it: the client was let in.
        assert response.status_code not in (401, 403, 404, 413), (response.status_code, url[:80])
        if response.status_code >= 500:
            failures.append((response.status_code, name, method, url[:80], extra[:1]))

    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for _ in range(REQUESTS_PER_RULE):
                name = rng.choice(list(clients))
                if rule.endpoint == "auth.logout" and name != "logged out":
                    continue  # keep the other clients signed in
                client, url = clients[name], odd_url(rng, app, rule, clinic)
                base = FUZZ_FORMS.get(rule.endpoint, {"action": "next"})
                if callable(base):
                    base = base(app)
                response = send(rng, client, tokens[name], auth.get(name, {}), method, url, base)
                response.close()
                sent += 1
                if response.status_code >= 500:
                    failures.append((response.status_code, name, method, url[:80]))
    with app.app_context():
        after = (
            get_db().execute("SELECT * FROM answers WHERE visit_id = ?", [clinic.sent]).fetchall()
        )
    print(f"fuzz: {sent} requests, {len(failures)} server errors")
    assert sent > 500
    assert not failures, failures[:10]
    assert after == before
