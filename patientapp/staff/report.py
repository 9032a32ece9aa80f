"""The day's safety report, for psychiatrists and admins: every worrying answer to the
safety question of a day, grouped by visit with its alert (raised, acknowledged by whom and
with what note, the minutes it took, escalated, the on-call e-mail), the alerts still open
first; the day's figures at the top; a print view and a CSV of the same rows. Every read is
audited: one entry for the report with its day, one per visit shown.

Its routes join the staff blueprint (``bp`` of ``staff/views.py``); ``create_app`` imports
this module so they exist before the blueprint is registered. The board's one line of
figures (``safety_figures``) is built beside the board in ``staff/views.py``, which its
poll (board.json) answers from; front desk sees only those counts, never a patient's answer.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import Response, g, render_template, request
from flask_babel import format_date, format_datetime, format_time, gettext
from flask_babel import lazy_gettext as _l

from patientapp.auth.sessions import audit, login_required
from patientapp.db import storage
from patientapp.domain import safety_report, visits
from patientapp.domain.alerts import minutes_to_acknowledge
from patientapp.domain.records import (
    BoardVisit,
    EarlierAcknowledgement,
    SafetyAnswer,
    time_text,
)
from patientapp.exports.csv import neutralise
from patientapp.questionnaire import display
from patientapp.questionnaire import model as questionnaire
from patientapp.staff.views import READERS, bp, minutes_text
from patientapp.summary.rules import DECLINED
from patientapp.web import errors
from patientapp.web.context import clinic_settings, get_db, now
from patientapp.web.forms import usable_day

BAD_DAY = _l(
    "That is not a day the report can show. Please pick a date with the date picker "
    "(written as YYYY-MM-DD)."
)
CSV_COLUMNS = (
    "visit_id",
    "patient_ref",
    "appointment_at",
    "psychiatrist",
    "answer",
    "answer_label",
    "answered_at",
    "answer_now",
    "alert_raised_at",
    "still_open",
    "acknowledged_at",
    "acknowledged_by",
    "acknowledged_note",
    "minutes_to_acknowledge",
    "escalated",
    "escalated_at",
    "oncall_mail_sent_at",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportLine:
    """One visit of the report: its alert and the worrying answers behind it."""

    line: BoardVisit  # the visit, its psychiatrist's name and its alert
    answers: list[SafetyAnswer]  # every worrying value saved, changed later or not
    changed: SafetyAnswer | None  # the answer now, when it is no longer worrying
    minutes: float | None  # to acknowledge; None while open
    escalated_at: datetime | None  # None when it was never escalated
    # Acknowledgements before a worse answer opened the alert again, oldest first.
    earlier: list[EarlierAcknowledgement] = field(default_factory=list)

    def covering(self, answer: SafetyAnswer | None) -> tuple[datetime | None, str, str]:
        """The acknowledgement that answered this worrying answer (when, who, the note):
        the first made after it was saved, an earlier one or the alert's own; an answer
        saved after the alert's own that did not open it again (no worse) is the alert's
        own; none while the alert is open."""
        alert = self.line.alert
        own = (alert.acknowledged_at, alert.acknowledged_by_name or "", alert.acknowledged_note)
        made = [
            (a.acknowledged_at, a.acknowledged_by_name or "", a.acknowledged_note)
            for a in self.earlier
        ]
        for at, name, note in [*made, own] if alert.acknowledged_at is not None else made:
            if answer is None or at >= answer.saved_at:
                return at, name, note
        return own if alert.acknowledged_at is not None else (None, "", "")

    @property
    def is_open(self) -> bool:
        return self.line.alert.acknowledged_at is None


# --- reading the day ----------------------------------------------------------------------


def _report_day() -> date | None:
    """The ?day= asked for: today when none is given, None when it is no usable day."""
    text = request.args.get("day", "").strip()
    if not text:
        return now().date()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if usable_day(day) else None


def _limit() -> int:
    return int(clinic_settings()["escalate_after_minutes"])


def _report(day: date) -> list[ReportLine]:
    db, moment, limit = get_db(), now(), _limit()
    lines = []
    for line in safety_report.open_first(storage.alerts_raised_on(db, day)):
        history = storage.safety_answers(db, line.visit.id)
        lines.append(
            ReportLine(
                line=line,
                answers=safety_report.worrying_answers(history),
                changed=safety_report.changed_since(history),
                minutes=minutes_to_acknowledge(line.alert),
                escalated_at=safety_report.escalated_time(line.alert, moment, limit),
                earlier=storage.earlier_acknowledgements(db, line.visit.id),
            )
        )
    return lines


def _figures(lines: list[ReportLine], day: date) -> safety_report.DayFigures:
    raised = safety_report.raised_on(day, [(r.line.alert, r.earlier) for r in lines])
    return safety_report.figures(raised, now(), _limit())


def _audit_read(action: str, day: date, lines: list[ReportLine]) -> None:
    """One entry per visit shown and one for the report with its day, saved together."""
    db = get_db()
    with storage.write(db):
        for report_line in lines:
            audit(action, report_line.line.visit.id)
        audit(action, detail=f"{day.isoformat()}: {len(lines)} visits")


# --- as people read it ----------------------------------------------------------------------


def _when(moment: datetime | None, day: date) -> str:
    """A time on the report's day as the time alone, on another day with its date."""
    if moment is None:
        return ""
    if moment.date() == day:
        return format_time(moment, "short")
    return format_datetime(moment, "short")


def _answer_label(value: str) -> str:
    q = questionnaire.default()
    if value == DECLINED:
        return gettext("Skipped")
    return display.label(q.items[q.layout.safety], value) or value


def _page_row(report_line: ReportLine, day: date) -> dict:
    line, alert = report_line.line, report_line.line.alert
    changed = report_line.changed
    return {
        "visit_id": line.visit.id,
        "patient_ref": line.visit.patient_ref,
        "readable": visits.is_sent(line.visit),
        "status": visits.status_label(visits.board_status(line.visit, now())),
        "appointment": _when(line.visit.appointment_at, day),
        "psychiatrist": line.psychiatrist_name or line.psychiatrist_email or "",
        "answers": [
            {"label": _answer_label(a.value), "at": _when(a.saved_at, day)}
            for a in report_line.answers
        ],
        "changed": (
            {"label": _answer_label(changed.value), "at": _when(changed.saved_at, day)}
            if changed
            else None
        ),
        "raised": _when(alert.created_at, day),
        "open": report_line.is_open,
        "open_for": int((now() - alert.created_at).total_seconds() // 60),
        "acknowledged": _when(alert.acknowledged_at, day),
        "acknowledged_by": alert.acknowledged_by_name or "",
        "note": alert.acknowledged_note,
        "minutes": minutes_text(report_line.minutes),
        "escalated": report_line.escalated_at is not None,
        "escalated_at": _when(report_line.escalated_at, day),
        "mail_sent": _when(alert.mail_sent_at, day),
        "earlier": [
            {
                "at": _when(ack.acknowledged_at, day),
                "by": ack.acknowledged_by_name or "",
                "note": ack.acknowledged_note,
            }
            for ack in report_line.earlier
        ],
    }


def _figure_texts(figures: safety_report.DayFigures) -> dict:
    return {
        "alerts": figures.alerts,
        "acknowledged": figures.acknowledged,
        "open": figures.open,
        "escalated": figures.escalated,
        "median": minutes_text(figures.median_minutes),
        "longest": minutes_text(figures.longest_minutes),
    }


# --- the page and the CSV -----------------------------------------------------------------


def _page(day: date, lines: list[ReportLine], *, printing: bool, error: str = ""):
    return render_template(
        "staff/safety_report.html",
        day=day,
        day_label=format_date(day, "full"),
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        today=now().date(),
        rows=[_page_row(line, day) for line in lines],
        figures=_figure_texts(_figures(lines, day)),
        limit=_limit(),
        made_at=format_datetime(now(), "short"),
        made_by=g.user["display_name"],
        printing=printing,
        error=error,
    )


@bp.get("/safety-report")
@login_required(*READERS)
def safety_report_page():
    """The day's report (?day=YYYY-MM-DD, default today); ?print=1 opens the print dialog."""
    day = _report_day()
    printing = request.args.get("print") == "1"
    if day is None:
        return _page(now().date(), [], printing=False, error=BAD_DAY), 400
    lines = _report(day)
    _audit_read("safety_report_printed" if printing else "safety_report_viewed", day, lines)
    return _page(day, lines, printing=printing)


def _csv_rows(lines: list[ReportLine]):
    for report_line in lines:
        line, alert = report_line.line, report_line.line.alert
        now_value = report_line.changed.value if report_line.changed else ""
        common_before = [
            line.visit.id,
            line.visit.patient_ref,
            time_text(line.visit.appointment_at),
            line.psychiatrist_name or line.psychiatrist_email or "",
        ]
        # One row per worrying answer; a visit whose answers predate the history, one row.
        # Each row names the acknowledgement that answered it (one made before a worse
        # answer opened the alert again covers only the answers before it).
        for answer in report_line.answers or [None]:
            answer_cells = (
                [answer.value, _answer_label(answer.value), time_text(answer.saved_at)]
                if answer
                else ["", "", ""]
            )
            acknowledged_at, by, note = report_line.covering(answer)
            yield [
                *common_before,
                *answer_cells,
                now_value,
                time_text(alert.created_at),
                "yes" if acknowledged_at is None else "no",
                time_text(acknowledged_at),
                by,
                note,
                safety_report.minutes_text(report_line.minutes),
                "yes" if report_line.escalated_at else "no",
                time_text(report_line.escalated_at),
                time_text(alert.mail_sent_at),
            ]


@bp.get("/safety-report.csv")
@login_required(*READERS)
def safety_report_csv():
    """The same rows as the page, one per worrying answer, formulas neutralised."""
    day = _report_day()
    if day is None:
        return errors.STAFF.render(BAD_DAY, 400)
    lines = _report(day)
    _audit_read("safety_report_exported", day, lines)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in _csv_rows(lines):
        writer.writerow([neutralise(value) for value in row])
    return Response(
        out.getvalue(),
        mimetype="text/csv",  # Flask adds "; charset=utf-8" to a text/* mimetype
        headers={
            "Content-Disposition": f'attachment; filename="safety-report-{day.isoformat()}.csv"'
        },
    )
