"""The patient side: start with a link or code, answer section by section, review, send.

Answers are saved on the server at every step; the browser keeps only a signed session
cookie naming the visit. The patient session ends on submit and after idle time, so a
shared device shows nothing of the answers afterwards.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale, refresh
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import MultiDict
from wtforms import StringField

from patientapp.db import storage
from patientapp.domain import delivery, invitations, staffed_hours, throttle, visits
from patientapp.domain.records import Visit
from patientapp.i18n import offered_languages
from patientapp.patient import forms as patient_forms
from patientapp.patient import navigation
from patientapp.questionnaire import display
from patientapp.questionnaire import model as questionnaire
from patientapp.questionnaire.model import Section
from patientapp.summary.rules import SAFETY_ENDORSED
from patientapp.web import errors, tablet
from patientapp.web.context import client_network, clinic_settings, get_db, now

bp = Blueprint("patient", __name__)
errors.PATIENT.register(bp)

SESSION_KEY = "patient"
CODE_SCOPES = ("code-client", "code-address", "code-global")
RESERVED_SCOPE = "code-reserved"  # lookups once the clinic-wide window is full
ENTERED_SCOPE = "code-entered"  # addresses a visit was opened from, and when
GENERIC_CODE_ERROR = _l(
    "We couldn't open a visit with that code. Please check it and try "
    "again, or ask the front desk for help."
)
# Row and step numbers in field names and actions: "²" passes str.isdigit() but not int().
ASCII_NUMBER = re.compile(r"[0-9]{1,3}")
SEEN_RESOLUTION = timedelta(minutes=1)  # how precisely idle time is tracked
ENDED_KEY = "ended"  # why the last patient session on this device ended
# Whether that patient answered away from the waiting room (not on the appointment's day),
# so the end pages do not tell them to wait here. A yes or no, never the day.
AWAY_KEY = "away"
PASSED_KEY = "visit_passed"
# Sent; closed when idle; or its link stopped working under it (the visit cancelled,
# re-issued or expired while the page was open): no "open your link again" then.
ENDED_SENT, ENDED_IDLE, ENDED_GONE = "sent", "idle", "gone"
DRAFT_SCREEN = "screen"  # the screen of the step a draft was typed on
DRAFT_KEPT = "draft_kept"  # the idle session left a draft on the server
LATE_ALERT = "late_alert"  # a worrying safety answer tapped after the idle limit, saved
DRAFT_MAX_CHARS = 50_000  # all of one step's typed text; more is refused, not cut


class CodeForm(FlaskForm):
    code = StringField(
        _l("Your code"),
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "inputmode": "text",
            "maxlength": 20,
        },
    )


class ActionForm(FlaskForm):
    """A form carrying only the CSRF token, for buttons."""


# --- the patient session -------------------------------------------------------------------


def _begin(visit: Visit, claim: throttle.Claim | None = None) -> None:
    """Open the visit in this browser. `claim`: the try counted for the right code that
    opened it, taken back in the same transaction (a right code is no failure)."""
    # A language picked on this device a moment ago (on the code page) stays; the last
    # patient's choice is already gone, since ending a patient session drops it.
    db, moment = get_db(), now()
    network = client_network(request.remote_addr)
    # The waiting room's address: codes typed from it are still looked up once strangers
    # have filled the clinic-wide window (see _claim_lookup). Noted once an hour at most.
    new_address = not _known_address(db, network, moment, hours=1)
    if claim is not None or visit.secret_generation or new_address:
        with storage.write(db):  # the entry's audit, address and rows, or none of them
            if claim is not None:
                throttle.release(db, claim)
                throttle.forget(db, "code-client", _client_id())
            if visit.secret_generation:
                # Whoever opens a re-issued link or code may not be the patient: staff can
                # check.
                storage.audit(
                    db, "patient_entry_reissued", now=moment, actor="patient", visit_id=visit.id
                )
            if new_address:
                known_for = timedelta(hours=current_app.config["CODE_KNOWN_ADDRESS_HOURS"])
                throttle.forget_before(db, ENTERED_SCOPE, moment - known_for)
                throttle.note(db, ENTERED_SCOPE, network, moment)
    session[SESSION_KEY] = {
        "visit": visit.id,
        "generation": visit.secret_generation,
        "seen": now().isoformat(),
    }
    session.pop(ENDED_KEY, None)


def end_patient_session(
    keep_language: bool = False,
    sent: bool = False,
    draft: bool = False,
    away: bool = False,
    passed: bool = False,
    gone: bool = False,
):
    """Forget the visit on this device; after sending, the thank-you page may still
    speak the patient's language. The device remembers only why the session ended, so
    Back after sending says the answers were sent, not that the page was closed, and
    whether a draft was kept, so the closed page tells the truth."""
    session.pop(SESSION_KEY, None)
    session[ENDED_KEY] = ENDED_SENT if sent else ENDED_GONE if gone else ENDED_IDLE
    session[DRAFT_KEPT] = draft
    session[AWAY_KEY] = away
    session[PASSED_KEY] = passed  # the visit's day is over: no "before your visit"
    if not keep_language:
        session.pop("lang", None)


def _idle_limit() -> timedelta:
    return timedelta(minutes=int(clinic_settings()["patient_idle_minutes"]))


def current_visit() -> Visit | None:
    """The visit of this browser's patient session, if the session is still alive."""
    state = session.get(SESSION_KEY)
    if not state:
        return None
    moment = now()
    # At the limit exactly, since that is when an idle page refreshes itself to /ended.
    visit = storage.get_visit(get_db(), state["visit"])
    # The page that says the session ended speaks the patient's language (the last
    # patient's choice is dropped from the device, so it goes in the address).
    g.ended_language = session.get("lang") or (visit.answer_language if visit else None)
    live = visits.is_open(visit, moment) and state.get("generation") == visit.secret_generation
    if live and moment - datetime.fromisoformat(state["seen"]) >= _idle_limit():
        # A tap on Next or Back after the phone slept past the limit: what it carried is
        # kept as the screen's draft, as the page's own timer would have kept it.
        late = request.method == "POST" and request.endpoint == "patient.step"
        kept = (late and _keep_late_post(visit)) or visits.has_draft(get_db(), visit)
        end_patient_session(draft=kept)
        return None
    if not live:  # (idle or not: its link no longer opens it, whatever the page would say)
        # A re-issue ends every session that entered by the old link or code.
        sent = visit is not None and visits.is_sent(visit)
        end_patient_session(sent=sent, gone=not sent)
        return None
    if moment - datetime.fromisoformat(state["seen"]) >= SEEN_RESOLUTION:
        # Rewriting the signed cookie on every click costs more than a minute's precision.
        session[SESSION_KEY] = {**state, "seen": moment.isoformat()}
    return visit


def _idle_seconds() -> int:
    """Seconds left before this device's patient session ends if nothing is sent."""
    limit = _idle_limit()
    state = session.get(SESSION_KEY)
    if g.get("visit") is not None and state:
        limit -= now() - datetime.fromisoformat(state["seen"])
    return max(1, int(limit.total_seconds()))


@bp.context_processor
def _idle_refresh():
    """Seconds after which a page with answers replaces itself with the closed page."""
    return {
        "idle_seconds": _idle_seconds(),
        "tablet": tablet.active(),
        "tablet_return_seconds": tablet.RETURN_SECONDS,
    }


@bp.before_request
def _load_visit():
    g.visit = current_visit()
    if g.visit is not None:
        g.suggested_language = g.visit.suggested_language
        g.visit_language = g.visit.answer_language


def _resume_target(visit: Visit):
    """Where a returning patient picks up."""
    if visits.awaiting_start(visit):
        return url_for("patient.welcome")
    number = visits.current_section(visit, questionnaire.default())
    if number is None:
        return url_for("patient.review")
    # A draft typed on a later screen of the step: resume there, where it is put back.
    draft = visits.draft_for(get_db(), visit, number) or {}
    screen = draft.get(DRAFT_SCREEN, ["1"])[0]
    if ASCII_NUMBER.fullmatch(screen) and int(screen) > 1:
        return _step_url(number, int(screen))
    return url_for("patient.step", number=number)


def _session_needed():
    return redirect(url_for("patient.ended", lang=g.get("ended_language")))


# --- entry ---------------------------------------------------------------------------------


@bp.get("/")
def index():
    return redirect(url_for("patient.start"))


def _client_id() -> str:
    if "cid" not in session:
        session["cid"] = secrets.token_urlsafe(12)
    return session["cid"]


def _known_address(db, network: str, moment: datetime, hours: float | None = None) -> bool:
    """Whether a visit was opened (by link or right code) from this address lately."""
    hours = current_app.config["CODE_KNOWN_ADDRESS_HOURS"] if hours is None else hours
    lately = throttle.Window(ENTERED_SCOPE, limit=1, span=timedelta(hours=hours))
    return throttle.is_full(db, lately, network, moment)  # one visit opened is enough


def _claim_lookup(db) -> throttle.Claim | None:
    """Count a typed code as a failure before it is looked up, or refuse it; None means
    refused. Counting and checking are one write transaction, so concurrent tries (from
    any thread or server process) see each other and no limit is overshot.

    Per browser, per address and clinic-wide, as configured. Once the clinic-wide window
    is full, a code is looked up only from an address where a visit was opened lately (the
    waiting room's), and at most CODE_FAILURES_RESERVED more per window: code lookups
    clinic-wide stay under CODE_FAILURES_GLOBAL + CODE_FAILURES_RESERVED per window, however
    many addresses send them. The rows of a right code are taken back afterwards."""
    cfg, moment = current_app.config, now()
    span = timedelta(minutes=cfg["CODE_FAILURE_WINDOW_MINUTES"])
    per_client = throttle.Window("code-client", cfg["CODE_FAILURES_PER_CLIENT"], span)
    per_address = throttle.Window("code-address", cfg["CODE_FAILURES_PER_ADDRESS"], span)
    clinic_wide = throttle.Window("code-global", cfg["CODE_FAILURES_GLOBAL"], span)
    reserve = throttle.Window(RESERVED_SCOPE, cfg["CODE_FAILURES_RESERVED"], span)
    client, network = _client_id(), client_network(request.remote_addr)
    with storage.write(db):
        if throttle.is_full(db, per_client, client, moment) or throttle.is_full(
            db, per_address, network, moment
        ):
            return None
        pairs = list(zip(CODE_SCOPES, (client, network, "*"), strict=True))
        if throttle.is_full(db, clinic_wide, "*", moment):
            if not _known_address(db, network, moment) or throttle.is_full(
                db, reserve, "*", moment
            ):
                return None
            pairs.append((RESERVED_SCOPE, "*"))
        return throttle.claim(db, pairs, moment)


TOO_MANY_TRIES = _l(
    "Too many tries for now. Please wait a few minutes, or ask the front desk for help."
)


@bp.route("/start", methods=["GET", "POST"])
def start():
    form = CodeForm()
    if g.visit is not None and request.method == "GET":
        return redirect(_resume_target(g.visit))
    status = 200
    if form.validate_on_submit():
        db = get_db()
        code = invitations.normalise_code(form.code.data or "")
        claim = None if code is None else _claim_lookup(db)
        if code is None:
            form.code.errors.append(_l("A code has 10 letters and numbers, like 7KQ2M-9XD4P."))
            status = 422
        elif claim is None:
            # Not looked up at all: past a limit, a code is no guess.
            form.code.errors.append(TOO_MANY_TRIES)
            status = 429
        else:
            visit = storage.visit_by_code_hash(db, invitations.hash_secret(code))
            if visits.is_open(visit, now()):
                _begin(visit, claim)
                return redirect(_resume_target(visit))
            form.code.errors.append(GENERIC_CODE_ERROR)
            status = 422
    elif request.method == "POST":
        status = 400
    return render_template("patient/start.html", form=form), status


def _visit_by_token(token: str) -> Visit | None:
    if len(token) > 100:
        abort(404)
    return storage.visit_by_token_hash(get_db(), invitations.hash_secret(token))


@bp.get("/v/<token:token>")
def open_link(token: str):
    """The invitation link: opens (or resumes) the visit in this browser. A link to
    another visit asks first, since any site can send a browser to a link."""
    visit = _visit_by_token(token)
    if visit is not None and visits.is_sent(visit):
        if g.visit is None:  # another visit open here stays: a link from anywhere lands here
            end_patient_session(sent=True)
            # In the language the answers were given in, as on the patient's own device.
            g.visit_language = visit.answer_language
            g.suggested_language = visit.suggested_language
            refresh()
        return render_template("patient/already_sent.html"), 200
    if not visits.is_open(visit, now()):
        return render_template("patient/link_invalid.html"), 404
    if g.visit is not None and g.visit.id != visit.id:
        return render_template("patient/switch.html", form=ActionForm(), token=token)
    _begin(visit)
    delivery.note_opened(get_db(), token, now())
    return redirect(_resume_target(visit))


@bp.route("/v/<token:token>/stop", methods=["GET", "POST"])
def stop_messages(token: str):
    """The opt-out link of a message: a button first (mail scanners open links), then no
    more messages about this visit. The link itself keeps working."""
    visit = _visit_by_token(token)
    if visit is None:
        return render_template("patient/link_invalid.html"), 404
    form = ActionForm()
    if form.validate_on_submit():
        db = get_db()
        with storage.write(db):
            delivery.opt_out(db, visit.id, now())
        return render_template("patient/messages_stopped.html")
    return render_template("patient/stop_messages.html", form=form)


@bp.post("/v/<token:token>/switch")
def switch(token: str):
    """Leave the visit open on this device for the one the link belongs to."""
    visit = _visit_by_token(token)
    if not ActionForm().validate_on_submit():
        return redirect(url_for("patient.open_link", token=token))
    if not visits.is_open(visit, now()):
        return render_template("patient/link_invalid.html"), 404
    end_patient_session()
    _begin(visit)
    return redirect(_resume_target(visit))


def _opens_at() -> datetime | None:
    """While the clinic is outside the staffed hours set in Settings, when it next opens:
    the welcome, the safety question and the safety screen then say when a worrying
    answer will be seen. None while staffed, or when no hours are set."""
    schedule = staffed_hours.schedule_from(clinic_settings())
    return staffed_hours.closed_until(schedule, now())


def _opens_at_for(items) -> datetime | None:
    """_opens_at() for a screen that shows an item's closed-hours help; None for the
    others, so their pages (and kept skeletons) never depend on the hour."""
    return _opens_at() if any(item.help_closed for item in items) else None


@bp.route("/welcome", methods=["GET", "POST"])
def welcome():
    visit = g.visit
    if visit is None:
        return _session_needed()
    form = ActionForm()
    q = questionnaire.default()
    page = {
        "form": form,
        "started": not visits.awaiting_start(visit),
        "sections": len(q.sections),
        "measures": visits.asked_measures(visit, str(get_locale()), q),
        "opens_at": _opens_at(),
        "visit_day": None if visit.appointment_at.date() == now().date() else visit.appointment_at,
        "passed": _passed(visit),
    }
    if form.validate_on_submit():
        errors.keep_page("patient/welcome.html", **page)
        q = questionnaire.default()
        visits.start(
            get_db(),
            visit.id,
            language=str(get_locale()),
            version=q.version,
            now=now(),
            first=patient_forms.pages(q.sections)[0].items[-1].id,
        )
        visit = storage.get_visit(get_db(), visit.id)
        return redirect(_resume_target(visit))
    return render_template("patient/welcome.html", **page)


# --- the questionnaire ---------------------------------------------------------------------


def _submitted_rows(item, keys=None) -> int:
    indices = [
        int(key.split("-")[1])
        for key in (request.form if keys is None else keys)
        if key.startswith(f"{item.id}-") and ASCII_NUMBER.fullmatch(key.split("-")[1])
    ]
    return min(max(indices) + 1, item.max_rows) if indices else 0


def _medlist(items):
    return next((item for item in items if item.item_type.has_rows), None)


def _screen_number(section) -> int | None:
    """Which screen of the section this request is on (1-based). A POST names its screen;
    one without a screen number answers the whole section."""
    count = len(patient_forms.screens(section))
    if request.method == "POST":
        posted = request.form.get("screen", type=int)
        return posted if posted is not None and 1 <= posted <= count else None
    asked = request.args.get("screen", 1, type=int)
    return asked if 1 <= asked <= count else 1


def _build_form(section, screen, answers, draft: dict | None = None):
    items = patient_forms.screen_items(section, screen)
    med = _medlist(items)
    if draft is not None:
        rows = patient_forms.medicine_rows(answers, med, _submitted_rows(med, draft)) if med else 1
        return patient_forms.section_form_class(section, rows, screen)(formdata=MultiDict(draft))
    if request.method == "POST":
        rows = patient_forms.medicine_rows({}, med, _submitted_rows(med)) if med else 1
        return patient_forms.section_form_class(section, rows, screen)()
    rows = patient_forms.medicine_rows(answers, med) if med else 1
    return patient_forms.section_form_class(section, rows, screen)(
        data=patient_forms.form_data(items, answers)
    )


def _step_url(number: int, screen: int = 1, returning: bool = False, **extra) -> str:
    if screen > 1:
        extra["screen"] = screen
    if returning:
        extra["return"] = "review"
    return url_for("patient.step", number=number, **extra)


def _last_shown(q, place: navigation.Place) -> str | None:
    """The last question of the screen a move shows (the review and the safety page come
    after every question): what the summary counts as reached."""
    if place.page in (navigation.REVIEW, navigation.SAFETY):
        return q.item_ids[-1]
    if place.page != navigation.STEP:
        return None
    for page in patient_forms.pages(q.sections):
        if (page.number, page.screen) == (place.number, place.screen) and page.items:
            return page.items[-1].id
    return None


def _back_to_review(number: int, screen: int | None, hidden: frozenset[str]) -> bool:
    """From the review, whether Next on this screen goes back there (it goes on while the
    section being changed goes on)."""
    q = questionnaire.default()
    asking = navigation.asking_from(request.args.get("ask", ""), q)
    move = navigation.after_save(
        q, number, screen, "next", {}, hidden, returning=True, asking=asking
    )
    return move.to.page == navigation.REVIEW


def _opening_screen(number: int, hidden: frozenset[str]) -> tuple[int, int]:
    """(step, screen) of the screen asking the first question this visit asks in section
    `number`: a screen may begin in the section before."""
    q = questionnaire.default()
    items = q.sections[number - 1].items
    asked = [item for item in items if item.id not in hidden] or list(items)
    if not asked:
        return number, 1
    page = patient_forms.page_of(q, asked[0].id)
    return page.number, page.screen


def _edit_url(number: int, answers: dict) -> str:
    """From the review, "Change" on a section: the screen asking its first question."""
    q = questionnaire.default()
    if not 1 <= number <= len(q.sections):
        return url_for("patient.review")
    step, screen = _opening_screen(number, frozenset(q.not_asked(answers, g.visit.offered)))
    return _step_url(step, screen, returning=True)


def _url(place: navigation.Place) -> str:
    """The address of a place the next-screen rule names."""
    if place.page == navigation.STEP:
        extra = {"_anchor": place.anchor} if place.anchor else {}
        if place.asking:  # from the review: questions still to ask before going back
            extra["ask"] = ",".join(place.asking)
        return _step_url(place.number, place.screen, place.returning, **extra)
    return url_for(f"patient.{place.page}")


@dataclass(frozen=True)
class _Screen:
    """The screen a step request is about: the section, the stored answers, which items
    they leave unasked (M0 "no": no medicine questions) and which screens are shown."""

    number: int
    section: Section
    screen: int | None  # None: a POST of the whole section
    answers: dict
    hidden: frozenset[str]
    shown: list[int]

    def page(self, form, draft: dict | None) -> dict:
        items = patient_forms.screen_items(self.section, self.screen, self.hidden)
        return {
            "form": form,
            "section": self.section,
            "number": self.number,
            "total": len(questionnaire.default().sections),
            "where": patient_forms.whereabouts(self.section, self.screen, self.hidden),
            "returning": request.values.get("return") == "review",
            "from_draft": draft is not None,
            "items": items,
            "screen": self.screen,
            "back_to_review": _back_to_review(self.number, self.screen, self.hidden),
            "opens_at": _opens_at_for(items),
        }


@bp.route("/step/<int:number>", methods=["GET", "POST"])
def step(number: int):
    """Request, screen, save, next: who may be here, which screen this is, what was typed
    saved (or shown again with its errors), and where the next-screen rule sends them."""
    refused = _step_refused(number)
    if refused is not None:
        return refused
    at = _screen_of(number)
    if at.section.items and all(item.id in at.hidden for item in at.section.items):
        # A standard measure this visit does not ask. A safety page served before the
        # measures came (it was step 8, now GAD-7's) still posts here: a safety answer
        # is never dropped, it is saved on its own step.
        if request.method == "POST" and visits.SAFETY_ITEM in request.form:
            safety = patient_forms.page_of(questionnaire.default(), visits.SAFETY_ITEM)
            return _save_step(_screen_of(safety.number))
        return redirect(_url(_first_after(number, at.hidden)))
    if request.method == "GET":
        return _show_step(at)
    return _save_step(at)


def _first_after(number: int, hidden: frozenset[str]) -> navigation.Place:
    """The first screen this visit sees after section `number`, or the review."""
    q = questionnaire.default()
    later = [p for p in patient_forms.shown_pages(q, hidden) if p.number > number]
    if later:
        return navigation.Place(navigation.STEP, later[0].number, later[0].screen)
    return navigation.Place(navigation.REVIEW)


def _step_refused(number: int):
    """A redirect (or 404) when this patient cannot be on step `number` now."""
    visit = g.visit
    if visit is None:
        return _session_needed()
    if visits.awaiting_start(visit):
        return redirect(url_for("patient.welcome"))
    if not 1 <= number <= len(questionnaire.default().sections):
        abort(404)
    if number > max(visit.furthest_step, 1):
        return redirect(url_for("patient.step", number=visit.furthest_step))
    return None


def _screen_of(number: int) -> _Screen:
    q = questionnaire.default()
    section = q.sections[number - 1]
    # A GET is filled with the stored answers; a POST is built from what was typed. Both
    # ask only what the saved answers leave asked (M0 "no": no medicine questions).
    answers = storage.answers_for(get_db(), g.visit.id)[0]
    hidden = frozenset(q.not_asked(answers, g.visit.offered))
    shown = patient_forms.shown_screens(section, hidden)
    return _Screen(number, section, _screen_number(section), answers, hidden, shown)


def _show_step(at: _Screen):
    returning = request.args.get("return") == "review"
    asking = {"ask": request.args["ask"]} if returning and request.args.get("ask") else {}
    if not at.shown:
        # Every question of this section is on an earlier section's screens: go there.
        step, screen = _opening_screen(at.number, at.hidden)
        return redirect(_step_url(step, screen, returning, **asking))
    if at.screen not in at.shown:
        # A screen with nothing left to ask (a link or Back from before the answer changed).
        ahead = [n for n in at.shown if n > at.screen] or [at.shown[-1]]
        return redirect(_step_url(at.number, ahead[0], returning, **asking))
    # What was typed on this screen and not yet saved (a reload, another device) comes back.
    draft = visits.draft_for(get_db(), g.visit, at.number)
    if draft is not None and draft.pop(DRAFT_SCREEN, [""])[0] != str(at.screen):
        draft = None  # typed on another screen of this step
    if draft is None:
        html = _step_page(at.section, at.number, at.screen, at.answers, at.hidden)
        if html is not None:
            return html
    form = _build_form(at.section, at.screen, at.answers, draft=draft)
    return render_template("patient/step.html", **at.page(form, draft)), 200


def _save_step(at: _Screen):
    form = _build_form(at.section, at.screen, at.answers)
    page = at.page(form, None)
    errors.keep_page("patient/step.html", **page)
    action = "lang" if request.form.get("lang") else request.form.get("action", "next")
    written_in = str(get_locale())  # before any switch: the words are in this language
    if action == "lang":
        _choose_language(request.form.get("lang", ""))
    if not form.validate():
        refresh()  # a language switch shows the kept input and its errors in the new language
        return render_template("patient/step.html", **page), 422
    new_answers = patient_forms.answers_from(page["items"], form)
    if action in ("back", "lang") and visits.SAFETY_ITEM not in request.form:
        # Leaving the safety screen with nothing ticked records nothing: only Next
        # (or "Prefer not to say", which is posted) is a "declined" entry.
        new_answers.pop(visits.SAFETY_ITEM, None)
    q = questionnaire.default()
    stored = {**at.answers, **new_answers}
    after = frozenset(q.not_asked(stored, g.visit.offered))
    returning = request.form.get("return") == "review"
    move = navigation.after_save(
        q,
        at.number,
        at.screen,
        action,
        new_answers,
        after,
        returning,
        # Questions this save asks again that were never answered are asked before the
        # review (P1 once M0 turns "yes"); answers kept while unasked come back as they were.
        hidden_before=at.hidden,
        answered={i for i, value in stored.items() if value is not None},
        asking=navigation.asking_from(request.args.get("ask", ""), q),
    )
    saved = visits.save_step(
        get_db(),
        g.visit.id,
        new_answers,
        step=at.number,
        next_step=move.resume_at,
        now=now(),
        language=written_in,
        shown=_last_shown(q, move.to),
        screen=at.screen,
    )
    return redirect(_url(move.to)) if saved else _session_needed()


def _step_page(
    section, number: int, screen: int, answers: dict, hidden: frozenset[str] = frozenset()
) -> str | None:
    """A GET of a screen from its kept skeleton (see patient_forms), or None to render it."""
    items = patient_forms.screen_items(section, screen, hidden)
    med = _medlist(items)
    return patient_forms.render_step_page(
        section,
        number=number,
        total=len(questionnaire.default().sections),
        screen=screen,
        returning=request.values.get("return") == "review",
        rows=patient_forms.medicine_rows(answers, med) if med else 1,
        data=patient_forms.form_data(items, answers),
        token=generate_csrf(),
        idle_seconds=_idle_seconds(),
        hidden=hidden,
        opens_at=_opens_at_for(items),
        back_to_review=_back_to_review(number, screen, hidden),
    )


def _draft_field(key: str, names: set[str]) -> bool:
    """A field of the step's form: its own name, or a medicine row's (``M1-0-name``)."""
    head, _, rest = key.partition("-")
    row = rest.split("-")[0]
    return key in names or (head in names and ASCII_NUMBER.fullmatch(row) is not None)


@bp.post("/step/<int:number>/draft")
def draft(number: int):
    """Keep what is typed on a step as a draft (sent by static/draft.js after a pause and
    when the page is left). CSRF-checked like every POST; the same patient session as the
    step itself. Nothing here is an answer until the step is saved with Next or Back."""
    visit = g.visit
    if visit is None:
        return jsonify(error="session"), 401
    q = questionnaire.default()
    if (
        visits.awaiting_start(visit)
        or not 1 <= number <= len(q.sections)
        or number > max(visit.furthest_step, 1)
    ):
        abort(404)
    fields = _posted_draft(q.sections[number - 1])
    if fields is None:
        return jsonify(error="too_long"), 413
    if not visits.save_draft(get_db(), visit, number, fields, now()):
        return jsonify(error="session"), 401
    return jsonify(idle_seconds=_idle_seconds())


def _posted_draft(section) -> dict | None:
    """The step's own fields of this POST, as a draft of the screen they were typed on;
    None when there is more than a draft may hold."""
    screen = _screen_number(section) or 1  # a draft belongs to one screen, the first if unnamed
    med = _medlist(patient_forms.screen_items(section, screen))
    rows = patient_forms.medicine_rows({}, med, _submitted_rows(med)) if med else 1
    names = {field.name for field in patient_forms.section_form_class(section, rows, screen)()}
    names.discard("csrf_token")
    fields = {key: request.form.getlist(key) for key in request.form if _draft_field(key, names)}
    fields[DRAFT_SCREEN] = [str(screen)]  # restored only on the screen it was typed on
    if sum(len(value) for values in fields.values() for value in values) > DRAFT_MAX_CHARS:
        return None
    return fields


def _keep_late_post(visit: Visit) -> bool:
    """A step posted after the idle limit (CSRF already checked for every POST): what it
    carried kept as that screen's draft, so nothing typed is lost; whether it was."""
    q = questionnaire.default()
    number = (request.view_args or {}).get("number", 0)
    if visits.awaiting_start(visit) or not 1 <= number <= max(visit.furthest_step, 1):
        return False
    if number > len(q.sections):
        return False
    section = q.sections[number - 1]
    worrying = request.form.get(visits.SAFETY_ITEM, "")
    if worrying in SAFETY_ENDORSED and visits.SAFETY_ITEM in {i.id for i in section.items}:
        # A worrying safety answer is never left as a draft: saved, it raises the alert
        # (the front desk checks on the patient), and the closed page shows the crisis text.
        saved = visits.save_step(
            get_db(),
            visit.id,
            {visits.SAFETY_ITEM: worrying},
            step=number,
            next_step=number,
            now=now(),
            screen=_screen_number(section),
        )
        session[LATE_ALERT] = saved
        return False
    fields = _posted_draft(section)
    if not fields or not any(
        v for key, values in fields.items() if key != DRAFT_SCREEN for v in values
    ):
        return False
    return visits.save_draft(get_db(), visit, number, fields, now())


def _choose_language(code: str) -> None:
    """Remember a language picked on this device, and for the visit if one is open."""
    if code in offered_languages():
        session["lang"] = code
        if g.visit is not None:
            visits.set_language(get_db(), g.visit.id, code)


@bp.post("/language")
def language():
    """The language switcher on pages without answers: keep the choice, come back."""
    if ActionForm().validate_on_submit():
        _choose_language(request.form.get("lang", ""))
    back = request.form.get("next", "")
    return redirect(back if _local_path(back) else url_for("patient.start"))


def _local_path(target: str) -> bool:
    """Only a path on this site: no scheme, no host, no backslash tricks."""
    return (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not urlsplit(target).netloc
    )


@bp.get("/safety")
def safety():
    visit = g.visit
    if visit is None:
        return _session_needed()
    if storage.alert_for(get_db(), visit.id) is None:
        # It says the front desk has been told: only true after a worrying answer.
        return redirect(_resume_target(visit))
    return render_template(
        "patient/safety.html",
        form=ActionForm(),
        opens_at=_opens_at(),
        away=_away(visit),
        passed=_passed(visit),
    )


# --- review and submit ---------------------------------------------------------------------


def review_rows(answers: dict, in_person: set[str]):
    """Every section and answer, shown the way the psychiatrist will read it. Questions
    the answers left unasked (M0 "no") are not listed: their section says they were not
    asked."""
    q = questionnaire.default()
    hidden = q.not_asked(answers, g.visit.offered)
    rows = []
    for number, section in enumerate(q.sections, start=1):
        items = [
            {
                "item": item,
                "shown": display.show(item, answers.get(item.id)),
                "answered": item.id in answers,
                "in_person": item.id in in_person,
                "can_hold": item.id in answers and visits.may_hold(item.id),
            }
            for item in section.items
            if item.id not in hidden
        ]
        if not items and all(hidden.get(item.id) == section.id for item in section.items):
            continue  # a standard measure this visit does not offer: never part of it
        not_asked = any(item.id in hidden for item in section.items)
        rows.append({"number": number, "section": section, "items": items, "not_asked": not_asked})
    return rows


@bp.route("/review", methods=["GET", "POST"])
def review():
    visit = g.visit
    if visit is None:
        return _session_needed()
    if visits.awaiting_start(visit):
        return redirect(url_for("patient.welcome"))
    if not visits.reached_review(visit, questionnaire.default()):
        # Typed or kept from an earlier visit: the questions come first, safety included.
        return redirect(url_for("patient.step", number=max(visit.furthest_step, 1)))
    db = get_db()
    answers, in_person = storage.answers_for(db, visit.id)
    form = ActionForm()
    if form.validate_on_submit():
        held = {i for i in request.form.getlist("in_person") if i in answers and visits.may_hold(i)}
        errors.keep_page(
            "patient/review.html",
            form=form,
            rows=review_rows(answers, held),
            total=len(questionnaire.default().sections),
        )
        action = request.form.get("action", "")
        if action.startswith("edit-") and ASCII_NUMBER.fullmatch(action[5:]):
            visits.save_in_person(db, visit.id, held)
            return redirect(_edit_url(int(action[5:]), answers))
        if action == "submit":
            if visits.submit(db, visit.id, held, now()):
                session["lang"] = str(get_locale())
                end_patient_session(
                    keep_language=True, sent=True, away=_away(visit), passed=_passed(visit)
                )
                return redirect(url_for("patient.thanks"))
            return _session_needed()
        visits.save_in_person(db, visit.id, held)
        _choose_language(request.form.get("lang", ""))
        return redirect(url_for("patient.review"))
    return render_template(
        "patient/review.html",
        form=form,
        rows=review_rows(answers, in_person),
        total=len(questionnaire.default().sections),
    )


@bp.post("/review/holds")
def review_holds():
    """Keep the review's "In person" ticks as each one changes (static/draft.js posts the
    review's form here), so a reload, Back or the link opened again shows them as last
    set, even when the tap on Send never reached us. CSRF-checked like every POST; only
    answers that exist and may be held are kept. Nothing is sent by this."""
    visit = g.visit
    if visit is None:
        return jsonify(error="session"), 401
    if visits.awaiting_start(visit) or not visits.reached_review(visit, questionnaire.default()):
        abort(404)
    db = get_db()
    answers, _held = storage.answers_for(db, visit.id)
    held = {i for i in request.form.getlist("in_person") if i in answers and visits.may_hold(i)}
    visits.save_in_person(db, visit.id, held)
    return jsonify(idle_seconds=_idle_seconds())


def _tablet_page(template: str, **context):
    """On a waiting-room tablet an end page shows once, then the whole session cookie
    goes: nothing of this patient stays for the next one, and Back or a reload lands on
    a clean code entry."""
    if ENDED_KEY not in session:
        return redirect(url_for("patient.start"))
    response = make_response(render_template(template, **context))
    session.clear()
    g.session_cleared = True  # nor is this page's ?lang= kept for the next person
    return response


def _away(visit: Visit) -> bool:
    """Answered on another day than the appointment's: at home, not in the waiting room."""
    return visit.appointment_at.date() != now().date()


def _passed(visit: Visit) -> bool:
    """Answered after the appointment's day (the clinic's extra days): no page may say
    the psychiatrist reads the answers "before your visit"."""
    return visit.appointment_at.date() < now().date()


def _end_context() -> dict:
    """What the end pages say next: away from the waiting room (another day, or the
    clinic closed now), nobody is told to wait here or to go to the desk."""
    opens_at = _opens_at()
    return {
        "away": bool(session.get(AWAY_KEY)) or opens_at is not None,
        "opens_at": opens_at,
        "passed": bool(session.get(PASSED_KEY)),
    }


@bp.get("/thanks")
def thanks():
    if tablet.active():
        return _tablet_page("patient/thanks.html", **_end_context())
    return render_template("patient/thanks.html", **_end_context())


@bp.get("/ended")
def ended():
    """Where a page goes once its patient session is over: sent, or closed when idle.
    A page that comes here early (its own timer) closes the session: the page says so."""
    if g.visit is not None:
        visit = g.visit
        end_patient_session(
            draft=visits.has_draft(get_db(), visit), away=_away(visit), passed=_passed(visit)
        )
    context = {
        "sent": session.get(ENDED_KEY) == ENDED_SENT,
        "gone": session.get(ENDED_KEY) == ENDED_GONE,
        "draft_kept": session.get(DRAFT_KEPT, False),
        "crisis": session.pop(LATE_ALERT, False),
        **_end_context(),
    }
    if tablet.active():
        return _tablet_page("patient/ended.html", **context)
    return render_template("patient/ended.html", **context)
