"""Two things a patient's phone walk found (driven here as the patient does):

A. A draft typed on a later screen of a step comes back: the link opened again resumes on
   that screen, and Next on an earlier screen of the step leaves it for its own screen.
B. Changing M0 ("Are you taking any medicine...?") loses nothing: "No" keeps what was
   answered about medicines (not shown, not counted, and never sent), "Yes" again shows
   it; and "Yes" from the review asks P1, a later step's question never shown, before
   going back there, so it never reads "Skipped"."""

from __future__ import annotations

from contextlib import closing

from patientapp.api import views as api
from patientapp.db import storage
from patientapp.domain import visits
from patientapp.patient import forms as patient_forms
from patientapp.patient import views as patient_views
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import Patient, checked, csrf_from, input_value, make_invitation
from tests.web.staff.test_staff import summary_on_page

Q = questionnaire.default()
NOT_ASKED = ("M1", "M2", "M3", "M4", "M5", "P1")
H1_TEXT = "That I will never be able to work again"


def stored(app, visit_id) -> dict:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.answers_for(db, visit_id)[0]


def drafts(app, visit_id) -> list:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return db.execute(
            "SELECT step, fields FROM drafts WHERE visit_id = ?", (visit_id,)
        ).fetchall()


def screen_of(item_id: str) -> tuple[int, int]:
    page = patient_forms.page_of(Q, item_id)
    return page.number, page.screen


def url_of(item_id: str) -> str:
    number, screen = screen_of(item_id)
    return f"/step/{number}" + (f"?screen={screen}" if screen > 1 else "")


def tap_next(phone: Patient, page, **fields):
    """Next on the page shown, with these answers (the screen's own number, as a phone)."""
    screen = page.request.args.get("screen", "1")
    data = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "action": "next",
        "screen": screen,
        **fields,
    }
    return phone.client.post(page.request.full_path.rstrip("?"), data=data, follow_redirects=True)


def on_screen(page, item_id: str) -> bool:
    number, screen = screen_of(item_id)
    here = (page.request.path, page.request.args.get("screen", "1"))
    return here == (f"/step/{number}", str(screen))


def started(app) -> tuple[Patient, object]:
    invitation = make_invitation(app)
    phone = Patient(app.test_client())
    phone.start(invitation.token)
    return phone, invitation


def to_review(phone: Patient, page):
    """Next on every screen from the page shown, as far as the review."""
    for _ in range(30):
        if page.request.path == "/review":
            return page
        page = tap_next(phone, page)
    raise AssertionError("never reached the review")


def reopen(app, token: str):
    """The link opened again later (a new phone, or the page closed when idle)."""
    phone = Patient(app.test_client())
    page = phone.open(token)
    if page.request.path == "/welcome":
        page = phone.post("/welcome", {})
    return phone, page


# --- A: a draft on a later screen of a step ---------------------------------------------------


def to_h1(app):
    """A patient on the screen asking H1 (a later screen of its step) with H1 typed as a
    draft, as static/draft.js keeps it."""
    phone, invitation = started(app)
    page = phone.client.get("/step/1")
    page = tap_next(phone, page, M0="no")
    for _ in range(10):
        if on_screen(page, "H1"):
            break
        page = tap_next(phone, page)
    number, screen = screen_of("H1")
    assert screen > 1 and on_screen(page, "H1")
    kept = phone.client.post(
        f"/step/{number}/draft",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "screen": str(screen),
            "H1": H1_TEXT,
        },
    )
    assert kept.status_code == 200
    return phone, invitation


def test_the_link_opened_again_resumes_on_the_screen_of_the_draft(app):
    phone, invitation = to_h1(app)
    phone.client.get("/ended")  # the page closed itself when idle
    other, page = reopen(app, invitation.token)
    number, screen = screen_of("H1")
    assert (page.request.path, page.request.args.get("screen")) == (f"/step/{number}", str(screen))
    html = page.get_data(as_text=True)
    assert H1_TEXT in html and "What you typed here last time is back." in html
    # Next saves it as the answer, and the draft is done with.
    tap_next(other, page, H1=H1_TEXT)
    assert stored(app, invitation.visit_id)["H1"] == H1_TEXT
    assert drafts(app, invitation.visit_id) == []


def test_next_on_an_earlier_screen_of_the_step_keeps_a_later_screens_draft(app):
    """Browser Back to the step's first screen, then Next: the draft typed on the second
    is still there when Next brings the patient to it."""
    phone, invitation = to_h1(app)
    number, _screen = screen_of("H1")
    first = phone.client.get(f"/step/{number}")  # the browser's Back
    assert H1_TEXT not in first.get_data(as_text=True)
    page = tap_next(phone, first)
    assert on_screen(page, "H1")
    html = page.get_data(as_text=True)
    assert H1_TEXT in html and "What you typed here last time is back." in html
    assert len(drafts(app, invitation.visit_id)) == 1
    tap_next(phone, page, H1=H1_TEXT)
    assert stored(app, invitation.visit_id)["H1"] == H1_TEXT
    assert drafts(app, invitation.visit_id) == []


def test_a_draft_of_the_screen_saved_goes_with_its_save(app):
    phone, invitation = started(app)
    page = phone.client.get("/step/1")
    phone.client.post(
        "/step/1/draft", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "T2": "Half"}
    )
    tap_next(phone, page, T2="Whole")
    assert drafts(app, invitation.visit_id) == []
    assert patient_views.DRAFT_SCREEN == visits.DRAFT_SCREEN


# --- B: changing M0 -----------------------------------------------------------------------------

MEDICINES = {
    "M1": {"M1-0-name": "Sertraline 100 mg", "M1-0-feeling": "not_helping"},
    "M2": {"M2": "negative", "M3": ["punishment"]},
    "M5": {"M5": ["being_controlled"]},
    "P1": {"P1": "stopped"},
}


def answered_taking_medicine(app):
    """M0 "yes", then the medicine list, M2, M3, M5 and P1 answered on their screens: the
    patient then on the screen after P1's."""
    phone, invitation = started(app)
    page = tap_next(phone, phone.client.get("/step/1"), M0="yes")
    for item_id, fields in MEDICINES.items():
        assert on_screen(page, item_id), (item_id, page.request.full_path)
        page = tap_next(phone, page, **fields)
    return phone, invitation, page


def test_no_by_mistake_keeps_the_medicine_answers_and_yes_shows_them_again(app):
    phone, invitation, _page = answered_taking_medicine(app)
    before = stored(app, invitation.visit_id)
    assert set(NOT_ASKED) - {"M4"} <= set(before)
    # Back on the first screen: "No", Next. The medicine questions are passed over.
    page = tap_next(phone, phone.client.get("/step/1"), M0="no")
    assert on_screen(page, "M6")
    review = to_review(phone, page).get_data(as_text=True)
    assert "Sertraline" not in review and Q.items["P1"].prompt not in review
    assert "were not asked" in review
    # "Yes" again: the list, the answers and P1 are as they were.
    page = tap_next(phone, phone.client.get("/step/1"), M0="yes")
    assert on_screen(page, "M1")
    html = page.get_data(as_text=True)
    assert input_value(html, "M1-0-name") == "Sertraline 100 mg"
    assert checked(html, "M1-0-feeling") == ["not_helping"]
    assert checked(phone.client.get(url_of("M2")).get_data(as_text=True), "M3") == ["punishment"]
    assert checked(phone.client.get(url_of("P1")).get_data(as_text=True), "P1") == ["stopped"]
    assert stored(app, invitation.visit_id) == {**before, "M0": "yes"}


def test_yes_from_the_review_asks_p1_before_going_back(app):
    """M0 "no" from the first, then "Change" -> "Yes": the medicine screens, then P1's
    screen (a later step, never shown), and only then the review."""
    phone, invitation = started(app)
    to_review(phone, tap_next(phone, phone.client.get("/step/1"), M0="no"))
    page = phone.post("/review", {"action": "edit-2"})
    assert on_screen(page, "M0")
    page = tap_next(phone, page, M0="yes", **{"return": "review"})
    seen = []
    for _ in range(12):
        if page.request.path == "/review":
            break
        seen.append(page.request.path + "?" + page.request.query_string.decode())
        fields = {"return": "review"}
        if on_screen(page, "P1"):
            assert 'name="P1"' in page.get_data(as_text=True)
            fields["P1"] = "stopped"
        page = tap_next(phone, page, **fields)
    assert page.request.path == "/review", seen
    assert any(on_screen_path(path, "P1") for path in seen), seen
    assert stored(app, invitation.visit_id)["P1"] == "stopped"
    review = page.get_data(as_text=True)
    assert "were not asked" not in review
    # P1 reads as answered, never "Skipped" for a question never shown.
    row = review.split('id="p-P1"', 1)[1].split("</li>", 1)[0]
    assert "Skipped" not in row and "I stopped taking it" in row


def on_screen_path(path: str, item_id: str) -> bool:
    number, screen = screen_of(item_id)
    bare, _, query = path.partition("?")
    screens = [p.split("=", 1)[1] for p in query.split("&") if p.startswith("screen=")]
    return (bare, screens[0] if screens else "1") == (f"/step/{number}", str(screen))


def test_a_visit_sent_with_no_keeps_nothing_unasked(app, psychiatrist):
    """Answers kept while "no" stood are removed when the visit is sent: nothing stored,
    the summary reads them "not asked", FHIR has none of them."""
    phone, invitation, _page = answered_taking_medicine(app)
    to_review(phone, tap_next(phone, phone.client.get("/step/1"), M0="no"))
    phone.post(
        "/review", {"action": "submit", "in_person": ["M1", "P1"]}
    )  # held ticks for unasked items count for nothing
    answers = stored(app, invitation.visit_id)
    assert not set(NOT_ASKED) & set(answers) and answers["M0"] == "no"
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    body = {
        label: answer
        for _title, block in summary_on_page(html)["blocks"]
        for label, answer in block
    }
    for item_id in NOT_ASKED:
        assert body[Q.items[item_id].short] == "not asked: not taking medicine", item_id
    assert "Sertraline" not in html
    with app.test_request_context():
        response = api.response_for(storage.get_visit(get_db(), invitation.visit_id))
    links = {i["linkId"] for g in response["item"] for i in g["item"]}
    assert not links & set(NOT_ASKED) and "M0" in links
