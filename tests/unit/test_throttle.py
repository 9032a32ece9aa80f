"""The one throttle module (patientapp/domain/throttle.py) against a real database: windows fill
and slide with the clock, tries are claimed before they are checked and released when
right, locks begin and end, and the API counts requests, not failures."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from patientapp.api import views as api
from patientapp.db import storage
from patientapp.domain import api_tokens, throttle
from patientapp.web.context import get_db, now

TEN_MINUTES = throttle.Window("test-tries", 3, timedelta(minutes=10))
PER_MINUTE = throttle.Window("test-requests", 3, timedelta(minutes=1))


def rows(db) -> list[tuple[str, str]]:
    return [(row["scope"], row["key"]) for row in db.query("SELECT scope, key FROM failures")]


# --- windows ----------------------------------------------------------------------------------


def test_a_window_fills_per_key_and_slides_with_the_clock(db, clock):
    for _ in range(3):
        assert not throttle.is_full(db, TEN_MINUTES, "a", clock())
        throttle.claim(db, [(TEN_MINUTES.scope, "a")], clock())
    assert throttle.count(db, TEN_MINUTES, "a", clock()) == 3
    assert throttle.is_full(db, TEN_MINUTES, "a", clock())
    assert not throttle.is_full(db, TEN_MINUTES, "b", clock())  # another key, its own window
    other_scope = throttle.Window("test-other", 3, TEN_MINUTES.span)
    assert not throttle.is_full(db, other_scope, "a", clock())
    clock.advance(minutes=10)
    assert throttle.is_full(db, TEN_MINUTES, "a", clock())  # the window includes its start
    clock.advance(seconds=1)
    assert throttle.count(db, TEN_MINUTES, "a", clock()) == 0
    assert not throttle.is_full(db, TEN_MINUTES, "a", clock())


def test_a_window_without_a_span_counts_every_row_ever(db, clock):
    ever = throttle.Window("test-ever", 2)
    throttle.note(db, ever.scope, "device", clock())
    clock.advance(days=3000)
    throttle.note(db, ever.scope, "device", clock())
    assert ever.since(clock()) == throttle.LONG_AGO
    assert throttle.is_full(db, ever, "device", clock())


def test_count_can_start_later_than_the_window(db, clock):
    start = clock()
    for _ in range(3):
        throttle.note(db, TEN_MINUTES.scope, "a", clock())
        clock.advance(minutes=1)
    after_first = start + timedelta(seconds=1)
    assert throttle.count(db, TEN_MINUTES, "a", clock(), not_before=after_first) == 2
    # An earlier start than the window's changes nothing.
    earlier = start - timedelta(hours=1)
    assert throttle.count(db, TEN_MINUTES, "a", clock(), not_before=earlier) == 3


# --- claims -----------------------------------------------------------------------------------


def test_a_claim_counts_under_each_pair_and_a_release_takes_only_its_rows_back(db, clock):
    pairs = [("test-client", "browser"), ("test-global", "*")]
    wrong = throttle.claim(db, pairs, clock())
    right = throttle.claim(db, pairs, clock())
    assert isinstance(right, throttle.Claim) and len(right.ids) == 2
    global_window = throttle.Window("test-global", 5, TEN_MINUTES.span)
    assert throttle.count(db, global_window, "*", clock()) == 2
    with storage.write(db):
        throttle.release(db, right)  # a right try is no failure
    assert throttle.count(db, global_window, "*", clock()) == 1
    assert sorted(rows(db)) == sorted(pairs)  # the wrong try's rows stay, as failures
    assert wrong.ids != right.ids


def test_a_claim_joins_the_write_transaction_of_its_check(db, clock):
    def check_and_claim_then_fail():
        with storage.write(db):
            if not throttle.is_full(db, TEN_MINUTES, "a", clock()):
                throttle.claim(db, [(TEN_MINUTES.scope, "a")], clock())
            raise RuntimeError("the check's transaction fails")

    with pytest.raises(RuntimeError):
        check_and_claim_then_fail()
    assert rows(db) == []  # rolled back with it


def test_notes_are_listed_oldest_first_and_forgotten_by_key_or_by_age(db, clock):
    first = clock()
    throttle.note(db, "test-lock", "dr@example.org", clock())
    clock.advance(hours=2)
    throttle.note(db, "test-lock", "dr@example.org", clock())
    throttle.note(db, "test-lock", "other@example.org", clock())
    assert throttle.noted(db, "test-lock", "dr@example.org") == [first, clock()]
    assert throttle.noted(db, "test-lock", "dr@example.org", since=clock()) == [clock()]
    throttle.forget_before(db, "test-lock", clock() - timedelta(hours=1))
    assert throttle.noted(db, "test-lock", "dr@example.org") == [clock()]
    throttle.forget(db, "test-lock", "dr@example.org")
    assert throttle.noted(db, "test-lock", "dr@example.org") == []
    assert throttle.noted(db, "test-lock", "other@example.org") == [clock()]


# --- locks ------------------------------------------------------------------------------------


def test_a_lock_begins_at_the_failure_that_fills_the_window_and_lasts_its_span(db, clock):
    lockout = throttle.Window("test-login", 3, timedelta(minutes=15))
    throttle.note(db, lockout.scope, "acct", clock())
    clock.advance(minutes=1)
    throttle.note(db, lockout.scope, "acct", clock())
    assert throttle.lock_start(db, lockout, "acct", clock()) is None
    clock.advance(minutes=1)
    began = clock()
    throttle.note(db, lockout.scope, "acct", clock())
    assert throttle.lock_start(db, lockout, "acct", clock()) == began
    clock.advance(minutes=14, seconds=59)
    assert throttle.lock_start(db, lockout, "acct", clock()) == began
    clock.advance(seconds=1)
    assert throttle.lock_start(db, lockout, "acct", clock()) is None


def test_failures_spread_wider_than_the_window_never_lock(db, clock):
    lockout = throttle.Window("test-login", 3, timedelta(minutes=15))
    for _ in range(6):
        throttle.note(db, lockout.scope, "acct", clock())
        assert throttle.lock_start(db, lockout, "acct", clock()) is None
        clock.advance(minutes=8)


# --- requests (the API) -----------------------------------------------------------------------


def test_requests_are_counted_and_the_one_past_the_limit_is_refused_until_a_minute_on(db, clock):
    assert [throttle.count_request(db, PER_MINUTE, "token", clock()) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert throttle.count(db, PER_MINUTE, "token", clock()) == 3  # the refused one not counted
    assert throttle.count_request(db, PER_MINUTE, "other", clock())  # per key
    clock.advance(seconds=59)
    assert not throttle.count_request(db, PER_MINUTE, "token", clock())
    clock.advance(seconds=2)  # a minute after the first three
    assert throttle.count_request(db, PER_MINUTE, "token", clock())


def test_the_request_window_slides(db, clock):
    start = clock()
    for seconds in (0, 30, 40):
        clock.moment = start + timedelta(seconds=seconds)
        assert throttle.count_request(db, PER_MINUTE, "token", clock())
    clock.moment = start + timedelta(seconds=61)  # only the first has left the window
    assert throttle.count_request(db, PER_MINUTE, "token", clock())
    assert not throttle.count_request(db, PER_MINUTE, "token", clock())
    clock.moment = start + timedelta(seconds=91)  # the one at 30 s has left too
    assert throttle.count_request(db, PER_MINUTE, "token", clock())


def test_concurrent_requests_never_overshoot_the_limit(app, clock):
    allowed: list[bool] = []
    moment = clock()

    def request():
        connection = storage.connect(app.config["DATABASE"], key=app.config["DATABASE_KEY"])
        try:
            allowed.append(throttle.count_request(connection, PER_MINUTE, "token", moment))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(allowed) == [False] * 9 + [True] * 3


def _token(app) -> tuple[int, str]:
    with app.app_context(), storage.write(get_db()) as db:
        return api_tokens.create_token(db, "EHR interface", None, now())


SEARCH = "/api/fhir/QuestionnaireResponse?_lastUpdated=ge2026-11-25T00:00:00Z"


def test_the_api_refuses_the_request_past_its_limit_and_allows_again_a_minute_later(
    app, client, clock
):
    app.config["API_REQUESTS_PER_MINUTE"] = 2
    _token_id, token = _token(app)
    headers = {"Authorization": f"Bearer {token}"}
    statuses = [client.get(SEARCH, headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    clock.advance(seconds=61)
    assert client.get(SEARCH, headers=headers).status_code == 200


def test_a_successful_api_request_is_stored_as_a_request_not_a_failure(app, client, db, clock):
    token_id, token = _token(app)
    response = client.get(SEARCH, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    # The one row is the request, under the API's request scope: nothing under a scope
    # of failures (the old "api_request" rows were written as failures).
    assert rows(db) == [("api-request", str(token_id))]
    assert api.REQUEST_SCOPE == "api-request"
    window = throttle.Window(api.REQUEST_SCOPE, 120, timedelta(minutes=1))
    assert throttle.count(db, window, str(token_id), clock()) == 1
    # A request without a valid token is refused before it is counted at all.
    assert client.get(SEARCH, headers={"Authorization": "Bearer pa_wrong"}).status_code == 401
    assert rows(db) == [("api-request", str(token_id))]
