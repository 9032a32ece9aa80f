"""The standard measures' totals (PHQ-9, GAD-7) over HTTP, as an integration engine gets
them: Observations beside the safety ones, read by id and found by the same searches,
counted in the Bundle's total, paged with their visit, described by the
CapabilityStatement; a held or skipped item leaves no total."""

from __future__ import annotations

from patientapp.db import storage
from tests.unit.test_fhir_measures import ANSWERS, answered_visit
from tests.web.api.test_fhir_api import get, is_outcome
from tests.web.api.test_integrations import new_token
from tests.web.api.test_record_resources import follow, resources

LOINC = "http://loinc.org"


def test_the_totals_are_found_read_and_counted_with_the_safety_values(
    app, admin, client, clock, db
):
    token = new_token(admin)  # first: the visits take 20 minutes, past the staff idle limit
    both = answered_visit(app, clock, ref="BOTH")
    held = answered_visit(app, clock, held=("PHQ9_3",), ref="HELD")
    none = answered_visit(app, clock, measures=(), ref="NONE")
    skipped = answered_visit(app, clock, {**ANSWERS, "GAD7_1": None}, ref="SKIPPED")
    bundle = get(client, token, "/api/fhir/Observation").get_json()
    found = resources(client, token, "/api/fhir/Observation")  # each fullUrl read back
    assert bundle["total"] == len(found) == 4 + 2 + 1 + 1
    uuid = {v: storage.get_visit(db, v).uuid for v in (both, held, none, skipped)}
    assert [o["id"] for o in found] == [
        f"{uuid[both]}-safety-1",
        f"{uuid[both]}-gad7-total",
        f"{uuid[both]}-phq9-total",
        f"{uuid[held]}-safety-1",
        f"{uuid[held]}-gad7-total",
        f"{uuid[none]}-safety-1",
        f"{uuid[skipped]}-safety-1",
        f"{uuid[skipped]}-phq9-total",
    ]
    values = {o["id"]: (o["code"]["coding"][0]["code"], o.get("valueInteger")) for o in found}
    assert values[f"{uuid[both]}-phq9-total"] == ("44261-6", 8)
    assert values[f"{uuid[both]}-gad7-total"] == ("70274-6", 16)
    assert values[f"{uuid[skipped]}-phq9-total"] == ("44261-6", 8)
    # Read by id: the visit's, audited as every Observation read.
    read = get(client, token, f"/api/fhir/Observation/{uuid[held]}-gad7-total")
    assert read.status_code == 200 and read.get_json()["interpretation"] == [{"text": "severe"}]
    assert read.headers["ETag"] == f'W/"{storage.get_visit(db, held).change_seq}"'
    reads = [r for r in db["audit_log"].rows if r["action"] == "fhir_observation_read"]
    assert {r["visit_id"] for r in reads} == {both, held, none, skipped}
    # No total, no Observation: the held PHQ-9, the visit that offered no measure.
    for missing in (
        f"{uuid[held]}-phq9-total",
        f"{uuid[none]}-gad7-total",
        f"{uuid[both]}-x-total",
    ):
        is_outcome(get(client, token, f"/api/fhir/Observation/{missing}"), 404)


def test_a_visit_s_totals_are_never_split_from_its_safety_values(app, admin, client, clock):
    token = new_token(admin)
    for n in range(3):
        clock.advance(minutes=1)
        answered_visit(app, clock, ref=f"P-{n}")
    first = get(client, token, "/api/fhir/Observation?_count=2").get_json()
    assert first["total"] == 9
    assert len(first["entry"]) == 3  # one visit's three, more than _count: never split
    entries = follow(client, token, "/api/fhir/Observation?_count=4")
    assert len(entries) == 9
    assert len({entry["resource"]["id"] for entry in entries}) == 9
    ranged = get(client, token, "/api/fhir/Observation?_lastUpdated=ge2099-01-01").get_json()
    assert ranged["total"] == 0 and "entry" not in ranged


def test_the_capability_statement_says_what_observation_holds(app, admin, client):
    token = new_token(admin)
    statement = get(client, token, "/api/fhir/metadata").get_json()
    [rest] = statement["rest"]
    [observation] = [r for r in rest["resource"] if r["type"] == "Observation"]
    text = observation["documentation"]
    for words in ("44260-8", "44261-6", "70274-6", "valueInteger", "-total", "held"):
        assert words in text, words
    [code_systems] = [r for r in rest["resource"] if r["type"] == "CodeSystem"]
    assert "PHQ-9, GAD-7" in code_systems["documentation"]


def test_a_total_without_any_safety_value_is_still_found(app, admin, client, clock, db):
    """GAD-7 alone, sent from the review without the safety question ever saved: its
    total is found by the search and counted, not only read by id (the search pages by
    the visits with safety values or measure totals)."""
    token = new_token(admin)
    without_s1 = {k: v for k, v in ANSWERS.items() if k != "S1"}
    only_gad = answered_visit(app, clock, without_s1, measures=("gad7",), ref="GAD-ONLY")
    assert storage.safety_answers(db, only_gad) == [] or all(
        a.value == "declined" for a in storage.safety_answers(db, only_gad)
    )
    with db.conn:
        db.execute("DELETE FROM safety_answers WHERE visit_id = ?", (only_gad,))
    bundle = get(client, token, "/api/fhir/Observation").get_json()
    uuid = storage.get_visit(db, only_gad).uuid
    assert bundle["total"] == 1
    assert [e["resource"]["id"] for e in bundle["entry"]] == [f"{uuid}-gad7-total"]
