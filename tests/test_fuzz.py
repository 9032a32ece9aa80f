"""Malformed requests to every route in app.url_map: no 5xx, and a sent visit's answers
never change.

A seeded generator (no new dependency): for each rule and method, as the right role,
another role, a patient in a visit and a logged-out client, it sends path values that
are huge, non-ASCII or Unicode digits, and forms or JSON bodies with wrong types, huge
values, Unicode, missing and duplicated fields and dates at the calendar's edges.
"""

from __future__ import annotations

import random

from conftest import Patient, csrf_from, login, make_invitation
from test_access import FORMS, clinic, url_of  # noqa: F401 - clinic is a fixture
from werkzeug.datastructures import MultiDict

from patientapp.web import get_db

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
]
ODD_JSON = [None, 1, 2**70, 1.5, True, [], [1], {"a": 1}, "text", ["a", "b"]]
ODD_PATH_INTS = [str(2**63), str(2**64), "9" * 40, "0", "²", "٣"]
ODD_TOKENS = ["é", "%C3%A9", "a" * 300, "..", "x y"]
FIELD_NAMES = ["action", "M1-²-name", "M1-0-name", "M1-99999-name", "T1", "T2", "S1", "lang"]
ACTIONS = ["next", "back", "add", "submit", "edit-²", "edit-99999999999999999999", "edit-1", ""]
REQUESTS_PER_RULE = 30


def odd_value(rng: random.Random) -> str:
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
            values = [odd_value(rng)]
        if rng.random() < 0.2:
            values = [*values, odd_value(rng)]  # duplicated
        pairs += [(name, v) for v in values]
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(FIELD_NAMES)
        pairs.append((name, rng.choice(ACTIONS) if name == "action" else odd_value(rng)))
    return pairs


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
        return rule.rule.replace("<int:number>", rng.choice([*ODD_PATH_INTS, "1", "9"]))
    if "filename" in rule.arguments:
        return "/static/" + rng.choice([*ODD_TOKENS, "app.css"])
    query = rng.choice(["", "?day=", "?until=", "?since=", "?page=", "?visit=", "?auto="])
    return url + (query + odd_value(rng) if query else "")


def test_malformed_requests_never_give_a_server_error(app, clinic):  # noqa: F811
    app.config["CATCH_ERRORS_IN_TESTS"] = True
    rng = random.Random(SEED)  # noqa: S311 - a repeatable test, not a secret
    clients = {}
    for role in ("frontdesk", "psychiatrist", "admin"):
        clients[role] = app.test_client()
        assert login(clients[role], f"{role}@example.org").status_code == 302
    clients["logged out"] = app.test_client()
    patient = Patient(app.test_client())
    patient.start(make_invitation(app, patient_ref="FUZZ-1").token)
    clients["patient"] = patient.client
    tokens = {
        name: csrf_from(
            c.get(
                "/staff/login"
                if name in ("logged out",)
                else "/staff/account"
                if name != "patient"
                else "/step/1"
            ).get_data(as_text=True)
        )
        for name, c in clients.items()
    }
    with app.app_context():
        before = (
            get_db().execute("SELECT * FROM answers WHERE visit_id = ?", [clinic.sent]).fetchall()
        )

    sent, failures = 0, []
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for _ in range(REQUESTS_PER_RULE):
                name = rng.choice(list(clients))
                if rule.endpoint == "auth.logout" and name != "logged out":
                    continue  # keep the other clients signed in
                client, url = clients[name], odd_url(rng, app, rule, clinic)
                base = FORMS.get(rule.endpoint, {"action": "next"})
                if callable(base):
                    base = base(app)
                headers = {"X-CSRFToken": tokens[name]}
                if method == "GET":
                    response = client.get(url)
                elif rng.random() < 0.3:
                    response = client.post(url, json=odd_json(rng, base), headers=headers)
                else:
                    pairs = [("csrf_token", tokens[name]), *odd_form(rng, base)]
                    response = client.post(url, data=MultiDict(pairs))
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
