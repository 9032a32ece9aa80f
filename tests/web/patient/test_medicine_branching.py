"""M0 (CONTENT.md version 3): a patient not taking medicine for their mental health now
is never asked M1-M5 or P1. The pages pass over them (Next, Back, the review and its
edit links), the summary reads them "not asked: not taking medicine", never skipped or
not reached, and no flag reads them. "Yes", "I'm not sure" or a skip ask everything."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from patientapp.api import views as api
from patientapp.cli import examples
from patientapp.db import storage
from patientapp.domain.records import Visit
from patientapp.exports import csv as exports
from patientapp.exports import fhir
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import FULL_ANSWERS, Patient, csrf_from, finish_visit, login, make_invitation
from tests.helpers.fhir_check import check_response
from tests.web.staff.test_staff import summary_in_text, summary_on_page

NOT_ASKED = ("M1", "M2", "M3", "M4", "M5", "P1")
Q_ = questionnaire.default()
NO_MEASURES = frozenset(Q_.not_asked({}))  # these visits include no standard measure
NOT_ASKED_SET = frozenset(NOT_ASKED) | NO_MEASURES
MEASURE_ITEMS = len(NO_MEASURES)
NOTE = "not asked: not taking medicine"
Q = questionnaire.default()
SHORTS = {i: Q.items[i].short for i in NOT_ASKED}
MEDICINES, GOING = Q.sections[1], Q.sections[2]


def url_of(item_id: str, returning: bool = False) -> str:
    """The address of the screen that asks this question (screens are the definition's,
    see patient_forms.pages: M0 ends the first screen, the medicine list stands alone)."""
    page = patient_forms.page_of(Q, item_id)
    query = [f"screen={page.screen}"] if page.screen > 1 else []
    query += ["return=review"] if returning else []
    return f"/step/{page.number}" + ("?" + "&".join(query) if query else "")


def full(url: str) -> str:
    return url if "?" in url else url + "?"


M0_URL, M1_URL, M6_URL, P2_URL = (url_of(i) for i in ("M0", "M1", "M6", "P2"))


def stored(app, visit_id) -> dict:
    with closing(storage.connect(app.config["DATABASE"])) as db:
        return storage.answers_for(db, visit_id)[0]


def on_m0(app) -> tuple[Patient, object]:
    """A patient on the screen where M0 is asked (the last question of the first screen)."""
    invitation = make_invitation(app)
    phone = Patient(app.test_client())
    phone.start(invitation.token)
    return phone, invitation


def answer_m0(phone: Patient, value: str | None, returning: bool = False):
    page = patient_forms.page_of(Q, "M0")
    data = {"action": "next", "screen": str(page.screen)}
    if value is not None:
        data["M0"] = value
    if returning:
        data["return"] = "review"
    return phone.post(url_of("M0", returning), data)


def names_on(html: str) -> set[str]:
    return {i for i in (*NOT_ASKED, "M0", "M6", "P2", "P3") if f'name="{i}' in html}


def walk_to_review(phone: Patient, page):
    """Next on every screen from the page shown, as far as the review."""
    for _ in range(30):
        if page.request.path == "/review":
            return page
        screen = page.request.args.get("screen", "1")
        page = phone.post(page.request.full_path, {"action": "next", "screen": screen})
    raise AssertionError("never reached the review")


def progress(html: str) -> str:
    return html.split('id="progress-label">', 1)[1].split("<", 1)[0]


# --- the patient's pages ---------------------------------------------------------------


def test_m0_ends_its_screen_and_asks_before_the_medicine_list(app):
    phone, _invitation = on_m0(app)
    html = phone.client.get(M0_URL).get_data(as_text=True)
    assert "Are you taking any medicine for your mental health right now?" in html
    assert "M0" in names_on(html) and not set(NOT_ASKED) & names_on(html)
    shown = patient_forms.shown_pages(Q, NO_MEASURES)
    m0 = patient_forms.page_of(Q, "M0")
    assert m0.items[-1].id == "M0"
    assert [i.id for i in shown[shown.index(m0) + 1].items] == ["M1"]


def test_no_passes_over_the_medicine_questions_both_ways(app):
    phone, invitation = on_m0(app)
    yes_count = len(patient_forms.shown_pages(Q, NO_MEASURES))
    page = answer_m0(phone, "no")
    # The next page is not the medicine list: straight to what else helps (M6).
    assert page.request.full_path == full(M6_URL)
    html = page.get_data(as_text=True)
    assert names_on(html) == {"M6"}
    # The progress counts the screens this patient sees: fewer without the medicine ones.
    count = len(patient_forms.shown_pages(Q, NOT_ASKED_SET))
    assert count < yes_count and progress(html).endswith(f" {count}")
    page = phone.post(page.request.full_path, {"action": "next", "screen": "3"})
    # Then P2 (P1 is not asked).
    assert page.request.full_path == full(P2_URL)
    html = page.get_data(as_text=True)
    assert "P2" in names_on(html) and "P1" not in names_on(html)
    assert "Many people change how they take their medicines" not in html
    # Back passes over them too, screen by screen, to M0.
    p2 = patient_forms.page_of(Q, "P2")
    page = phone.post(page.request.full_path, {"action": "back", "screen": str(p2.screen)})
    assert page.request.full_path == full(M6_URL)
    m6 = patient_forms.page_of(Q, "M6")
    page = phone.post(page.request.full_path, {"action": "back", "screen": str(m6.screen)})
    assert page.request.full_path == full(M0_URL)
    assert "M0" in names_on(page.get_data(as_text=True))
    # A link to a screen with nothing left to ask goes on to the next that has.
    m1 = patient_forms.page_of(Q, "M1")
    page = phone.client.get(url_of("M1"), follow_redirects=True)
    assert page.request.full_path == full(M6_URL), m1
    assert stored(app, invitation.visit_id) == {"M0": "no"}


def test_the_review_lists_no_medicine_question_and_says_they_were_not_asked(app):
    phone, _invitation = on_m0(app)
    page = walk_to_review(phone, answer_m0(phone, "no"))
    html = page.get_data(as_text=True)
    for item_id in NOT_ASKED:
        assert Q.items[item_id].prompt.replace("'", "&#39;") not in html, item_id
        assert f'value="{item_id}"' not in html
    assert Q.items["M0"].prompt in html and Q.items["M6"].prompt in html
    assert html.count("Questions about taking medicine were not asked") == 2  # steps 2 and 3
    # Every question the patient saw and left empty is "Skipped"; the unasked are not.
    assert html.count("Skipped") == len(Q.items) - len(NOT_ASKED) - MEASURE_ITEMS - 1


@pytest.mark.parametrize("value", ["yes", "not_sure", None], ids=["yes", "not_sure", "skip"])
def test_yes_not_sure_or_a_skip_ask_everything(app, value):
    phone, invitation = on_m0(app)
    page = answer_m0(phone, value)
    assert page.request.full_path == full(M1_URL)  # the medicine list
    assert 'name="M1-0-name"' in page.get_data(as_text=True)
    seen: set[str] = set()
    while page.request.path != "/review":
        seen |= names_on(page.get_data(as_text=True))
        screen = page.request.args.get("screen", "1")
        page = phone.post(page.request.full_path, {"action": "next", "screen": screen})
    assert set(NOT_ASKED) <= seen
    html = page.get_data(as_text=True)
    assert "were not asked" not in html
    assert all(Q.items[i].prompt.replace("'", "&#39;") in html for i in NOT_ASKED)
    assert stored(app, invitation.visit_id) == ({} if value is None else {"M0": value})


def test_changing_no_back_to_yes_asks_them_again(app):
    phone, invitation = on_m0(app)
    walk_to_review(phone, answer_m0(phone, "no"))
    page = phone.post("/review", {"action": "edit-2"})
    # Step 2's first question, M0, is asked on the first screen: the edit link goes there.
    assert page.request.full_path == full(url_of("M0", returning=True))
    assert "M0" in names_on(page.get_data(as_text=True))
    page = answer_m0(phone, "yes", returning=True)
    m1 = patient_forms.page_of(Q, "M1")
    # The questions never asked yet ride along, to be asked before the review.
    assert page.request.full_path == "/step/2?ask=M1,M2,M3,M4,M5,P1&return=review"
    assert 'name="M1-0-name"' in page.get_data(as_text=True)
    page = phone.post(
        page.request.full_path,
        {"action": "next", "screen": str(m1.screen), "return": "review", "M1-0-name": "Lithium"},
    )
    m2 = patient_forms.page_of(Q, "M2")
    assert (page.request.path, page.request.args.get("screen")) == ("/step/2", str(m2.screen))
    assert page.request.args.get("ask") == "M2,M3,M4,M5,P1"
    assert {"M2", "M3"} <= names_on(page.get_data(as_text=True))
    page = phone.client.get(url_of("P1"))
    assert 'name="P1"' in page.get_data(as_text=True)
    review = phone.client.get("/review").get_data(as_text=True)
    assert "were not asked" not in review and "Lithium" in review
    assert stored(app, invitation.visit_id)["M1"] == [{"name": "Lithium", "feeling": None}]


def test_no_keeps_medicine_answers_saved_before_unasked_until_sent(app):
    """Answers to M1-M5 and P1 given while taking medicine stay stored when M0 becomes
    "no" (a slip must not lose the list), but are not asked: no screen or review shows
    them, and sending removes them, so what is sent is what was asked."""
    phone, invitation = on_m0(app)
    page = answer_m0(phone, "yes")
    for number, data in ((2, FULL_ANSWERS[2]), (3, FULL_ANSWERS[3])):
        phone.post(f"/step/{number}", {"action": "next", **data})
    before = stored(app, invitation.visit_id)
    assert set(NOT_ASKED) <= set(before)
    m0 = patient_forms.page_of(Q, "M0")
    page = phone.post(M0_URL, {"action": "next", "screen": str(m0.screen), "M0": "no"})
    assert page.request.full_path == full(M6_URL)
    assert names_on(page.get_data(as_text=True)) == {"M6"}
    after = stored(app, invitation.visit_id)
    assert {i: after[i] for i in NOT_ASKED} == {i: before[i] for i in NOT_ASKED}
    assert after["M0"] == "no" and after["M6"] == before["M6"] and after["P2"] == before["P2"]
    review = phone.to_review().get_data(as_text=True)
    assert "Sertraline" not in review and "were not asked" in review
    phone.post("/review", {"action": "submit"})
    sent = stored(app, invitation.visit_id)
    assert not set(NOT_ASKED) & set(sent)
    assert sent["M0"] == "no" and sent["M6"] == before["M6"] and sent["P2"] == before["P2"]


def test_a_whole_step_posted_with_no_keeps_no_medicine_answer(app):
    """A POST of the whole step (no screen number) with M0 "no" saves none of M1-M5."""
    phone, invitation = on_m0(app)
    phone.post("/step/1", {"action": "next"})
    phone.post("/step/2", {"action": "next", **FULL_ANSWERS[2], "M0": "no"})
    answers = stored(app, invitation.visit_id)
    assert answers == {"M0": "no", "M6": ["people", "movement"]}


def test_one_visits_branching_never_shows_in_anothers_page(app):
    """Two visits, one not taking medicine: each sees its own screens, also once they
    come from the kept skeletons."""
    phone_no, _ = on_m0(app)
    walk_to_review(phone_no, answer_m0(phone_no, "no"))
    phone_yes, _ = on_m0(app)
    walk_to_review(phone_yes, answer_m0(phone_yes, "yes"))
    for _round in range(2):  # the second round comes from the kept skeletons
        no = phone_no.client.get(M6_URL).get_data(as_text=True)
        yes = phone_yes.client.get(M6_URL).get_data(as_text=True)
        assert names_on(no) == {"M6"}
        assert {"M5", "M6"} <= names_on(yes)
        going_no = phone_no.client.get(url_of("P1"), follow_redirects=True).get_data(as_text=True)
        going_yes = phone_yes.client.get(url_of("P1")).get_data(as_text=True)
        assert "P1" not in names_on(going_no) and "P2" in names_on(going_no)
        assert "P1" in names_on(going_yes)
        # Each sees the progress of its own screens.
        assert progress(no) != progress(yes)
    assert ">Next</button>" in no


def test_the_kept_skeleton_is_keyed_by_what_the_screen_asks(app):
    """A screen that loses only some questions, or becomes the last one, to a visit's
    answers gets a skeleton of its own: nothing of one visit's branching shows in
    another's page."""
    both = patient_forms.page_of(Q, "M5")
    assert both.number == 2

    def page(hidden: frozenset, returning: bool = False) -> str:
        return patient_forms.render_step_page(
            MEDICINES,
            number=2,
            total=8,
            screen=both.screen,
            returning=returning,
            rows=1,
            data={"M6": ["people"]},
            token="t",
            idle_seconds=60,
            hidden=hidden,
            back_to_review=returning,
        )

    with app.test_request_context(f"/step/2?screen={both.screen}"):
        whole, without_m5, again = page(frozenset()), page(frozenset({"M5"})), page(frozenset())
        assert {"M5", "M6"} <= names_on(whole) and whole == again
        assert "M5" not in names_on(without_m5) and "M6" in names_on(without_m5)
        # From the review, the screen that is last for this visit goes back to it.
        last_here = page(frozenset(), returning=True)
        assert 'value="next" class="primary">Back to review<' in last_here
        assert len(app.extensions[patient_forms.SKELETON_CACHE]) == 3


# --- the summary, the text export, FHIR and CSV -------------------------------------------

NOT_TAKING_FORM = {
    **FULL_ANSWERS,
    2: {"M0": "no", "M6": ["people"]},
    3: {"P2": ["felt_better"], "P3": "same"},
}


def finish_not_taking(app, ref="A-1001", in_person=()):
    """finish_visit for a patient answering M0 "no": each step posted whole, as there,
    its token taken from the page the step opens on (step 3 opens on its second screen)."""
    invitation = make_invitation(app, patient_ref=ref)
    phone = Patient(app.test_client())
    phone.start(invitation.token)
    for number in range(1, 11):
        page = phone.client.get(f"/step/{number}", follow_redirects=True)
        data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "next"}
        phone.client.post(f"/step/{number}", data={**data, **NOT_TAKING_FORM.get(number, {})})
    phone.post("/review", {"action": "submit", "in_person": list(in_person)})
    return invitation


def blocks(page: dict) -> dict[str, str]:
    return {label: answer for _title, block in page["blocks"] for label, answer in block}


def summary(client, visit_id) -> tuple[dict, str]:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    text = client.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    return summary_on_page(html), text


def test_the_summary_reads_not_asked_never_skipped(app, psychiatrist):
    invitation = finish_not_taking(app)
    page, text = summary(psychiatrist, invitation.visit_id)
    body = blocks(page)
    assert body[Q.items["M0"].short] == "No"
    for item_id, short in SHORTS.items():
        assert body[short] == NOTE, item_id
        assert f"- {short}: {NOTE}" in text
    assert "Stance" not in body  # neither part was asked; their own rows say so
    assert body[Q.items["M6"].short] == "Time with people I care about"
    medicines = dict(page["blocks"])["Medicines"]
    assert next(label for label, _answer in medicines) == Q.items["M0"].short
    footer = " ".join(page["footer"])
    assert not any(short in footer for short in SHORTS.values())
    assert not any(
        short in line
        for line in text.splitlines()
        for short in SHORTS.values()
        if line.startswith("Skipped")
    )
    assert "skipped" not in " ".join(body.values()).lower()
    assert "not reached" not in " ".join(body.values())
    # The page and the text export say the same.
    assert summary_in_text(text)["blocks"] == page["blocks"]


def test_no_flag_reads_an_unasked_item(app, psychiatrist):
    """Even answers stored before (or by other means) are never read once M0 is "no"."""
    invitation = finish_not_taking(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        # As data from elsewhere might hold: every medicine answer that would fire.
        for item_id, value in (
            ("P1", "stopped"),
            ("M3", ["controls_me"]),
            ("M4", 9),
            ("M5", ["side_effects", "dependent"]),
        ):
            db.execute(
                "INSERT INTO answers (visit_id, item_id, value, updated_at, language) "
                "VALUES (?, ?, json(?), '2026-11-25 09:00:00', 'en')",
                (invitation.visit_id, item_id, __import__("json").dumps(value)),
            )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    titles = [flag[0] for flag in page["flags"]] + page["also_noted"]
    for title in ("Self-adjusting", "Control", "Ambivalence"):
        assert title not in " ".join(titles)
    assert "Stops at recovery" in " ".join(titles)  # P2 is asked as usual
    body = blocks(page)
    for short in SHORTS.values():
        assert body[short] == NOTE
    assert "becoming dependent" not in text
    # Nor do they leave in FHIR.
    with app.test_request_context():
        response = api.response_for(storage.get_visit(get_db(), invitation.visit_id))
    links = {i["linkId"] for g in response["item"] for i in g["item"]}
    assert not links & set(NOT_ASKED) and "M0" in links


def test_a_held_no_keeps_its_unasked_items_held_too(app, psychiatrist):
    """Held for in person, M0 shows only its topic: the items it left unasked read "to
    discuss in person" rather than giving the answer away."""
    invitation = finish_not_taking(app, in_person=["M0"])
    page, text = summary(psychiatrist, invitation.visit_id)
    body = blocks(page)
    assert body[Q.items["M0"].short] == "to discuss in person"
    for short in SHORTS.values():
        assert body[short] == "to discuss in person"
    assert "not taking medicine" not in text


@pytest.mark.parametrize("held_visit", ["this", "last"])
def test_a_held_no_is_not_given_away_by_since_last_visit(app, psychiatrist, clock, held_visit):
    """Found by a second reader: with an earlier visit, "Not compared, not asked this
    time (not taking medicine)" printed what the held M0 answer was."""
    if held_visit == "last":
        finish_not_taking(app, ref="NT-1", in_person=["M0"])
        clock.advance(days=28)
        invitation = finish_visit(app, ref="NT-1")
    else:
        finish_visit(app, ref="NT-1")
        clock.advance(days=28)
        invitation = finish_not_taking(app, ref="NT-1", in_person=["M0"])
    login(psychiatrist, "dr@example.org")
    _page, text = summary(psychiatrist, invitation.visit_id)
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    for shown in (text, html):
        assert "not taking medicine" not in shown
        assert "not asked" not in shown.lower()


def test_since_last_visit_says_not_asked_never_not_answered(app, psychiatrist, clock):
    finish_visit(app, ref="NT-1")  # taking medicine: need 8/10, worries, feelings
    clock.advance(days=28)
    invitation = finish_not_taking(app, ref="NT-1")
    login(psychiatrist, "dr@example.org")  # a month later: a new sign-in
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(
        as_text=True
    )
    changes = summary_in_text(text)["changes"]
    unasked = [line for line in changes if line.startswith("Not compared, not asked this time")]
    assert unasked == [
        "Not compared, not asked this time (not taking medicine): How much they need it to "
        "stay well, Overall feeling about taking medicine, and Worries about medicine"
    ]
    assert not any("not answered this time" in line for line in changes)
    assert not any(line.startswith("Stance:") for line in changes)  # no stance this time
    assert unasked[0] in html.replace("&#39;", "'")


def test_a_visit_answered_before_m0_never_reads_not_asked(app, psychiatrist):
    """A 2026.2 visit was never asked M0: nothing of it shows, and its medicine answers
    read as they always did."""
    invitation = finish_visit(app)
    with closing(storage.connect(app.config["DATABASE"])) as db:
        db.execute(
            "UPDATE visits SET questionnaire_version = '2026.2' WHERE id = ?",
            (invitation.visit_id,),
        )
        db.execute(
            "DELETE FROM answers WHERE visit_id = ? AND item_id IN ('M0', 'M2')",
            (invitation.visit_id,),
        )
        db.conn.commit()
    page, text = summary(psychiatrist, invitation.visit_id)
    assert Q.items["M0"].short not in text and "not asked" not in text
    assert Q.items["M0"].short not in " ".join(page["footer"])
    assert "Skipped: Overall feeling about taking medicine" in text
    assert blocks(page)["Stance"].startswith("Need 8/10")


def test_fhir_says_when_the_medicine_questions_are_enabled(app):
    with app.app_context():
        resource = api.questionnaire_json()
    FhirQuestionnaire.model_validate(resource)
    items = {i["linkId"]: i for g in resource["item"] for i in g["item"]}
    for item_id in NOT_ASKED:
        assert items[item_id]["enableBehavior"] == "any"
        assert items[item_id]["enableWhen"] == [
            {"question": "M0", "operator": "exists", "answerBoolean": False},
            {
                "question": "M0",
                "operator": "!=",
                "answerCoding": {"system": fhir.code_system("M0"), "code": "no"},
            },
        ]
    assert "enableWhen" not in items["M0"] and "enableWhen" not in items["M6"]
    assert [o["valueCoding"]["code"] for o in items["M0"]["answerOption"]] == [
        "yes",
        "no",
        "not_sure",
    ]


def test_fhir_response_has_m0_and_no_unasked_item(app):
    invitation = finish_not_taking(app)
    with app.test_request_context():
        visit = storage.get_visit(get_db(), invitation.visit_id)
        response = api.response_for(visit)
        resource = api.questionnaire_json()
    QuestionnaireResponse.model_validate(response)
    assert check_response(response, resource) == []
    medicines = next(g for g in response["item"] if g["linkId"] == "medicines")
    assert medicines["item"][0] == {
        "linkId": "M0",
        "text": questionnaire.default().items["M0"].prompt,
        "answer": [
            {"valueCoding": {"system": fhir.code_system("M0"), "code": "no", "display": "No"}}
        ],
    }
    # The project's own check refuses an answer the enableWhen leaves unasked.
    going = next(g for g in response["item"] if g["linkId"] == "going")
    going["item"].insert(
        0,
        {
            "linkId": "P1",
            "answer": [{"valueCoding": {"system": fhir.code_system("P1"), "code": "stopped"}}],
        },
    )
    assert check_response(response, resource) == [
        "P1: answered, but its enableWhen leaves it unasked"
    ]
    # Answered "yes", it is enabled.
    medicines["item"][0]["answer"][0]["valueCoding"]["code"] = "yes"
    assert check_response(response, resource) == []


def test_the_csv_has_m0_and_empty_cells_for_unasked_items():
    header = exports.header(Q)
    assert header[header.index("M0") : header.index("M0") + 3] == ["M0", "M0 label", "M1"]
    visit = Visit(
        id=1,
        patient_ref="NT-1",
        appointment_at=datetime(2026, 11, 25, 14, 30),
        token_hash="token",
        code_hash="code",
        expires_at=datetime(2026, 11, 25, 23, 59, 59),
        created_at=datetime(2026, 11, 25, 9, 0),
        status="submitted",
    )
    row = dict(zip(header, exports.row(Q, visit, examples.NOT_TAKING, set()), strict=True))
    assert (row["M0"], row["M0 label"]) == ("no", "No")
    for item_id in NOT_ASKED:
        assert row[item_id] == ""


def test_the_examples_not_taking_medicine_hold_no_unasked_item():
    assert examples.NOT_TAKING["M0"] == "no"
    assert not set(NOT_ASKED) & set(examples.NOT_TAKING)
    for name in dir(examples):
        answers = getattr(examples, name)
        if name.isupper() and not name.endswith("_FORM") and answers.get("M0") != "no":
            assert answers.get("M0") == "yes", name


@pytest.mark.parametrize("code", ["es", "fr", "pt_BR", "zh_Hans", "vi", "ar"])
def test_every_language_says_not_asked_in_its_own_words(app, psychiatrist, code):
    from tests.web.test_languages import page_text, translated

    invitation = finish_not_taking(app)
    phone, _ = on_m0(app)
    walk_to_review(phone, answer_m0(phone, "no"))
    review = page_text(phone.client.get(f"/review?lang={code}"))
    step = page_text(phone.client.get(full(M0_URL) + f"&lang={code}"))
    summary_page = page_text(
        psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary?lang={code}")
    )
    wanted = {
        review: [
            "Questions about taking medicine were not asked, because you said you are not "
            "taking any right now."
        ],
        step: [Q.items["M0"].prompt, Q.items["M0"].help],
        summary_page: [NOTE, Q.items["M0"].short],
    }
    for text, msgids in wanted.items():
        for msgid in msgids:
            assert " ".join(translated(code, msgid).split()) in " ".join(text.split()), msgid
            assert msgid not in text


def test_a_kept_skeleton_never_shows_another_visits_progress(app):
    """The first screen asks the same questions of every visit, but its progress counts
    the screens this visit meets: one screen fewer once M0 is "no"."""
    phone_no, _ = on_m0(app)
    answer_m0(phone_no, "no")
    phone_yes, _ = on_m0(app)
    answer_m0(phone_yes, "yes")
    for _round in range(2):  # the second round comes from the kept skeletons
        no = phone_no.client.get(M0_URL).get_data(as_text=True)
        yes = phone_yes.client.get(M0_URL).get_data(as_text=True)
        assert progress(no) == f"Step 1 of {len(patient_forms.shown_pages(Q, NOT_ASKED_SET))}"
        assert progress(yes) == f"Step 1 of {len(patient_forms.shown_pages(Q, NO_MEASURES))}"
