"""The one page, version 3, as a psychiatrist reads it: converging evidence first and
counted, an opener for every "Also noted" flag on screen, the article's practice names,
and a language tag only where the reader's language differs, outside the quotation
marks (CONTENT.md v3, "Flags" and "The one-page summary")."""

from __future__ import annotations

import copy
import re

from tests.conftest import FULL_ANSWERS, finish_visit, login
from tests.web.staff.test_staff import plain, summary_in_text, summary_on_page

# R5, M3 and R2 all speak of control (the patient), with HARD TO SAY (R1 = 1),
# AMBIVALENCE and SELF-ADJUSTING firing too.
CONTROL_PATIENT = copy.deepcopy(FULL_ANSWERS)
CONTROL_PATIENT[2]["M3"] = ["punishment"]
CONTROL_PATIENT[7] = {**CONTROL_PATIENT[7], "R2": "mostly_me", "R5": "control_me"}


def calm(**steps) -> dict:
    """FULL_ANSWERS with low need and medicine taken as prescribed (AMBIVALENCE,
    SELF-ADJUSTING and STOPS AT RECOVERY silent), R1 = 3, and the given steps changed."""
    answers = copy.deepcopy(FULL_ANSWERS)
    answers[2] = {**answers[2], "M4": "3"}
    answers[3] = {"P1": "as_prescribed", "P2": ["never"], "P3": "same"}
    answers[7] = {**answers[7], "R1": "3"}
    for number, changed in steps.items():
        answers[int(number[1:])] = {**answers[int(number[1:])], **changed}
    return answers


def read(client, visit_id) -> tuple[dict, str, str]:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    text = client.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    return summary_on_page(html), html, text


def test_control_from_three_answers_is_shown_second_and_says_so(app, psychiatrist):
    invitation = finish_visit(app, CONTROL_PATIENT)
    page, _html, text = read(psychiatrist, invitation.visit_id)
    titles = [flag[0] for flag in page["flags"]]
    # AMBIVALENCE converges too (M4, M5, M2 and H2): both before SELF-ADJUSTING.
    assert titles == ["Hard to say", "Ambivalence", "Control"]
    control = page["flags"][2]
    assert control[1] == "Identification of patterns and Interpersonal experiences"
    assert control[2] == "3 answers point here"
    assert "- Control (Identification of patterns and Interpersonal experiences) " in text
    assert "[3 answers point here]: " in text
    assert summary_in_text(text)["flags"] == page["flags"]


def test_without_converging_evidence_the_priority_order_holds(app, psychiatrist):
    three = calm(s2={"M3": ["punishment"]}, s7={"R2": "mostly_me", "R5": "control_me"})
    two = calm(s2={"M3": ["punishment"]}, s7={"R5": "control_me"})  # not converging
    first = read(psychiatrist, finish_visit(app, three).visit_id)[0]
    assert [flag[0] for flag in first["flags"]] == [
        "Control",
        "Family / culture",
        "Past treatment hurt",
    ]
    second = read(psychiatrist, finish_visit(app, two, ref="A-1002").visit_id)[0]
    assert [flag[0] for flag in second["flags"]] == [
        "Control",
        "Family / culture",
        "Past treatment hurt",
    ]
    assert second["flags"][0][2] == "2 answers point here"  # more than one: counted
    moved = calm(s2={"M3": ["punishment"]}, s7={"R2": "mostly_me", "R5": "control_me"})
    moved[3] = {"P1": "stopped", "P2": ["never"], "P3": "worse"}
    third = read(psychiatrist, finish_visit(app, moved, ref="A-1003").visit_id)[0]
    assert [flag[0] for flag in third["flags"]] == [
        "Control",
        "Self-adjusting",
        "Life harder",
    ]
    less = calm(s2={"M3": ["punishment"]}, s7={"R5": "control_me"})
    less[3] = {"P1": "stopped", "P2": ["never"], "P3": "worse"}
    fourth = read(psychiatrist, finish_visit(app, less, ref="A-1004").visit_id)[0]
    assert [flag[0] for flag in fourth["flags"]] == [
        "Self-adjusting",
        "Life harder",
        "Control",
    ]


def test_every_also_noted_flag_keeps_its_opener_on_screen_and_in_the_text(app, psychiatrist):
    invitation = finish_visit(app, CONTROL_PATIENT)
    page, html, text = read(psychiatrist, invitation.visit_id)
    names = page["also_noted"][0].removeprefix("Also noted: ").split(", ")
    assert len(names) == len(page["also_openers"]) >= 4
    for name, line in zip(names, page["also_openers"], strict=True):
        title, opener = line.split(": ", 1)
        assert title == name and opener.endswith("?")
    # v3's two new flags, with the patient's own answer in their openers.
    assert (
        "Worries about getting better: Feeling better can bring its own worries. You said "
        "feeling better could mean people expecting more of you. What would change for you?"
    ) in page["also_openers"]
    assert (
        "Feelings as signals: You said bad feelings are sometimes tied to what is going on "
        "in your life. What has been happening?"
    ) in page["also_openers"]
    assert summary_in_text(text)["also_openers"] == page["also_openers"]
    # On paper the names alone: the openers' list is not printed.
    assert '<ul class="also-openers no-print">' in html


def test_life_harder_names_interpersonal_experiences(app, psychiatrist):
    invitation = finish_visit(app, calm(s3={"P3": "much_worse"}))
    page, html, _text = read(psychiatrist, invitation.visit_id)
    shown = {flag[0]: flag[1] for flag in page["flags"]}
    assert shown.get("Life harder") == "Interpersonal experiences"
    assert "Relationship with the medicine" not in html


def test_a_quote_in_another_language_is_tagged_after_the_closing_mark(app, psychiatrist):
    answers = calm(s4={"F1": ["supportive"], "F2_text": "Mi madre reza por mí."})
    invitation = finish_visit(app, answers, language="es")
    page, html, text = read(psychiatrist, invitation.visit_id)
    family = next(flag for flag in page["flags"] if flag[0] == "Family / culture")
    # The tag stands outside the patient's words, never inside their quotation marks.
    assert family[3].startswith("You wrote “Mi madre reza por mí” [Español] about your")
    assert "mí [Español]”" not in html and "mí [Español]”" not in text
    assert "You wrote “Mi madre reza por mí” [Español] about your" in text


def test_no_tag_when_the_reader_reads_the_patients_language(app, psychiatrist):
    invitation = finish_visit(app, calm(s4={"F1": ["supportive"]}))
    page, html, text = read(psychiatrist, invitation.visit_id)
    family = next(flag for flag in page["flags"] if flag[0] == "Family / culture")
    assert family[3].startswith("You wrote “My mother says pills are weakness” about your")
    assert "[English]" not in plain(html.split("<article", 1)[1]) and "[English]" not in text
    assert "\x00" not in html and "\x00" not in text


def test_since_last_visit_names_a_held_item_held_never_not_answered(app, psychiatrist, clock):
    finish_visit(app, ref="HL-1", in_person=["P3"])  # held last time
    clock.advance(days=28)
    invitation = finish_visit(app, ref="HL-1", in_person=["R1"])  # and another today
    login(psychiatrist, "dr@example.org")  # a month later: a new sign-in
    html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary").get_data(as_text=True)
    changes = plain(html.split('class="changes"')[1].split("</section>")[0])
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(
        as_text=True
    )
    assert "Not compared, held for in person this time: Ease of voicing doubts" in changes
    assert (
        "Not compared, held for in person last time: Daily life and relationships lately" in changes
    )
    assert "not answered" not in changes
    assert "Not compared, held for in person this time: Ease of voicing doubts" in text


def test_an_empty_today_says_so_in_one_line_not_a_bare_heading(app, psychiatrist):
    answers = copy.deepcopy(FULL_ANSWERS)
    answers[1] = {}  # T1 and T2 skipped
    answers[3] = {"P1": "as_prescribed", "P2": ["never"]}  # P3 skipped
    answers[7] = {k: v for k, v in answers[7].items() if k != "R3"}  # R3 skipped
    invitation = finish_visit(app, answers)
    _page, html, text = read(psychiatrist, invitation.visit_id)
    today = html.split('<section class="agenda">')[1].split("</section>")[0]
    assert plain(today) == "Today Nothing to show: every item here was skipped."
    assert "Today\nNothing to show: every item here was skipped.\n" in text


def test_a_today_with_answers_has_no_empty_line(app, psychiatrist):
    invitation = finish_visit(app)
    _page, html, text = read(psychiatrist, invitation.visit_id)
    today = html.split('<section class="agenda">')[1].split("</section>")[0]
    assert "Nothing to show" not in today and "Nothing to show" not in text.split("\n\n")[2]


def test_an_unacknowledged_alert_says_so_on_paper(app, psychiatrist):
    answers = copy.deepcopy(FULL_ANSWERS)
    answers[10] = {"S1": "several_days"}
    invitation = finish_visit(app, answers)
    for path in ("summary", "print"):
        html = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/{path}").get_data(
            as_text=True
        )
        banner = html.split('<div class="banner"')[1].split("</div>")[0]
        printed = re.sub(r'<form[^>]*class="ack-form no-print".*?</form>', "", banner, flags=re.S)
        assert "Alert not yet acknowledged." in plain(printed)


def test_the_tag_follows_a_french_closing_mark_after_its_space(app, psychiatrist):
    invitation = finish_visit(app, calm(s4={"F1": ["supportive"]}))
    page = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary?lang=fr")
    html = page.get_data(as_text=True)
    text = psychiatrist.get(f"/staff/visits/{invitation.visit_id}/summary.txt?lang=fr")
    family = [f for f in summary_on_page(html)["flags"] if "weakness" in f[3]]
    [opener] = [f[3] for f in family]
    assert re.search(r"weakness\s*»\s*\[English\]", opener), opener
    assert "weakness [English]" not in opener
    assert re.search(r"weakness\s*»\s*\[English\]", text.get_data(as_text=True))


def test_a_nul_in_the_patients_words_never_moves_the_tag(app):
    from patientapp.questionnaire import model
    from patientapp.summary import rules, view

    opener = "You wrote “%(quote)s” here."
    flag = rules.Flag("family_culture", 7, (3,), "t", opener, (("quote", rules.Quote("a\x00b")),))
    with app.test_request_context():
        shown = view._flag_view(flag, model.default(), view.written("", "es"))
    assert shown.opener_text == "You wrote “ab” [Español] here."
    assert "\x00" not in shown.opener_html
    assert 'ab</span>” <span class="lang-tag">[Español]</span> here.' in shown.opener_html
