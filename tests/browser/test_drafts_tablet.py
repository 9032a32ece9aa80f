"""Nothing typed is lost (drafts) and the waiting-room tablet (issue 11, points 5 and 7),
in a real browser against the real server."""

from __future__ import annotations

import base64
import json
import re
import time
import zlib

import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail in CI) with a clear message
    expect = None
    PlaywrightError = Exception

from .patient_ui import (
    STEPS,
    button,
    expect_heading,
    expect_step,
    open_and_start,
    tap_next,
    translator,
    type_text,
)
from .staff_ui import StaffUser, create_users, log_in, query

TYPED = "Half a sentence about the dose 5150"
TABLET_DESK = StaffUser("frontdesk", "tablet.desk@clinic.example", "Tia Desk")


def wait_for_draft(page):
    """Type, then let the pause pass until the draft is on the server. The page must have
    finished loading first: static/draft.js is deferred, and text typed before it listens
    is never sent (this raced under load: a 10 s wait for a request that never came)."""
    wait_until_complete(page)
    with page.expect_response(lambda r: r.url.endswith("/draft") and r.status == 200):
        page.keyboard.type(TYPED)


def wait_until_complete(page, seconds: float = 15) -> None:
    """Wait until the document has loaded, a page from the back/forward cache included
    (it fires no "load"). Asked from the test's side: the pages' CSP forbids eval, and a
    string predicate in wait_for_function is evaluated in the page, so it failed at
    random under load."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if page.evaluate("() => document.readyState") == "complete":
                return
        except PlaywrightError:  # the document was replaced while asked: ask the new one
            pass
        assert time.monotonic() < deadline, f"{page.url} did not finish loading"
        page.wait_for_timeout(50)


BACK_NOTICE = {
    "en": "What you typed here last time is back.",
    "es": "Lo que escribió aquí la última vez está de vuelta.",
    "ar": "أعدنا ما كتبته هنا في المرة السابقة.",
}


@pytest.mark.parametrize(("width", "language"), [(360, "en"), (320, "es"), (320, "ar")])
def test_typed_text_comes_back_after_a_reload(phone, live_server, width, language):
    page = phone.open(width)
    page.goto(f"{live_server.invite().link}?lang={language}")
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    assert page.locator("html").get_attribute("lang") == language.replace("_", "-")
    page.locator("#T2").tap()
    wait_for_draft(page)
    page.reload()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    expect(page.locator("#T2")).to_have_value(TYPED)
    expect(page.locator("main")).to_contain_text(BACK_NOTICE[language])
    assert not any(TYPED.split()[0] in url for url in phone.requests)
    storage = page.evaluate("localStorage.length + sessionStorage.length")
    assert storage == 0
    no_sideways = "document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(no_sideways)
    assert phone.console == []


def test_typed_text_shows_on_a_second_device(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    page.locator("#T2").tap()
    wait_for_draft(page)
    other = phone.open(360)
    other.goto(invitation.link)
    expect_step(other, 1)
    expect(other.locator("#T2")).to_have_value(TYPED)


def test_a_draft_without_the_csrf_token_is_refused(phone, live_server):
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    response = page.request.post(f"{live_server.url}/step/1/draft", form={"T2": "forged"})
    assert response.status == 400
    visit = query(live_server, "SELECT id FROM visits WHERE patient_ref = ?", (invitation.ref,))
    drafts = query(live_server, "SELECT * FROM drafts WHERE visit_id = ?", (visit[0]["id"],))
    assert drafts == []


@pytest.mark.parametrize(("width", "language"), [(360, "en"), (320, "es"), (320, "ar")])
def test_at_the_idle_limit_the_page_closes_and_the_text_is_a_draft(
    phone, live_server, width, language
):
    _ = translator(language)
    invitation = live_server.invite()
    page = phone.open(width)
    page.clock.install()
    page.goto(f"{invitation.link}?lang={language}")
    page.locator("main form button.primary").tap()
    expect(page).to_have_url(re.compile(r"/step/1$"))
    # The deferred scripts listen only once the page has loaded (text typed before is
    # never sent; found by CI on a loaded machine, as wait_for_draft says).
    wait_until_complete(page)
    page.locator("#T2").tap()
    page.keyboard.type(TYPED)  # no pause: the draft goes when the page is left
    with page.expect_response(lambda r: r.url.endswith("/draft")):
        page.clock.run_for(2000)
    page.clock.run_for(15 * 60 * 1000)
    expect(page).to_have_url(re.compile(rf"/ended\?lang={language}$"))
    expect_heading(page, _("This page was closed for your privacy"))
    expect(page.locator("main")).to_contain_text(
        _(
            "What you were typing on your last screen is kept too, until your link stops "
            "working. It will be back in the boxes when you go on. Tap Next to save it as "
            "an answer."
        )
    )
    assert TYPED not in page.content()
    page.go_back()
    page.wait_for_load_state()
    assert TYPED not in page.content()
    page.goto(invitation.link)
    expect(page).to_have_url(re.compile(r"/step/1$"))
    expect(page.locator("#T2")).to_have_value(TYPED)


@pytest.fixture(scope="module")
def tablet_desk(live_server):
    create_users(live_server, [TABLET_DESK])
    return TABLET_DESK


def session_data(context) -> dict:
    """What the signed (not encrypted) session cookie holds, if there is one."""
    for cookie in context.cookies():
        if cookie["name"] == "patientapp_session":
            value = cookie["value"]
            compressed = value.startswith(".")
            payload = value.lstrip(".").split(".")[0]
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            return json.loads(zlib.decompress(raw) if compressed else raw)
    return {}


def first_secret(n: int) -> str:
    return f"Patient {n} private words 8{n}{n}"


def test_a_tablet_keeps_nothing_of_the_last_patient(phone, live_server, tablet_desk):
    page = phone.open(768)
    log_in(page, live_server, tablet_desk)
    page.get_by_role("button", name="Use this device as a waiting-room tablet").click()
    expect(page).to_have_url(re.compile(r"/start$"))
    context = page.context
    assert any(c["name"] == "patientapp_tablet" for c in context.cookies())

    first, second = live_server.invite(), live_server.invite()
    page.locator("#code").fill(first.code)
    button(page, "Continue").tap()
    expect_heading(page, "Before your visit")
    button(page, "Start").tap()
    expect_step(page, 1)
    expect(page.locator("main form[data-draft]")).to_have_attribute("autocomplete", "off")
    type_text(page, "T2", first_secret(1))
    tap_next(page, 2)
    type_text(page, "M1-0-name", "Clozapine")
    for step in (*range(3, 8), STEPS):  # on to the safety question: no measure included
        tap_next(page, step)
    tap_next(page)
    button(page, "Send to my psychiatrist").tap()
    expect_heading(page, "Thank you")
    assert not any(c["name"] == "patientapp_session" for c in context.cookies())
    page.get_by_role("link", name="Done").tap()
    expect(page).to_have_url(re.compile(r"/start$"))

    # The second patient: Back through the first one's pages finds nothing of theirs.
    for _ in range(14):
        # The thank-you page may come back from the back/forward cache (no "load").
        page.go_back(wait_until="commit")
        wait_until_complete(page)
        html = page.content()
        assert first_secret(1) not in html and "Clozapine" not in html, page.url
        assert "/staff/" not in page.url or "/staff/login" in page.url, page.url
        assert "patient" not in session_data(context), page.url
        expect(page.locator("input:checked")).to_have_count(0)
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/start$"))
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    page.locator("#code").fill(second.code)
    button(page, "Continue").tap()
    button(page, "Start").tap()
    expect_step(page, 1)
    expect(page.locator("#T2")).to_have_value("")
    assert first_secret(1) not in page.content()
    # Staff pages still need a sign-in.
    page.goto(f"{live_server.url}/staff/")
    expect(page).to_have_url(re.compile(r"/staff/login"))
    expect(page.locator("main")).to_contain_text("This device is a waiting-room tablet")
    entries = query(
        live_server,
        "SELECT action FROM audit_log WHERE actor = ? AND action LIKE 'tablet_mode_%'",
        (tablet_desk.email,),
    )
    assert [e["action"] for e in entries] == ["tablet_mode_entered"]


# --- the idle end with JavaScript off ----------------------------------------------------------

IDLE_MINUTES = 1  # PATIENTAPP_PATIENT_IDLE_MINUTES of a server of its own
IDLE_LEFT = 6  # seconds of that minute still to run when the open screen loads
SAVED_WITH_NEXT = "Saved with Next 4711"
TYPED_AFTER_NEXT = "Typed after Next 4712"


@pytest.fixture(scope="module")
def short_idle_server(browser_available, tmp_path_factory):
    from .conftest import LiveServer

    server = LiveServer(tmp_path_factory.mktemp("short-idle") / "instance")
    server.env["PATIENTAPP_PATIENT_IDLE_MINUTES"] = str(IDLE_MINUTES)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def idle_for(context, seconds: int) -> None:
    """Make this device's patient session look idle for `seconds` already: its "last seen"
    time moved back, signed with the server's (test) key as the server would sign it. The
    server still tracks idle time, ends the session and counts down the refresh itself."""
    from datetime import datetime, timedelta

    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    app = Flask("forge")
    app.secret_key = "test"  # PATIENTAPP_SECRET_KEY of the test servers
    signer = SecureCookieSessionInterface().get_signing_serializer(app)
    cookie = next(c for c in context.cookies() if c["name"] == "patientapp_session")
    data = signer.loads(cookie["value"])
    seen = datetime.fromisoformat(data["patient"]["seen"]) - timedelta(seconds=seconds)
    data["patient"]["seen"] = seen.isoformat()
    context.add_cookies([{**cookie, "value": signer.dumps(dict(data))}])


def test_with_javascript_off_the_page_closes_itself_at_the_idle_limit(chromium, short_idle_server):
    """Point 5 without JavaScript: a phone left on an open screen goes to the closed page by
    itself (the meta refresh), in English at 360 px and in Spanish and Arabic at 320 px;
    what was typed after the last Next is not kept, and the closed page says exactly that."""
    server = short_idle_server
    phones = []
    try:
        for width, language in ((360, "en"), (320, "es"), (320, "ar")):
            context = chromium.new_context(
                viewport={"width": width, "height": 740},
                java_script_enabled=False,
                locale="en-US",
            )
            page = context.new_page()
            invitation = server.invite()
            page.goto(f"{invitation.link}?lang={language}")
            page.locator("main form button.primary").click()
            expect(page).to_have_url(re.compile(r"/step/1$"))
            page.fill("#T2", SAVED_WITH_NEXT)
            with page.expect_navigation():
                page.locator("main .nav button.primary").click()
            # Step 2 opens on the medicine list, a text box (M0 ended the first screen).
            expect(page).to_have_url(re.compile(r"/step/2$"))
            idle_for(context, IDLE_MINUTES * 60 - IDLE_LEFT)
            page.reload()
            refresh = page.locator('meta[http-equiv="refresh"]').get_attribute("content")
            seconds, _, target = refresh.partition(";url=")
            assert 0 < int(seconds) <= IDLE_LEFT, refresh
            assert target.endswith(f"/ended?lang={language}"), refresh
            page.fill("#M1-0-name", TYPED_AFTER_NEXT)  # never sent: no Next, no script
            phones.append((page, language, invitation))

        for page, language, invitation in phones:
            _ = translator(language)
            expect(page).to_have_url(re.compile(r"/ended\?"), timeout=(IDLE_LEFT + 15) * 1000)
            expect_heading(page, _("This page was closed for your privacy"))
            main = page.locator("main")
            expect(main).to_contain_text(
                _(
                    "Your answers up to the last screen you moved on from are saved. "
                    "They are saved each time you tap Next or Back."
                )
            )
            expect(main).to_contain_text(
                _(
                    "If you typed something on the last screen and did not tap Next, it was "
                    "not kept."
                )
            )
            expect(main).not_to_contain_text(
                _(
                    "What you were typing on your last screen is kept too, until your link "
                    "stops working. It will be back in the boxes when you go on. Tap Next to "
                    "save it as an answer."
                )
            )
            html = page.content()
            assert SAVED_WITH_NEXT not in html and TYPED_AFTER_NEXT not in html
            assert "patient" not in session_data(page.context)
            # The page told the truth: the answer before the last Next is stored, the text
            # typed after it is neither an answer nor a draft.
            visit = server.visit(invitation.ref)
            assert SAVED_WITH_NEXT in visit["answers"]["T2"]
            assert TYPED_AFTER_NEXT not in json.dumps(visit["answers"])
            assert query(server, "SELECT * FROM drafts WHERE visit_id = ?", (visit["id"],)) == []
            page.go_back(wait_until="commit")
            page.wait_for_load_state()
            assert TYPED_AFTER_NEXT not in page.content() and SAVED_WITH_NEXT not in page.content()
    finally:
        for page, *_ in phones:
            page.context.close()


# A busy phone: a timer set once the page has loaded runs only after the patient's tap
# (input comes first on a busy main thread), as it did once in CI.
TIMERS_AFTER_THE_TAP = """
const setTimer = window.setTimeout;
const held = [];
window.setTimeout = function (callback, ms, ...rest) {
  if (document.readyState !== "complete") return setTimer.call(window, callback, ms, ...rest);
  held.push(() => callback(...rest));
  return 0;
};
addEventListener("click", () => {
  window.heldTimers = held.length;
  setTimer(() => held.splice(0).forEach((run) => run()), 0);
}, true);
"""


def test_next_tapped_before_the_page_settles_still_goes_on(phone, live_server):
    """draft.js cancels the meta refresh with window.stop() just after "load". On a busy
    phone that timer can run after a tap on Next has started the next page, and then
    window.stop() cancelled the tap: nothing happened (found in CI, where a walk's Next
    timed out once in 2,300 tests)."""
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)
    page.add_init_script(TIMERS_AFTER_THE_TAP)
    page.goto(page.url)
    wait_until_complete(page)
    button(page, "Next").tap()
    expect_step(page, 2)
    assert page.evaluate("window.heldTimers") is None  # the new page, untapped


def test_with_javascript_typing_keeps_the_page_open_past_its_first_limit(phone, live_server):
    """With JavaScript, the countdown restarts with each draft the server takes, so the
    meta refresh (counted from when the page opened) is stopped once the page has loaded;
    left in place, it would close the page on a patient still typing. The page here comes
    with 3 s left on its refresh, as if it had opened just before the idle limit."""
    invitation = live_server.invite()
    page = phone.open(360)
    open_and_start(page, invitation.link)

    def nearly_idle(route):
        response = route.fetch()
        body, count = re.subn(r'content="\d+;url=', 'content="3;url=', response.text())
        assert count == 1
        route.fulfill(response=response, body=body)

    page.route("**/step/1", nearly_idle)
    page.reload()
    wait_until_complete(page)
    page.unroute("**/step/1")
    page.locator("#T2").tap()
    with page.expect_response(lambda r: r.url.endswith("/draft") and r.status == 200):
        page.keyboard.type(TYPED)
    page.wait_for_timeout(4000)  # the refresh's 3 s are past
    expect(page).to_have_url(re.compile(r"/step/1$"))
    expect(page.locator("#T2")).to_have_value(TYPED)
