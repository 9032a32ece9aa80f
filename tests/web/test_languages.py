"""Seven languages: choosing one, mirroring Arabic, complete catalogs, mixed-language visits."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from babel.messages.pofile import read_po

from patientapp import create_app, i18n
from patientapp.cli import i18n as i18n_tools
from patientapp.db import storage
from patientapp.patient import forms as patient_forms
from patientapp.questionnaire import model as questionnaire
from tests.conftest import FULL_ANSWERS, Patient, create_user, finish_visit, login, make_invitation

SHIPPED = ["en", "es", "fr", "pt_BR", "zh_Hans", "vi", "ar"]
TRANSLATIONS = i18n.translations_source()


def catalog(code):
    with open(TRANSLATIONS / code / "LC_MESSAGES" / "messages.po", "rb") as fh:
        return read_po(fh, locale=code)


def translated(code, msgid):
    message = catalog(code).get(msgid)
    assert message is not None and message.string, (code, msgid)
    return message.string


def page_text(response) -> str:
    body = response.get_data(as_text=True)
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


def test_all_seven_languages_ship():
    assert i18n.available_languages() == SHIPPED


def test_every_catalog_is_complete():
    """The same check as `flask --app app i18n check`."""
    problems = i18n_tools.check_catalogs(TRANSLATIONS, i18n_tools.extract_template())
    assert set(problems) == set(SHIPPED) - {"en"}
    assert {code: p for code, p in problems.items() if p} == {}


def test_i18n_check_command_passes(runner):
    result = runner.invoke(args=["i18n", "check"])
    assert result.exit_code == 0, result.output
    for code in SHIPPED[1:]:
        assert re.search(rf"^{code}: \d+ messages, 100% translated, 0 fuzzy", result.output, re.M)


@pytest.mark.parametrize(
    ("code", "tag", "direction"),
    [
        ("en", "en", "ltr"),
        ("es", "es", "ltr"),
        ("fr", "fr", "ltr"),
        ("pt_BR", "pt-BR", "ltr"),
        ("zh_Hans", "zh-Hans", "ltr"),
        ("vi", "vi", "ltr"),
        ("ar", "ar", "rtl"),
    ],
)
def test_html_lang_and_dir(client, code, tag, direction):
    html = client.get(f"/start?lang={code}").get_data(as_text=True)
    assert f'<html lang="{tag}" dir="{direction}">' in html


def test_language_order(app, client):
    invitation = make_invitation(app, language="fr")
    # The invitation's suggestion beats the browser's Accept-Language...
    page = client.get(
        f"/v/{invitation.token}", headers={"Accept-Language": "es"}, follow_redirects=True
    )
    assert '<html lang="fr"' in page.get_data(as_text=True)
    # ...a choice on this device beats the suggestion...
    page = client.get("/welcome?lang=vi")
    assert '<html lang="vi"' in page.get_data(as_text=True)
    assert '<html lang="vi"' in client.get("/welcome").get_data(as_text=True)
    # ...and ?lang= beats everything, but only among offered languages.
    assert '<html lang="ar"' in client.get("/welcome?lang=ar").get_data(as_text=True)
    assert '<html lang="ar"' in client.get("/welcome?lang=de").get_data(as_text=True)


def test_accept_language_then_default(client):
    assert '<html lang="zh-Hans"' in client.get(
        "/start", headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    ).get_data(as_text=True)
    assert '<html lang="pt-BR"' in client.get("/start", headers={"Accept-Language": "pt"}).get_data(
        as_text=True
    )
    assert '<html lang="en"' in client.get("/start", headers={"Accept-Language": "de-DE"}).get_data(
        as_text=True
    )


def test_visit_language_follows_the_patient_to_another_device(app, patient):
    invitation = make_invitation(app)
    patient.open(invitation.token)
    patient.client.get("/welcome?lang=es")
    patient.post("/welcome", {})
    other = app.test_client()
    page = other.get(
        f"/v/{invitation.token}", headers={"Accept-Language": "en"}, follow_redirects=True
    )
    assert '<html lang="es"' in page.get_data(as_text=True)


def test_only_offered_languages(db, client):
    storage.save_settings(db, {"languages": ["en", "es"]})
    html = client.get("/start?lang=ar").get_data(as_text=True)
    assert '<html lang="en"' in html
    assert 'value="es"' in html and 'value="ar"' not in html


def test_refuses_to_start_without_a_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("PATIENTAPP_INSTANCE", str(tmp_path))
    monkeypatch.setattr(i18n, "translations_source", lambda: tmp_path / "empty")
    with pytest.raises(
        i18n.MissingCatalogError, match="Language 'es' is configured but has no catalog"
    ):
        create_app(
            {"SECRET_KEY": "x", "DATABASE": str(tmp_path / "db"), "OFFERED_LANGUAGES": ["en", "es"]}
        )
    with pytest.raises(i18n.MissingCatalogError, match="Unknown language codes configured: xx"):
        create_app(
            {"SECRET_KEY": "x", "DATABASE": str(tmp_path / "db"), "OFFERED_LANGUAGES": ["en", "xx"]}
        )


def test_switching_language_keeps_answers(app, patient, invitation):
    patient.start(invitation.token)
    page = patient.post("/step/1", {"lang": "es", "T2": "Quiero hablar del sueño", "T1": ["tired"]})
    html = page.get_data(as_text=True)
    assert '<html lang="es"' in html and "Step 1" not in html
    assert "Quiero hablar del sueño</textarea>" in html
    assert '<input checked id="T1-5" name="T1" type="checkbox" value="tired">' in html


@pytest.mark.parametrize("code", ["ar", "es"])
def test_full_journey_in(app, code):
    invitation = make_invitation(app, language=code)
    patient = Patient(app.test_client())
    page = patient.open(invitation.token)
    assert translated(code, "Before your visit") in page_text(page)
    page = patient.post("/welcome", {})
    q = questionnaire.default()
    screens = len(patient_forms.shown_pages(q, frozenset(q.not_asked({}))))  # no measures
    assert translated(code, "Step %(n)s of %(total)s") % {"n": 1, "total": screens} in page_text(
        page
    )
    answers = dict(FULL_ANSWERS)
    answers[1] = {"T1": ["worried"], "T2": "أريد أن أتحدث عن النوم" if code == "ar" else "El sueño"}
    for number in range(1, 11):
        page = patient.post(f"/step/{number}", {"action": "next", **answers.get(number, {})})
    text = page_text(page)
    assert translated(code, "Check your answers") in text
    assert translated(code, "Worried") in text
    assert answers[1]["T2"] in text
    page = patient.post("/review", {"action": "submit"})
    assert translated(code, "Thank you") in page_text(page)
    if code == "ar":
        assert '<html lang="ar" dir="rtl">' in page.get_data(as_text=True)


def test_validation_messages_are_translated(app, patient, invitation):
    patient.start(invitation.token)
    patient.client.get("/step/1?lang=vi")
    page = patient.post("/step/1", {"action": "next", "T1": ["calm", "sad", "tired", "numb"]})
    assert translated("vi", "Please pick no more than %(n)s.") % {"n": 3} in page_text(page)
    page = patient.post("/step/1", {"action": "next", "T1": ["made_up"]})
    assert translated("vi", "Please pick one of the choices shown.") in page_text(page)


def test_english_summary_of_an_arabic_visit(app, client):
    answers = dict(FULL_ANSWERS)
    arabic = "أريد أن أتحدث عن النوم"
    answers[1] = {"T1": ["worried"], "T2": arabic}
    invitation = finish_visit(app, answers, language="ar")
    create_user(app, "dr@example.org", "psychiatrist")
    login(client, "dr@example.org")
    html = client.get(f"/staff/visits/{invitation.visit_id}/summary?lang=en").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in html
    assert "Worried" in html and "Sertraline — Mixed" in html
    assert (
        f'<q class="quote" dir="auto" lang="ar" data-fit>{arabic}</q> '
        '<span class="lang-tag">[العربية]</span>' in html
    )
    text = client.get(f"/staff/visits/{invitation.visit_id}/summary.txt").get_data(as_text=True)
    # In plain text, marks keep the quotation marks and the tag in order (summary/bidi.py),
    # in the reader's direction: the page's text box has it too, never dir="auto", which
    # would give each line of a quote over several lines a direction of its own.
    assert f"\u200e“\u202b{arabic}\u202c”\u200e [العربية]" in text and "Worried" in text
    assert '<textarea id="record-text" readonly rows="8" dir="ltr">' in html
    # Read in Arabic, the language it was written in: no tag (v3, only where they differ).
    html = client.get(f"/staff/visits/{invitation.visit_id}/summary?lang=ar").get_data(as_text=True)
    assert f'<q class="quote" dir="auto" data-fit>{arabic}</q>' in html
    assert '<textarea id="record-text" readonly rows="8" dir="rtl">' in html
    assert '<span class="lang-tag">' not in html


def _english_strings_for(code):
    """English source strings whose translation differs, long enough to be unambiguous."""
    return [
        m.id
        for m in catalog(code)
        if m.id
        and isinstance(m.id, str)
        and m.string
        and m.string != m.id
        and len(m.id.split()) >= 3
        and "%(" not in m.id
    ]


def _pages(app):
    """Every patient and staff page a person can reach, as (name, client, url)."""
    invitation = finish_visit(app)
    live = make_invitation(app, patient_ref="LIVE-1")
    patient = Patient(app.test_client())
    patient.start(live.token)
    create_user(app, "admin@example.org", "admin")
    staff = app.test_client()
    login(staff, "admin@example.org")
    pages = [
        ("start", app.test_client(), "/start"),
        ("ended", app.test_client(), "/ended"),
        ("link-invalid", app.test_client(), "/v/nope"),
        ("already-sent", app.test_client(), f"/v/{invitation.token}"),
        ("welcome", patient.client, "/welcome"),
        ("review", patient.client, "/review"),
        ("safety", patient.client, "/safety"),
        ("thanks", app.test_client(), "/thanks"),
        ("login", app.test_client(), "/staff/login"),
    ]
    # Every screen's step (a step whose questions sit on the screen before has none).
    # A standard measure's steps are not part of this visit (it includes none): they send
    # the patient on, and their words are never the catalogs' (tests/web/test_measures.py).
    own = sorted(
        {
            page.number
            for page in patient_forms.pages(questionnaire.default().sections)
            if not page.items or not page.items[0].instrument
        }
    )
    pages += [(f"step{n}", patient.client, f"/step/{n}") for n in own]
    pages += [
        (name, staff, url)
        for name, url in [
            ("board", "/staff/"),
            ("new-invitation", "/staff/invitations/new"),
            ("invitation", f"/staff/visits/{live.visit_id}/invitation"),
            ("summary", f"/staff/visits/{invitation.visit_id}/summary"),
            ("users", "/staff/admin/users"),
            ("settings", "/staff/admin/settings"),
            ("audit", "/staff/admin/audit"),
        ]
    ]
    for number in range(1, 11):  # the safety page follows a worrying answer (and says so)
        patient.post(f"/step/{number}", {"action": "next", **WORRYING.get(number, {})})
    return pages


WORRYING = {10: {"S1": "several_days"}}  # the safety question's step


@pytest.mark.parametrize("code", SHIPPED[1:])
def test_every_page_is_fully_translated(app, code):
    english = _english_strings_for(code)
    for name, client, url in _pages(app):
        response = client.get(url + ("&" if "?" in url else "?") + f"lang={code}")
        # Each page itself, not an error page or a redirect standing in for it.
        assert response.status_code == (404 if name == "link-invalid" else 200), name
        text = " ".join(page_text(response).split())
        leftovers = [s for s in english if " ".join(s.split()) in text]
        assert leftovers == [], f"{code} {name}: untranslated {leftovers[:5]}"
        client.get("/start?lang=en")


def test_staff_form_messages_are_translated(client):
    page = client.get("/staff/login?lang=vi")
    from tests.conftest import csrf_from

    response = client.post(
        "/staff/login",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "email": "", "password": ""},
    )
    text = page_text(response)
    assert translated("vi", "Please enter an email address.") in text
    assert "This field is required" not in text


def test_switching_language_with_an_error_keeps_input_and_speaks_the_new_language(
    app, patient, invitation
):
    patient.start(invitation.token)
    page = patient.post(
        "/step/1", {"lang": "fr", "T2": "Je garde ce texte", "T1": ["calm", "sad", "tired", "numb"]}
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 422 and '<html lang="fr"' in html
    assert "Je garde ce texte</textarea>" in html
    assert translated("fr", "Please pick no more than %(n)s.") % {"n": 3} in page_text(page)


def _catalog(lang):
    path = i18n_tools.PROJECT_ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


@pytest.mark.parametrize("lang", ["es", "pt_BR", "ar"])
def test_m2_mixed_means_mixed_feelings_not_so_so(lang):
    catalog = _catalog(lang)
    feelings = catalog.get("Mixed", context="feelings").string
    assert feelings and feelings != catalog.get("Mixed").string
    assert not any(word in feelings for word in ("más o menos", "mais ou menos", "بين بين"))


def test_safety_declined_never_reads_refused():
    message = "Safety question: declined (skipped by the patient; not the same as “no”)."
    for lang, refused in (("fr", "refus"), ("vi", "từ chối"), ("zh_Hans", "拒")):
        assert refused not in _catalog(lang).get(message).string.lower()
    assert "التعوّد" not in _catalog("ar").get("Becoming dependent on it").string


@pytest.mark.parametrize("code", ["ar", "vi", "zh_Hans"])
def test_each_catalog_chooses_plural_forms_as_its_language_does(code):
    """The catalog's Plural-Forms rule is the language's own (CLDR, via Babel): an old
    Arabic header sent 11-99 to the form for 100 and up ("15 يوم" for "15 days").
    (Spanish, French and Portuguese keep gettext's two forms: CLDR's third is for whole
    millions, which no count here reaches.)"""
    import gettext
    from pathlib import Path

    from babel.messages.plurals import get_plural
    from babel.messages.pofile import read_po

    path = Path(i18n.__file__).resolve().parents[1] / "translations" / code / "LC_MESSAGES"
    with open(path / "messages.po", "rb") as handle:
        catalog = read_po(handle, locale=code)
    rule = get_plural(code)
    assert catalog.num_plurals == rule.num_plurals
    ours, theirs = gettext.c2py(catalog.plural_expr), gettext.c2py(rule.plural_expr)
    for n in range(1001):
        assert ours(n) == theirs(n), (code, n)
