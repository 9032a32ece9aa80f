"""The step screen's GET from a kept skeleton (patientapp/patient/forms.py): the same HTML as
rendering the form in full, in every language, for every kind of stored answer; nothing
of one patient or one language ever shows in another's page."""

from __future__ import annotations

import re

import pytest

from patientapp.cli import examples
from patientapp.db import storage
from patientapp.domain import visits
from patientapp.patient import forms as patient_forms
from patientapp.patient import views as patient
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import get_db
from tests.conftest import Patient, make_invitation

TOKEN = re.compile(r'(name="csrf_token" type="hidden" value=")[^"]+"')
SECRET = "Alpha <b>\"secret\"</b> & 'quoted'"

# Answers as stored, beyond the examples: words that need escaping, spaces a filter trims,
# several medicine rows, and stored data of odd shapes the pages must still draw as
# WTForms does (or hand to WTForms).
ODD = {
    "T1": "worried",  # a multi stored as text: WTForms ticks by its letters
    "T2": f"  {SECRET}  ",
    "M1": [
        {"name": f" {SECRET} ", "feeling": "mixed"},
        {"name": "Two", "feeling": None},
        {"name": 3, "feeling": "nope"},
    ],
    "M2": ["mixed"],  # a single stored as a list
    "M4": 8,
    "F2": {"choice": "yes", "text": SECRET},
    "R1": True,
    "S1": None,
}
SHAPES = {
    "medicine text": {"M1": "ab"},
    "medicine dict": {"M1": {"name": "x"}},
    "medicine meta": {"M1": [{"name": "x", "meta": {}}]},
    "medicine rows of text": {"M1": ["x", "y"]},
    "multi as number": {"T1": 5, "M3": None},
}


def _store(app, visit_id: int, answers: dict, furthest: int = 10) -> None:
    with app.app_context():
        db = get_db()
        q = questionnaire.default()
        for number, section in enumerate(q.sections, start=1):
            values = {item.id: answers[item.id] for item in section.items if item.id in answers}
            if values:
                visits.save_step(
                    db, visit_id, values, step=number, next_step=furthest, now=app.config["CLOCK"]()
                )
        db.execute("UPDATE visits SET furthest_step = ? WHERE id = ?", (furthest, visit_id))
        db.conn.commit()


def _started(app, language: str = "", answers: dict | None = None) -> Patient:
    # Both standard measures, asked where they have an official text (English): their
    # screens are kept as skeletons like the others.
    made = make_invitation(
        app, patient_ref=f"P-{language}-{id(answers)}", language=language, measures=("gad7", "phq9")
    )
    phone = Patient(app.test_client())
    phone.start(made.token)
    with app.app_context():
        phone.offered = storage.get_visit(get_db(), made.visit_id).offered
    assert phone.offered == (("gad7", "phq9") if language in ("", "en") else ())
    if answers is not None:
        _store(app, made.visit_id, answers)
    return phone


def _screens(offered=()):
    q = questionnaire.default()
    for number, section in enumerate(q.sections, start=1):
        if section.items[0].instrument and section.id not in offered:
            continue  # a measure this visit does not ask: never shown
        for screen in range(1, len(patient_forms.screens(section)) + 1):
            yield number, screen


def _pages(phone: Patient, returning: bool = False) -> dict:
    pages = {}
    for number, screen in _screens(getattr(phone, "offered", ())):
        query = f"?screen={screen}" + ("&return=review" if returning else "")
        page = phone.client.get(f"/step/{number}{query}")
        assert page.status_code == 200, (number, screen, page.status_code)
        pages[number, screen] = TOKEN.sub(r'\1TOKEN"', page.get_data(as_text=True))
    return pages


def _in_full(monkeypatch):
    monkeypatch.setattr(patient_forms, "render_step_page", lambda *args, **kwargs: None)


@pytest.mark.parametrize("language", ["en", "ar", "zh_Hans"])
@pytest.mark.parametrize(
    "answers",
    [examples.LOWER_THE_DOSE, examples.SAFETY_CONCERN, examples.SPANISH, ODD, {}],
    ids=["lower", "safety", "spanish", "odd", "none"],
)
def test_the_same_page_as_the_form_renders(app, monkeypatch, language, answers):
    phone = _started(app, language, answers)
    kept = _pages(phone)
    again = _pages(phone)  # now from the skeletons
    returning = _pages(phone, returning=True)
    with monkeypatch.context() as patched:
        _in_full(patched)
        full = _pages(phone)
        full_returning = _pages(phone, returning=True)
    assert kept == full
    assert again == full
    assert returning == full_returning
    assert any(" checked" in page for page in full.values()) == bool(answers)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_odd_stored_shapes_still_show_as_the_form_would(app, monkeypatch, shape):
    phone = _started(app, "en", SHAPES[shape])
    kept = _pages(phone)
    with monkeypatch.context() as patched:
        _in_full(patched)
        assert kept == _pages(phone)


def test_a_get_from_a_skeleton_builds_no_form(app, monkeypatch):
    phone = _started(app, "en", examples.LOWER_THE_DOSE)
    _pages(phone)
    assert app.extensions[patient_forms.SKELETON_CACHE]

    def no_form(*args, **kwargs):
        raise AssertionError("a form was built for a GET")

    monkeypatch.setattr(patient, "_build_form", no_form)
    monkeypatch.setattr(patient_forms, "render_template", no_form)
    assert SECRET not in "".join(_pages(phone).values())  # served, and from the skeletons


def test_no_answer_of_one_patient_in_another_patients_page(app):
    first = _started(app, "en", {**ODD, "T1": ["worried"]})
    pages = _pages(first)
    assert any(
        "Alpha &lt;b&gt;&#34;secret&#34;&lt;/b&gt; &amp; &#39;quoted&#39;" in p
        for p in pages.values()
    )
    assert SECRET not in "".join(pages.values())  # escaped, never raw
    second = _started(app, "en", {})
    for page in _pages(second).values():
        assert "secret" not in page
        assert " checked" not in page
    for skeleton in app.extensions[patient_forms.SKELETON_CACHE].values():
        assert "secret" not in repr(skeleton)


def test_a_skeleton_never_shows_another_language(app):
    arabic = _started(app, "ar", examples.LOWER_THE_DOSE)
    english = _started(app, "en", examples.LOWER_THE_DOSE)
    for _ in range(2):
        ar_pages, en_pages = _pages(arabic), _pages(english)
        for number_screen, page in ar_pages.items():
            assert '<html lang="ar" dir="rtl">' in page, number_screen
            assert ">Next<" not in page
        for number_screen, page in en_pages.items():
            assert '<html lang="en" dir="ltr">' in page, number_screen
            assert ">Next<" in page or ">Back to review<" in page


def test_a_settings_change_shows_at_once(app):
    phone = _started(app, "en", {})
    before = phone.client.get("/step/1").get_data(as_text=True)
    with app.app_context():
        storage.save_settings(get_db(), {"clinic_name": "Riverside <Clinic>"})
    after = phone.client.get("/step/1").get_data(as_text=True)
    assert "Riverside &lt;Clinic&gt;" in after and "Riverside" not in before


def test_the_kept_skeletons_are_bounded(app, monkeypatch):
    monkeypatch.setattr(patient_forms, "SKELETON_CACHE_SIZE", 3)
    phone = _started(app, "en", {})
    _pages(phone)
    assert len(app.extensions[patient_forms.SKELETON_CACHE]) == 3


@pytest.mark.parametrize("token", [None, "forged", "other session"])
def test_a_step_is_saved_only_with_this_sessions_token(app, token):
    """The step's form has no CSRF field of its own: CSRFProtect checks every POST."""
    phone = _started(app, "en", {})
    phone.client.get("/step/1")
    data = {"action": "next", **examples.LOWER_THE_DOSE_FORM[1]}
    if token == "forged":
        data["csrf_token"] = "x" * 40
    elif token == "other session":
        other = _started(app, "en", {})
        data["csrf_token"] = TOKEN.search(other.client.get("/step/1").get_data(as_text=True))[0]
        data["csrf_token"] = data["csrf_token"].split('value="')[1].rstrip('"')
    response = phone.client.post("/step/1", data=data)
    assert response.status_code == 400
    with app.app_context():
        assert not storage.answers_for(get_db(), 1)[0]


def test_no_catalog_is_read_from_disk_on_a_step(app, monkeypatch):
    """The medicine rows' FormField has a label: without one Flask-WTF loaded wtforms.mo
    from disk for its made-up label on every request of that screen."""
    import babel.support

    phone = _started(app, "ar", examples.LOWER_THE_DOSE)
    _pages(phone)
    loaded = []
    real = babel.support.Translations.load

    def load(*args, **kwargs):
        loaded.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(babel.support.Translations, "load", load)
    with monkeypatch.context() as patched:
        _in_full(patched)
        _pages(phone)
    phone.post("/step/2", {"action": "next", "screen": "1", "M1-0-name": "x"})
    assert loaded == []


# --- what a skeleton cannot fill exactly is rendered in full ------------------------------


def _field(app, field):
    from flask_wtf import FlaskForm

    form_class = type("F", (FlaskForm,), {"x": field, "Meta": type("Meta", (), {"csrf": False})})
    with app.test_request_context():
        return form_class(formdata=None)


def test_fields_a_skeleton_does_not_know_are_refused(app):
    from wtforms import BooleanField, FieldList, RadioField, StringField

    for field in (
        BooleanField("b"),
        RadioField("r", choices=["1"], coerce=int),
        FieldList(StringField("s"), min_entries=1),
    ):
        with pytest.raises(patient_forms._Unsupported):
            patient_forms._fields_of(_field(app, field))


@pytest.mark.parametrize(
    "html",
    [
        '<input checked id="a" name="a" type="radio" value="1">',
        '<input id="t" name="t" type="radio" value="1">',
        '<input id="t" name="t" type="text" value="words">',
        '<textarea id="t" name="t">\r\nwords</textarea>',
        '<input id="a" name="a" type="hidden" value="1">',
    ],
)
def test_markup_a_skeleton_cannot_fill_is_refused(html):
    fields = {"a": patient_forms._Field(patient_forms.ONE), "t": patient_forms._Field("text")}
    with pytest.raises(patient_forms._Unsupported):
        patient_forms._parse(html, fields)


def test_a_screen_without_a_skeleton_is_rendered_in_full(app, monkeypatch):
    def refuse(form):
        raise patient_forms._Unsupported("test")

    phone = _started(app, "en", examples.LOWER_THE_DOSE)
    app.extensions[patient_forms.SKELETON_CACHE].clear()  # the start opened step 1
    monkeypatch.setattr(patient_forms, "_fields_of", refuse)
    kept = _pages(phone)
    skeletons = app.extensions[patient_forms.SKELETON_CACHE].values()
    assert skeletons and all(skeleton is None for skeleton in skeletons)
    monkeypatch.undo()
    with monkeypatch.context() as patched:
        _in_full(patched)
        assert kept == _pages(phone)


# --- signing: serializers made once per key ------------------------------------------------


def test_one_session_serializer_per_key(app):
    from patientapp.web.context import KeptSerializerSession

    interface = KeptSerializerSession()
    first = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is first
    for n in range(9):
        app.secret_key = f"rotated-{n}"
        assert interface.get_signing_serializer(app) is not first
    assert len(interface._kept) <= 8
    app.secret_key = "test-secret"
    again = interface.get_signing_serializer(app)
    assert again is not first and again.loads(first.dumps({"a": 1})) == {"a": 1}


def test_one_csrf_serializer_per_key():
    from patientapp.web import context as web

    assert web._csrf_serializer("k") is web._csrf_serializer("k")
    assert web._csrf_serializer("k") is not web._csrf_serializer("other")
    listed = web._csrf_serializer(["old", "k"])  # a list of keys is not kept
    assert listed.loads(web._csrf_serializer("k").dumps("t")) == "t"
