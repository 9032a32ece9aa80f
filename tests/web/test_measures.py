"""Standard measures beside the reflection, through the real pages (issue 25; CONTENT.md
v3, "Optional validated measures"): chosen per invitation, asked before the safety
question word for word, PHQ-9's item 9 asked once as S1, scored on the one page with the
same patient's trend, and never asked without an official text in the patient's
language."""

from __future__ import annotations

import html as html_lib
import re
from contextlib import closing
from datetime import timedelta

from patientapp.db import storage
from patientapp.questionnaire import model as questionnaire
from tests.conftest import (
    Patient,
    checked,
    create_user,
    csrf_from,
    login,
    make_invitation,
    progress_of,
)

Q = questionnaire.default()
BOTH = ("gad7", "phq9")


def gad7(value: str) -> dict:
    return {f"GAD7_{n}": value for n in range(1, 8)}


def phq9(value: str) -> dict:
    return {f"PHQ9_{n}": value for n in range(1, 9)}


def answer(app, client, invitation, gad=None, phq=None, s1="not_at_all", in_person=(), lang=None):
    """A patient who skips the reflection, answers the measures and S1, and sends."""
    patient = Patient(client)
    patient.open(invitation.token)
    if lang:
        client.get(f"/welcome?lang={lang}")
    patient.post("/welcome", {})
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/step/8", {"action": "next", **(gad or {})})
    patient.post("/step/9", {"action": "next", **(phq or {})})
    patient.post("/step/10", {"action": "next", "S1": s1})
    return patient.post("/review", {"action": "submit", "in_person": list(in_person)})


def summary(client, visit_id) -> tuple[str, str]:
    html = client.get(f"/staff/visits/{visit_id}/summary").get_data(as_text=True)
    text = client.get(f"/staff/visits/{visit_id}/summary.txt").get_data(as_text=True)
    return html, text


def measure_lines(html: str) -> list[str]:
    """The Measures lines as they read on paper (what only screen readers hear left out)."""
    html = re.sub(r'<span class="visually-hidden">.*?</span>', "", html)
    found = re.findall(r'<p class="measure[^"]*">(.*?)</p>', html, re.S)
    return [
        re.sub(r"\s+", " ", re.sub(r"<svg.*?</svg>|<[^>]+>", "", line, flags=re.S)).strip()
        for line in found
    ]


def test_staff_choose_the_measures_per_invitation_with_the_settings_default(app, client, db):
    create_user(app, "boss@example.org", "admin")
    login(client, "boss@example.org")
    page = client.get("/staff/invitations/new").get_data(as_text=True)
    assert "PHQ-9" in page and "GAD-7" in page and checked(page, "measures") == []
    settings = client.get("/admin/settings").get_data(as_text=True)
    assert checked(settings, "measures") == []
    storage.save_settings(db, {"measures": ["phq9"]})
    page = client.get("/staff/invitations/new").get_data(as_text=True)
    assert checked(page, "measures") == ["phq9"]  # the clinic's default, ticked
    response = client.post(
        "/staff/invitations/new",
        data={
            "csrf_token": csrf_from(page),
            "patient_ref": "Q-7",
            "day": app.config["CLOCK"]().date().isoformat(),
            "time": "15:00",
            "psychiatrist": "0",
            "language": "",
            "measures": ["gad7", "phq9"],
        },
    )
    assert response.status_code == 302
    visit_id = int(re.search(r"/visits/(\d+)", response.headers["Location"]).group(1))
    visit = storage.get_visit(db, visit_id)
    assert visit.chosen == BOTH and visit.offered == ()
    # An unknown measure is refused with a message, keeping what was typed.
    page = client.get("/staff/invitations/new").get_data(as_text=True)
    refused = client.post(
        "/staff/invitations/new",
        data={"csrf_token": csrf_from(page), "patient_ref": "Q-8", "measures": ["bdi"]},
    )
    assert refused.status_code == 422 and 'value="Q-8"' in refused.get_data(as_text=True)


def test_the_measures_are_asked_word_for_word_before_the_safety_question(app, client, db):
    invitation = make_invitation(app, measures=BOTH)
    patient = Patient(client)
    patient.start(invitation.token)
    visit = storage.get_visit(db, invitation.visit_id)
    assert visit.offered == BOTH
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    page = client.get("/step/8?screen=1").get_data(as_text=True)
    assert "Worry in the last 2 weeks" in page
    assert (
        "Over the last 2 weeks, how often have you been bothered by the following problems?" in page
    )
    assert "Feeling nervous, anxious or on edge" in page
    assert progress_of("GAD7_1", measures=BOTH) in page
    for label in ("Not at all", "Several days", "More than half the days", "Nearly every day"):
        assert label in page
    patient.post("/step/8", {"action": "next", **gad7("several_days")})
    page = client.get("/step/9?screen=1").get_data(as_text=True)
    assert (
        "Mood in the last 2 weeks" in page and "Little interest or pleasure in doing things" in page
    )
    # PHQ-9's item 9 is S1, asked once: never on a PHQ-9 screen.
    screens = "".join(
        client.get(f"/step/{n}?screen={k}").get_data(as_text=True)
        for n in (8, 9)
        for k in (1, 2, 3)
    )
    assert "better off dead" not in screens and 'name="S1"' not in screens


def test_scores_and_bands_on_the_page_and_in_the_text(app, client, psychiatrist):
    invitation = make_invitation(app, measures=BOTH)
    answer(
        app,
        client.application.test_client(),
        invitation,
        gad7("several_days"),
        phq9("more_than_half"),
    )
    html, text = summary(psychiatrist, invitation.visit_id)
    assert measure_lines(html) == ["GAD-7: 7/21 (mild)", "PHQ-9: 16/27 (moderately severe)"]
    assert "GAD-7: 7/21 (mild)" in text and "PHQ-9: 16/27 (moderately severe)" in text
    # A score never replaces the patient's words, nor lists measure items as skipped.
    assert "Little interest" not in html.split('class="footer')[-1]


def test_a_worrying_item_9_raises_the_alert_and_counts_in_the_total(app, client, psychiatrist, db):
    invitation = make_invitation(app, measures=BOTH)
    answer(
        app,
        client.application.test_client(),
        invitation,
        gad7("not_at_all"),
        phq9("several_days"),
        s1="several_days",
    )
    assert storage.alert_for(db, invitation.visit_id) is not None
    assert [a.value for a in storage.safety_answers(db, invitation.visit_id)] == ["several_days"]
    html, _text = summary(psychiatrist, invitation.visit_id)
    assert "PHQ-9: 9/27 (mild)" in measure_lines(html)


def test_a_held_or_skipped_item_gives_no_total_and_the_page_says_why(app, client, psychiatrist):
    invitation = make_invitation(app, measures=BOTH)
    gad = {**gad7("several_days"), "GAD7_4": ""}
    answer(
        app,
        client.application.test_client(),
        invitation,
        gad,
        phq9("several_days"),
        in_person=["PHQ9_3"],
    )
    html, text = summary(psychiatrist, invitation.visit_id)
    assert measure_lines(html) == [
        "GAD-7: no total: 1 question skipped",
        "PHQ-9: no total: 1 answer held for in person",
    ]
    assert "PHQ-9: no total: 1 answer held for in person" in text
    held = re.search(r'class="held-line">(.*?)</p>', html, re.S).group(1)
    assert "PHQ-9 #3" in held  # the held topic is named, its answer never shown
    assert "several days" not in held.lower()


def test_the_trend_over_three_visits_as_numbers_and_a_chart(app, client, psychiatrist, clock):
    days = []
    for n, (value, ref) in enumerate(
        [("nearly_every_day", "T 44"), ("more_than_half", "t44"), ("several_days", "T44")]
    ):
        when = clock().replace(hour=9) + timedelta(days=7 * n)
        clock.advance(minutes=5)  # sent one after the other
        invitation = make_invitation(app, patient_ref=ref, when=when, measures=("phq9",))
        answer(app, client.application.test_client(), invitation, phq=phq9(value), s1="not_at_all")
        days.append(invitation.visit_id)
    html, text = summary(psychiatrist, days[-1])
    (line,) = measure_lines(html)
    assert line == "PHQ-9: 8/27 (mild) · \u22128 · earlier: 24, 16"
    assert re.search(r'title="\u22128 since \S+"', html)  # with the date, on screen
    chart = re.search(r'<svg class="trend".*?</svg>', html, re.S).group(0)
    assert chart.count("<circle") == 3, chart
    label = re.search(r'aria-label="([^"]*)"', chart).group(1)
    # Read out with each total's date (the dates of the visits, a week apart).
    assert re.fullmatch(
        r"PHQ-9 totals, oldest first: 24 \(\S+\), 16 \(\S+\), and 8 \(\S+\)", label
    ), label
    assert f"<title>{label}</title>" in chart
    assert "<script" not in chart and 'stroke="#000"' in chart
    assert re.search(r"PHQ-9: 8/27 \(mild\); \u22128 since \S+; earlier: 24, 16", text)
    # GAD-7 was never included: no line for it.
    assert not any(line.startswith("GAD-7") for line in measure_lines(html))
    # The two earlier visits whose totals the page shows are audited as read with it.
    with closing(storage.connect(app.config["DATABASE"])) as db:
        shown = storage.audit_entries(db, action="earlier_visit_shown")
    assert {e["visit_id"] for e in shown} == set(days[:2])
    assert {e["detail"] for e in shown} == {
        f"summary_viewed of visit {days[-1]}",
        f"summary_exported of visit {days[-1]}",
    }


def test_only_the_earlier_visits_the_page_shows_are_audited_as_read_with_it(
    app, client, psychiatrist, clock
):
    """A GAD-7 visit, then five PHQ-9 visits, then today's PHQ-9: the page shows the last
    four earlier PHQ-9 totals and compares with the last visit, nothing of the first two."""
    made = []
    for n, measure in enumerate(["gad7"] + ["phq9"] * 6):
        when = clock().replace(hour=9) + timedelta(days=7 * n)
        clock.advance(minutes=5)
        invitation = make_invitation(app, patient_ref="T 45", when=when, measures=(measure,))
        values = (
            {"gad": gad7("several_days")} if measure == "gad7" else {"phq": phq9("several_days")}
        )
        answer(app, client.application.test_client(), invitation, **values)
        made.append(invitation.visit_id)
    login(psychiatrist, "dr@example.org")  # 35 minutes on: a new sign-in
    html, _text = summary(psychiatrist, made[-1])
    (line,) = measure_lines(html)
    assert line.endswith("earlier: 8, 8, 8, 8"), line  # four of the five
    with closing(storage.connect(app.config["DATABASE"])) as db:
        shown = storage.audit_entries(db, action="earlier_visit_shown")
    assert {e["visit_id"] for e in shown} == set(made[2:6])
    assert not {made[0], made[1]} & {e["visit_id"] for e in shown}


def test_not_offered_without_an_official_text_in_the_patients_language(
    app, client, psychiatrist, db
):
    invitation = make_invitation(app, measures=BOTH)
    response = answer(app, client.application.test_client(), invitation, lang="vi")
    visit = storage.get_visit(db, invitation.visit_id)
    assert visit.chosen == BOTH and visit.offered == ()
    assert response.status_code == 200
    html, text = summary(psychiatrist, invitation.visit_id)
    assert measure_lines(html) == [
        "GAD-7 not offered in Tiếng Việt",
        "PHQ-9 not offered in Tiếng Việt",
    ]
    assert "PHQ-9 not offered in Tiếng Việt" in text


def test_a_measure_not_offered_is_never_shown_nor_stored(app, client, db):
    invitation = make_invitation(app)  # no measures
    patient = Patient(client)
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    response = client.get("/step/8")
    assert response.status_code == 302 and response.headers["Location"].startswith("/step/10")
    # A forged post of a measure's answers stores nothing.
    client.post(
        "/step/9",
        data={
            "csrf_token": csrf_from(client.get("/step/10").get_data(as_text=True)),
            **phq9("nearly_every_day"),
        },
    )
    answers, _ = storage.answers_for(db, invitation.visit_id)
    assert not any(key.startswith("PHQ9") for key in answers)
    assert progress_of("S1") in client.get("/step/10").get_data(as_text=True)


def test_a_language_switch_after_starting_keeps_the_official_english_words(app, client):
    invitation = make_invitation(app, measures=("gad7",))
    patient = Patient(client)
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    page = patient.post("/step/8?screen=1", {"lang": "es", "GAD7_1": "several_days"}).get_data(
        as_text=True
    )
    assert 'lang="es"' in page
    assert re.search(r'<p class="intro" lang="en" dir="ltr">Over the last 2 weeks', page)
    assert re.search(r'<legend lang="en" dir="ltr">Feeling nervous', page)
    assert "Feeling nervous, anxious or on edge" in page and "Several days" in page


def test_a_held_measure_answer_is_held_on_the_review(app, client):
    invitation = make_invitation(app, measures=("gad7",))
    patient = Patient(client)
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/step/8", {"action": "next", **gad7("more_than_half")})
    review = patient.post("/step/10", {"action": "next", "S1": "not_at_all"}).get_data(as_text=True)
    assert "Feeling nervous, anxious or on edge" in review and 'id="hold-GAD7_1"' in review
    assert 'id="hold-S1"' not in review  # the safety answer is always read


def test_the_invitation_page_names_the_measures_it_includes(app, psychiatrist):
    with_both = make_invitation(app, patient_ref="M-1", measures=BOTH)
    without = make_invitation(app, patient_ref="M-2")
    page = psychiatrist.get(f"/staff/visits/{with_both.visit_id}/invitation").get_data(as_text=True)
    assert "Standard measures: GAD-7, PHQ-9" in page
    page = psychiatrist.get(f"/staff/visits/{without.visit_id}/invitation").get_data(as_text=True)
    assert "Standard measures:" not in page
    assert "not offered in" not in page


def test_the_invitation_page_says_when_its_language_has_no_official_text(app, psychiatrist):
    """Found on a walk: invitations suggesting Spanish or Arabic named both measures, and
    only the summary said afterwards "PHQ-9 not offered in Español"."""
    spanish = make_invitation(app, patient_ref="M-3", measures=BOTH, language="es")
    page = psychiatrist.get(f"/staff/visits/{spanish.visit_id}/invitation").get_data(as_text=True)
    assert (
        "GAD-7, PHQ-9: not offered in Español. A patient who starts in Español answers the "
        "other questions only."
    ) in html_lib.unescape(page)
    english = make_invitation(app, patient_ref="M-4", measures=BOTH, language="en")
    page = psychiatrist.get(f"/staff/visits/{english.visit_id}/invitation").get_data(as_text=True)
    assert "Standard measures: GAD-7, PHQ-9" in page and "not offered in" not in page


def test_the_welcome_promises_the_minutes_with_the_measures_it_will_ask(app, client):
    from patientapp.questionnaire import timing

    both = tuple(Q.instrument(m) for m in BOTH)
    with_measures = timing.promised_minutes("en", both)
    without = timing.promised_minutes("en")
    assert with_measures >= without + 3  # 15 questions more, modelled from their words
    for measures, minutes in ((BOTH, with_measures), ((), without)):
        invitation = make_invitation(app, patient_ref=f"W-{len(measures)}", measures=measures)
        page = Patient(app.test_client()).open(invitation.token).get_data(as_text=True)
        assert f"It takes about {minutes} minutes." in page
    # Not offered in Vietnamese: the Vietnamese promise is the reflection's alone.
    invitation = make_invitation(app, patient_ref="W-vi", measures=BOTH, language="vi")
    page = Patient(app.test_client()).open(invitation.token).get_data(as_text=True)
    assert f"{timing.promised_minutes('vi')} phút" in page


def test_a_save_never_stores_a_measure_the_visit_does_not_ask(app, db, clock):
    """Below the pages too: answers to a measure not offered are dropped on saving."""
    from patientapp.domain import visits

    invitation = make_invitation(app, measures=("gad7",))
    visits.start(db, invitation.visit_id, language="en", version=Q.version, now=clock())
    values = {**phq9("nearly_every_day"), **gad7("several_days")}
    assert visits.save_step(db, invitation.visit_id, values, step=8, next_step=9, now=clock())
    answers, _ = storage.answers_for(db, invitation.visit_id)
    assert set(answers) == set(gad7("x"))


def test_not_offered_names_the_language_the_patient_started_in(app, client, psychiatrist, db):
    """Started in Vietnamese (nothing offered), then switched to English: the page names
    Vietnamese, where the measures were not offered, not English."""
    invitation = make_invitation(app, measures=("phq9",))
    patient = Patient(client.application.test_client())
    patient.open(invitation.token)
    patient.client.get("/welcome?lang=vi")
    patient.post("/welcome", {})
    patient.post("/step/1", {"lang": "en"})  # the switch on the first screen
    for number in range(1, 11):
        patient.post(f"/step/{number}", {"action": "next"})
    patient.post("/review", {"action": "submit"})
    visit = storage.get_visit(db, invitation.visit_id)
    assert (visit.answer_language, visit.measures_language, visit.offered) == ("en", "vi", ())
    html, _text = summary(psychiatrist, invitation.visit_id)
    assert measure_lines(html) == ["PHQ-9 not offered in Tiếng Việt"]


def test_a_change_against_an_older_visit_says_its_date_on_paper(app, client, psychiatrist, clock):
    """The last visit included no measure: the change is against the one before it, and
    the page names that visit's date instead of leaving "since last visit" implied."""
    ids = []
    for n, (measures, value) in enumerate(
        ((("phq9",), "more_than_half"), ((), None), (("phq9",), "several_days"))
    ):
        clock.advance(minutes=5)
        when = clock().replace(hour=9) + timedelta(days=7 * n)
        invitation = make_invitation(app, patient_ref="OLD-1", when=when, measures=measures)
        answer(
            app, client.application.test_client(), invitation, phq=phq9(value) if value else None
        )
        ids.append(invitation.visit_id)
    html, _text = summary(psychiatrist, ids[-1])
    (line,) = measure_lines(html)
    assert re.fullmatch(r"PHQ-9: 8/27 \(mild\) · \u22128 since \S+ · earlier: 16", line), line


def test_a_safety_page_served_before_the_upgrade_still_saves_its_answer(app, client, db):
    """The safety question was step 8 before the measures came; a page opened then posts
    there, now GAD-7's step. The answer is saved and the alert raised, never dropped."""
    invitation = make_invitation(app)
    patient = Patient(client)
    patient.start(invitation.token)
    for number in range(1, 8):
        patient.post(f"/step/{number}", {"action": "next"})
    token = csrf_from(client.get("/step/10").get_data(as_text=True))
    response = client.post(
        "/step/8", data={"csrf_token": token, "action": "next", "S1": "several_days"}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/safety")
    answers, _ = storage.answers_for(db, invitation.visit_id)
    assert answers["S1"] == "several_days"
    assert storage.alert_for(db, invitation.visit_id) is not None


def test_a_measure_whose_published_rule_prorates_says_so_on_the_page(
    app, client, psychiatrist, monkeypatch
):
    """No shipped measure prorates; one whose file cites a rule that allows it gives a
    total from the answers given, and the page says how it was reached."""
    from dataclasses import replace

    invitation = make_invitation(app, measures=("gad7",))
    gad = {**gad7("more_than_half"), "GAD7_7": ""}
    answer(app, client.application.test_client(), invitation, gad)
    html, _text = summary(psychiatrist, invitation.visit_id)
    assert measure_lines(html) == ["GAD-7: no total: 1 question skipped"]
    prorating = replace(Q.instrument("gad7"), prorate_max_missing=1, prorate_source="test rule")
    others = tuple(i for i in Q.instruments if i.id != "gad7")
    monkeypatch.setattr(
        questionnaire, "default", lambda: replace(Q, instruments=(prorating, *others))
    )
    html, text = summary(psychiatrist, invitation.visit_id)
    # 2 x 6 answered, mean 2, times 7 = 14: "moderate".
    assert measure_lines(html) == ["GAD-7: 14/21 (moderate) (prorated from 6 of 7 answers)"]
    assert "GAD-7: 14/21 (moderate) (prorated from 6 of 7 answers)" in text
