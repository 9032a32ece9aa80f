"""The staff side: today's board with live safety alerts, invitations, the summary.

Front desk sees statuses, never answers. Psychiatrists and admins read summaries. Every
route that takes a visit id answers a wrong role exactly like a missing visit (404), and
a logged-out request is sent to the login page before any lookup.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale, format_date, format_decimal, format_time, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from patientapp.auth.sessions import audit, audit_refused, end_session, login_required
from patientapp.auth.signin import DEVICE_COOKIE
from patientapp.db import storage
from patientapp.domain import delivery, invitations, safety_report, visits
from patientapp.domain.records import Visit, time_text
from patientapp.exports import derived, record
from patientapp.i18n import current_language, language_name, listed, offered_languages
from patientapp.questionnaire import model as questionnaire
from patientapp.staff import alerts as open_alerts
from patientapp.staff import messages as sent_messages
from patientapp.staff.forms import AcknowledgeForm, InvitationForm, SendLinkForm
from patientapp.summary import view as summary_view
from patientapp.summary.text import plain_text
from patientapp.web import errors, tablet
from patientapp.web.context import (
    base_url,
    clinic_name,
    clinic_settings,
    configured_base_url,
    get_db,
    measure_choices,
    now,
)
from patientapp.web.forms import usable_day

bp = Blueprint("staff", __name__, url_prefix="/staff")
errors.STAFF.register(bp)

bp.add_app_template_global(summary_view.quote_html, "summary_quote")
bp.add_app_template_global(summary_view.name_html, "summary_name")
bp.add_app_template_global(summary_view.SAFETY_LINES, "safety_lines")
bp.add_app_template_global(visits.status_label, "status_label")
# Every staff page (staff/base.html) shows open alerts: the banner, "(n)" and the favicon.
bp.add_app_template_global(open_alerts.for_page, "staff_alerts")
bp.add_app_template_global(open_alerts.POLL_MS, "alert_poll_ms")
bp.add_app_template_global(open_alerts.BADGE_SVG, "alert_badge_svg")

READERS = ("psychiatrist", "admin")
EVERYONE = ("frontdesk", "psychiatrist", "admin")
REISSUE_REFUSED = _l(
    "This patient has started answering, so a new link would open their answers. "
    "Please ask a psychiatrist to give the new link and code."
)


# --- helpers -----------------------------------------------------------------------------


def _visit_or_404(visit_id: int) -> Visit:
    visit = storage.get_visit(get_db(), visit_id)
    if visit is None:
        abort(404)
    return visit


def _day_arg() -> date:
    """The board's ?day=; none or one it cannot read shows today, and a day at the
    calendar's ends (9999-12-31) is not found."""
    try:
        day = date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        return now().date()
    if not usable_day(day):
        abort(404)
    return day


def _progress(visit: Visit, status: str) -> str:
    """How far a patient answering right now has got."""
    if status != visits.IN_PROGRESS:
        return ""
    q = questionnaire.default()
    number = visits.current_section(visit, q)
    if number is None:
        return gettext("checking answers")
    # Parts (the questionnaire's sections), not the phone's screens: a visit's answers
    # (M0 "No") change how many screens it meets, so a count of screens would tell the
    # front desk an answer. Every visit asked the same measures counts the same parts.
    place, count = visits.progress(visit, number, q)  # among the sections it asks
    # Translators: the board's progress of a patient answering now, in the parts
    # (sections) of the questionnaire, not the "Step N of M" screens of their phone.
    return gettext("part %(n)s of %(total)s", n=place, total=count)


def _board_rows(day: date) -> list[dict]:
    rows, moment = [], now()
    lines = storage.visits_for_day(get_db(), day.isoformat())
    delivered = sent_messages.board_lines([line.visit.id for line in lines])
    for line in lines:
        visit, alert = line.visit, line.alert
        status = visits.board_status(visit, moment)
        language = visit.answer_language or visit.suggested_language
        rows.append(
            {
                "id": visit.id,
                "time": format_time(visit.appointment_at, "short"),
                "patient_ref": visit.patient_ref,
                "psychiatrist": line.psychiatrist_name or line.psychiatrist_email or "",
                "status": status,
                "status_label": visits.status_label(status),
                "progress": _progress(visit, status),
                "language": language_name(language) if language else "",
                "minutes": summary_view.minutes_taken(visit),
                "alert": alert is not None,
                "alert_open": alert is not None and not alert.acknowledged_at,
                "acknowledged": time_text(alert and alert.acknowledged_at),
                "acknowledged_by": (alert and alert.acknowledged_by_name) or "",
                "acknowledged_note": (alert and alert.acknowledged_note) or "",
                "open": visits.is_open(visit, moment),
                "readable": visits.is_sent(visit),
                "delivery": delivered.get(visit.id, ""),
            }
        )
    return rows


def _alerts() -> list[dict]:
    return [
        {
            "visit_id": line.visit.id,
            "patient_ref": line.visit.patient_ref,
            "raised": line.alert.created_at.isoformat(),
            "at": format_time(line.alert.created_at, "short"),
            "day": format_date(line.alert.created_at, "medium"),  # the day it was given
            "psychiatrist": line.psychiatrist_name or "",
        }
        for line in storage.open_alerts(get_db())
    ]


def figures_line(day: date) -> str:
    """The board's line: "Today's alerts: 3 · acknowledged in 2 min (median), longest
    7 min · 1 open" (counts and minutes only, nothing about any patient). The page shows
    it and board.json carries it, so a new alert changes it without a reload."""
    db = get_db()
    alerts = safety_report.raised_on(
        day,
        [
            (line.alert, storage.earlier_acknowledgements(db, line.visit.id))
            for line in storage.alerts_raised_on(db, day)
        ],
    )
    limit = int(clinic_settings()["escalate_after_minutes"])
    figures = safety_report.figures(alerts, now(), limit)
    if day == now().date():
        parts = [gettext("Today's alerts: %(count)s", count=figures.alerts)]
    else:
        parts = [gettext("Alerts on this day: %(count)s", count=figures.alerts)]
    if figures.acknowledged:
        parts.append(
            gettext(
                "acknowledged in %(median)s min (median), longest %(longest)s min",
                median=minutes_text(figures.median_minutes),
                longest=minutes_text(figures.longest_minutes),
            )
        )
    if figures.open:
        parts.append(gettext("%(count)s open", count=figures.open))
    return " · ".join(parts)


def minutes_text(value: float | None) -> str:
    """Minutes to one decimal at most, in the reader's language ("4.5", "7"); "—" for
    none (the safety report's columns use it too)."""
    return format_decimal(round(value, 1), format="#,##0.#") if value is not None else "—"


bp.add_app_template_global(figures_line, "safety_figures")


# --- board -------------------------------------------------------------------------------


def _human_request() -> bool:
    # The no-script fallback reloads with auto=1, which must not count as activity.
    return request.args.get("auto") != "1"


@bp.get("/")
@login_required(*EVERYONE, touch=_human_request)
def board():
    return _board_page(_day_arg())


def _board_page(day: date, ack_form: AcknowledgeForm | None = None, ack_visit: int = 0):
    """The board; ack_form, when given, is a refused acknowledgement of ack_visit's alert,
    shown with its message and what was typed."""
    alerts = _alerts()
    return render_template(
        "staff/board.html",
        day=day,
        rows=_board_rows(day),
        alerts=alerts,
        day_label=format_date(day, "full"),
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        today=now().date(),
        form=FlaskForm(),
        ack_form=ack_form,
        ack_visit=ack_visit,
        ack_listed=any(a["visit_id"] == ack_visit for a in alerts),
    )


@bp.get("/board.json")
@login_required(*EVERYONE, touch=False)
def board_json():
    """What the board script polls: statuses, open alerts and the day's line of alert
    figures, never answers."""
    day = _day_arg()
    return jsonify(alerts=_alerts(), visits=_board_rows(day), figures=figures_line(day))


@bp.get("/alerts.json")
@login_required(*EVERYONE, touch=False)
def alerts_json():
    """What static/alerts.js polls on every staff page: how many alerts are open and
    escalated (and the banner's words for those counts), never who. Polling is not
    activity: the idle timeout still signs out an unattended computer."""
    return jsonify(open_alerts.counts().as_json())  # no-store, as every response


@bp.post("/visits/<int:visit_id>/acknowledge")
@login_required(*EVERYONE, hide_as_404=True)
def acknowledge(visit_id: int):
    """Acknowledge a visit's safety alert, with an optional one-line note, and go back to
    the page it was pressed on: the summary (return_to=summary, for those who may read it)
    or else the board of the day it showed (?day=; the visit's day without one). A refused
    note acknowledges nothing and is shown again (422)."""
    visit = _visit_or_404(visit_id)
    board_day = _day_arg() if request.args.get("day") else visit.day
    form = AcknowledgeForm()
    to_summary = (
        form.destination() == "summary" and g.user["role"] in READERS and visits.is_sent(visit)
    )
    if form.validate_on_submit():
        db = get_db()
        note = form.note.data or ""
        with storage.write(db):  # the acknowledgement and its entry together
            alert = storage.alert_for(db, visit.id)
            shown = form.raised.data or ""
            if shown and alert is not None and alert.created_at.isoformat() != shown:
                # A worse answer opened it again since this page showed it.
                flash(ALERT_RAISED_AGAIN, "error")
            elif storage.acknowledge_alert(db, visit.id, g.user["id"], now(), note=note):
                # The note is free text: the audit log records only that there was one.
                audit("alert_acknowledged", visit.id, detail="with note" if note else "")
    elif form.note.errors:
        if to_summary:
            return _summary_response(visit_id, "summary_viewed", printing=False, ack_form=form)
        return _board_page(board_day, ack_form=form, ack_visit=visit.id), 422
    if to_summary:
        return redirect(url_for("staff.summary_page", visit_id=visit.id))
    return redirect(url_for("staff.board", day=board_day.isoformat()))


@bp.post("/tablet")
@login_required(*EVERYONE)
def tablet_mode():
    """Make this device a waiting-room tablet: sign the staff member out and leave the
    tablet cookie; from now on it opens at code entry. Only a staff sign-in ends it.
    CSRFProtect has checked the form's token before this runs."""
    with storage.write(get_db()):  # the entry and the signed-out session together
        audit("tablet_mode_entered")
        end_session()
    session.clear()  # only once both are saved
    response = redirect(url_for("patient.start"))
    tablet.turn_on(response)
    # A shared tablet is no staff member's own browser: it keeps no trusted-device cookie.
    response.delete_cookie(DEVICE_COOKIE, path="/staff")
    return response


def _back_to_board(visit: Visit) -> str:
    return url_for("staff.board", day=visit.day.isoformat())


# --- invitations -------------------------------------------------------------------------


def _invitation_form() -> InvitationForm:
    form = InvitationForm()
    sent_messages.offer_channels(form)
    people = storage.psychiatrists(get_db())
    form.psychiatrist.choices = [(0, gettext("Not assigned"))] + [
        (p["id"], p["display_name"] or p["email"]) for p in people
    ]
    form.language.choices = [("", gettext("Let the patient choose"))] + [
        (code, language_name(code)) for code in offered_languages()
    ]
    form.measures.choices = measure_choices()
    if request.method == "GET":
        form.day.data = _day_arg() if request.args.get("day") else now().date()
        form.time.data = None
        form.measures.data = list(clinic_settings()["measures"] or ())
        if g.user["role"] == "psychiatrist":
            form.psychiatrist.data = g.user["id"]
    return form


@bp.route("/invitations/new", methods=["GET", "POST"])
@login_required(*EVERYONE)
def new_invitation():
    form = _invitation_form()
    status = 200
    if form.validate_on_submit():
        appointment = datetime.combine(form.day.data, form.time.data).replace(second=0)
        db = get_db()
        with storage.write(db):
            invitation = visits.create(
                db,
                patient_ref=form.patient_ref.data.strip(),
                appointment_at=appointment,
                psychiatrist_id=form.psychiatrist.data or None,
                suggested_language=form.language.data or "",
                extra_days=int(clinic_settings()["invite_extra_days"]),
                created_by=g.user["id"],
                now=now(),
                measures=tuple(form.measures.data or ()),
            )
            audit("invitation_created", invitation.visit_id)
            queued = _plan_messages(db, invitation.visit_id, form)
        if queued:
            delivery.wake()  # committed: the loop sends the link now
        _remember_secrets(invitation)
        return redirect(url_for("staff.invitation", visit_id=invitation.visit_id))
    if request.method == "POST":
        status = 422
    return render_template("staff/invitation_new.html", form=form), status


def _plan_messages(db, visit_id: int, form) -> list[str]:
    """Inside the caller's transaction: queue the link and the reminder to the address
    and number the form holds (audited by channel, never the address). The caller wakes
    the loop once that is committed."""
    queued = delivery.plan(
        db,
        storage.get_visit(db, visit_id),
        email=form.address,
        phone=form.normalised_phone,
        settings=clinic_settings(),
        now=now(),
    )
    if queued:
        audit("invitation_messages_queued", visit_id, detail=" and ".join(queued))
    return queued


def _remember_secrets(invitation: invitations.Invitation) -> None:
    """Only hashes are stored, so the plain link and code live in this staff member's
    session until the next invitation: enough to show, print and hand over."""
    session["fresh_invite"] = {
        "visit": invitation.visit_id,
        "token": invitation.token,
        "code": invitation.code,
    }


def _fresh_secrets(visit_id: int) -> dict | None:
    fresh = session.get("fresh_invite")
    return fresh if fresh and fresh.get("visit") == visit_id else None


def _handover(visit: Visit) -> dict | None:
    fresh = _fresh_secrets(visit.id)
    if not fresh or not visits.is_open(visit, now()):
        return None
    link = f"{base_url()}/v/{fresh['token']}"
    qr = segno.make(link, error="m", micro=False)
    return {
        "link": link,
        "code": invitations.format_code(fresh["code"]),
        "start_url": f"{base_url()}/start",
        "qr_svg": qr.svg_inline(scale=5, title=gettext("QR code for the patient's link")),
    }


@bp.get("/visits/<int:visit_id>/invitation")
@login_required(*EVERYONE, hide_as_404=True)
def invitation(visit_id: int):
    return _invitation_page(_visit_or_404(visit_id))


def _send_form() -> SendLinkForm | None:
    form = SendLinkForm()
    return form if sent_messages.offer_channels(form) else None


@bp.post("/visits/<int:visit_id>/send")
@login_required(*EVERYONE, hide_as_404=True)
def send_link(visit_id: int):
    """Send the link of an open invitation by e-mail or text now (and its reminder). A
    bad address or number is shown again with everything typed (422)."""
    visit = _visit_or_404(visit_id)
    form = _send_form()
    if form is None or not visits.is_open(visit, now()):
        return redirect(url_for("staff.invitation", visit_id=visit.id))
    if not form.validate_on_submit():
        return _invitation_page(visit, send_form=form, status=422)
    with storage.write(get_db()) as db:
        queued = _plan_messages(db, visit.id, form)
    if queued:
        delivery.wake()
        flash(gettext("The link will be sent in a moment. Its progress shows below."), "ok")
    return redirect(url_for("staff.invitation", visit_id=visit.id))


def _measures_unasked(visit: Visit) -> str:
    """The chosen measures with no official text in the suggested language: a patient who
    starts in it answers the reflection only, and the summary will say so (CONTENT.md)."""
    code = visit.suggested_language
    names = [
        instrument.name
        for instrument in questionnaire.default().instruments
        if code and instrument.id in visit.chosen and not instrument.offered_in(code)
    ]
    if not names:
        return ""
    return gettext(
        "%(names)s: not offered in %(language)s. A patient who starts in %(language)s "
        "answers the other questions only.",
        names=listed(names),
        language=language_name(code),
    )


def _invitation_page(visit: Visit, send_form: SendLinkForm | None = None, status: int = 200):
    moment = now()
    is_open = visits.is_open(visit, moment)
    if send_form is None and is_open:
        send_form = _send_form()
    return render_template(
        "staff/invitation.html",
        visit=visit,
        measures=[name for m, name in measure_choices() if m in visit.chosen],
        measures_unasked=_measures_unasked(visit),
        status_label=visits.status_label(visits.board_status(visit, moment)),
        is_open=is_open,
        handover=_handover(visit),
        form=FlaskForm(),
        expires=format_date(visit.expires_at, "medium"),
        may_reissue=visits.may_reissue(visit, g.user["role"]),
        open_alert=visits.has_open_alert(get_db(), visit.id),
        reissue_refused=REISSUE_REFUSED,
        open_alert_not_cancelled=OPEN_ALERT_NOT_CANCELLED,
        send_form=send_form if is_open else None,
        messages=sent_messages.visit_messages(visit.id),
    ), status


@bp.get("/visits/<int:visit_id>/slip")
@login_required(*EVERYONE, hide_as_404=True)
def slip(visit_id: int):
    visit = _visit_or_404(visit_id)
    handover = _handover(visit)
    if handover is None:
        return redirect(url_for("staff.invitation", visit_id=visit_id))
    language = visit.suggested_language or current_language().code
    with force_locale(language):
        html = render_template(
            "staff/slip.html",
            visit=visit,
            handover=handover,
            language=language,
            measures=visits.asked_measures(visit, language),
            expires=format_date(visit.expires_at, "long"),
        )
    return html


ALERT_RAISED_AGAIN = _l(
    "Not acknowledged: a worse answer opened this alert again after your page showed it. "
    "Please check on the patient now, then acknowledge it again."
)
OPEN_ALERT_NOT_CANCELLED = _l(
    "This visit has a safety alert nobody has acknowledged yet, so it cannot be cancelled: "
    "a cancelled visit leaves the board, and its alert with it. Acknowledge the alert "
    "first, then cancel."
)


@bp.post("/visits/<int:visit_id>/cancel")
@login_required(*EVERYONE, hide_as_404=True)
def cancel(visit_id: int):
    _visit_or_404(visit_id)
    if FlaskForm().validate_on_submit():
        db = get_db()
        with storage.write(db):
            if visits.cancel(db, visit_id, now()):
                audit("invitation_cancelled", visit_id)
            elif visits.has_open_alert(db, visit_id):
                flash(OPEN_ALERT_NOT_CANCELLED, "error")
    return redirect(url_for("staff.invitation", visit_id=visit_id))


@bp.post("/visits/<int:visit_id>/reissue")
@login_required(*EVERYONE, hide_as_404=True)
def reissue(visit_id: int):
    """New link and code for an open visit; answers so far stay, the old ones stop working.
    Once answering has started only a reader may do it: the new link opens the answers."""
    visit = _visit_or_404(visit_id)
    if visits.can_reissue(visit) and not visits.may_reissue(visit, g.user["role"]):
        audit_refused(g.user)
        return errors.STAFF.render(REISSUE_REFUSED, 403)
    if FlaskForm().validate_on_submit():
        db = get_db()
        with storage.write(db):
            invitation = visits.reissue(
                db,
                visit_id,
                extra_days=int(clinic_settings()["invite_extra_days"]),
                now=now(),
                role=g.user["role"],
            )
            if invitation is not None:
                audit("invitation_reissued", visit_id)
        if invitation is not None:
            _remember_secrets(invitation)
    return redirect(url_for("staff.invitation", visit_id=visit_id))


# --- the summary -------------------------------------------------------------------------


def _summary(visit: Visit) -> summary_view.SummaryView:
    return derived.one_page(get_db(), visit, clinic=clinic_name(), language=current_language().code)


def _audit_read(
    action: str, visit: Visit, view: summary_view.SummaryView, detail: str = ""
) -> None:
    """A read of the visit's one page, audited for the visit and for each earlier visit
    whose answers the page shows (since last visit, the measures' earlier totals)."""
    with storage.write(get_db()):  # the read and the earlier visits' entries together
        audit(action, visit.id, detail=detail)
        for earlier_id in view.earlier_shown:
            audit("earlier_visit_shown", earlier_id, detail=f"{action} of visit {visit.id}")


def _readable_visit(visit_id: int) -> Visit:
    visit = _visit_or_404(visit_id)
    if not visits.is_sent(visit):
        abort(404)
    return visit


def _summary_response(
    visit_id: int, action: str, printing: bool, ack_form: AcknowledgeForm | None = None
):
    """The summary page (or its print view), recorded in the audit log as read; with
    ack_form, a refused acknowledgement shown with its message (422)."""
    visit = _readable_visit(visit_id)
    view = _summary(visit)
    _audit_read(action, visit, view)
    page = render_template(
        "staff/summary.html",
        s=view,
        awaiting_review=visits.awaiting_review(visit),
        text=plain_text(view),
        form=FlaskForm(),
        printing=printing,
        ack_form=ack_form or AcknowledgeForm(formdata=None),
    )
    return (page, 422) if ack_form else page


@bp.get("/visits/<int:visit_id>/summary")
@login_required(*READERS, hide_as_404=True)
def summary_page(visit_id: int):
    return _summary_response(visit_id, "summary_viewed", printing=False)


@bp.get("/visits/<int:visit_id>/print")
@login_required(*READERS, hide_as_404=True)
def print_page(visit_id: int):
    return _summary_response(visit_id, "summary_printed", printing=True)


@bp.get("/visits/<int:visit_id>/summary.txt")
@login_required(*READERS, hide_as_404=True)
def summary_text(visit_id: int):
    visit = _readable_visit(visit_id)
    view = _summary(visit)
    _audit_read("summary_exported", visit, view, detail="txt download")
    text = plain_text(view)
    filename = f"reflection-{visit_id}-{visit.day.isoformat()}.txt"
    return Response(
        text,
        mimetype="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/visits/<int:visit_id>/fhir.json")
@login_required(*READERS, hide_as_404=True)
def summary_fhir(visit_id: int):
    """The visit as a FHIR QuestionnaireResponse, for a record that imports FHIR."""
    visit = _readable_visit(visit_id)
    audit("summary_exported", visit_id, detail="fhir json download")
    resource = record.response_for(
        get_db(), visit, settings=clinic_settings(), base_url=configured_base_url()
    )
    body = json.dumps(resource, ensure_ascii=False, indent=2)
    filename = f"reflection-{visit_id}-{visit.day.isoformat()}.fhir.json"
    return Response(
        body,
        mimetype=record.FHIR_JSON,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/visits/<int:visit_id>/copied")
@login_required(*READERS, hide_as_404=True)
def summary_copied(visit_id: int):
    """The copy button reports here, so a copy to the record is audited like a download."""
    visit = _readable_visit(visit_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    _audit_read("summary_exported", visit, _summary(visit), detail="copied as text")
    return ("", 204)


@bp.post("/visits/<int:visit_id>/reviewed")
@login_required(*READERS, hide_as_404=True)
def reviewed(visit_id: int):
    visit = _readable_visit(visit_id)
    if FlaskForm().validate_on_submit():
        db = get_db()
        with storage.write(db):
            if visits.mark_reviewed(db, visit_id, g.user["id"], now()):
                audit("visit_reviewed", visit_id)
    return redirect(_back_to_board(visit))
