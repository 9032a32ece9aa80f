"""An integration engine's sync through the FHIR API, as a client drives it: follow the
`next` links page after page while visits change, then poll for what changed since."""

from __future__ import annotations

from urllib.parse import urlsplit

from patientapp.domain import visits
from patientapp.web.context import get_db
from tests.conftest import create_user, finish_visit
from tests.web.api.test_integrations import bearer, new_token

SEARCH = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T00:00:00Z&_count=2"


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def follow(client, token, url, between=None):
    """Every entry of a search, following next links; `between(n)` runs after page n."""
    entries, pages = [], 0
    while url:
        response = client.get(url, headers=bearer(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        bundle = response.get_json()
        entries += bundle.get("entry", [])
        pages += 1
        if between:
            between(pages)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = local(following[0]) if following else None
    return entries


def test_a_visit_reviewed_between_pages_is_neither_lost_nor_repeated(app, admin, client, clock):
    """Issue 22: pages were LIMIT/OFFSET over the change order; a visit marked reviewed
    after page 1 moved to the end, everything behind it moved up one place, and the visit
    at the start of page 2 was never returned."""
    user = create_user(app, "dr@example.org", "psychiatrist")
    sent = []
    for n in range(5):
        sent.append(finish_visit(app, ref=f"P-{n}").visit_id)
        clock.advance(minutes=1)
    token = new_token(admin)

    def review_first(page):
        if page == 1:
            with app.app_context():
                assert visits.mark_reviewed(get_db(), sent[0], user, clock())
            clock.advance(minutes=1)

    entries = follow(client, token, SEARCH, review_first)
    versions = [(e["resource"]["id"], e["resource"]["meta"]["lastUpdated"]) for e in entries]
    ids = [resource_id for resource_id, _version in versions]
    assert len(set(ids)) == 5, versions  # every visit arrives
    assert len(set(versions)) == len(versions), versions  # no version twice
    # The reviewed visit may come twice (before and after its change), no other one.
    assert sorted(ids.count(i) for i in set(ids))[:4] == [1, 1, 1, 1], versions


def test_a_sync_then_polls_without_missing_or_repeating_a_change(app, admin, client, clock):
    """Follow the next links to the end, then poll `_lastUpdated=gt<newest seen>`: each
    change comes exactly once, even when every change falls in the same second (the
    clock here never moves), and one made while the engine pages is read in that sync."""
    user = create_user(app, "dr@example.org", "psychiatrist")
    sent = [finish_visit(app, ref=f"P-{n}").visit_id for n in range(6)]
    token = new_token(admin)

    def review(visit_id):
        with app.app_context():
            assert visits.mark_reviewed(get_db(), visit_id, user, clock())

    def during(page):
        if page == 2:
            review(sent[5])  # not read yet: it moves behind the cursor, read once, later

    first = follow(client, token, SEARCH, during)
    versions = [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in first]
    assert len(versions) == len(set(versions)) == 6
    newest = max(e["resource"]["meta"]["lastUpdated"] for e in first)
    poll = "/api/fhir/QuestionnaireResponse?_lastUpdated=gt" + newest.replace("+", "%2B")
    assert follow(client, token, poll) == []
    review(sent[2])
    [again] = follow(client, token, poll)
    assert again["resource"]["id"] == first[2]["resource"]["id"]
    assert again["resource"]["meta"]["lastUpdated"] > newest
