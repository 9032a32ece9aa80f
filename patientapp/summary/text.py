"""The summary as plain text, for the .txt export and the copy into the medical record.

It renders the SummaryView the page and the print view render (summary_view.py), so the
record says what the psychiatrist read.
"""

from __future__ import annotations

from flask_babel import gettext

from patientapp.i18n import colon
from patientapp.summary import bidi
from patientapp.summary.view import SAFETY_LINES, Row, SummaryView, Text


def plain_text(view: SummaryView) -> str:
    """The summary as plain text for the medical record: the page's parts, top to bottom."""
    lines = [
        *_head(view),
        "",
        *_safety(view),
        "",
        *_today(view),
        *_flags(view),
        *_blocks(view),
        "",
        *_since_last_visit(view),
        "",
        *_footer(view),
    ]
    return "\n".join(_kept_in_place(line) for line in lines) + "\n"


def _head(view: SummaryView) -> list[str]:
    return [
        gettext("Pre-visit reflection — %(clinic)s", clinic=view.clinic),
        gettext(
            "Patient: %(ref)s · Visit: %(date)s · Completed: %(done)s",
            ref=view.patient_ref,
            date=view.visit_date,
            done=view.completed_at or "—",
        ),
        gettext(
            "Answered in: %(language)s · Minutes taken: %(minutes)s · "
            "Compared with visit: %(previous)s",
            language=view.language,
            minutes=view.minutes if view.minutes else "—",
            previous=view.previous_date or "—",
        ),
    ]


def _safety(view: SummaryView) -> list[str]:
    if view.safety != "endorsed":
        return [str(SAFETY_LINES[view.safety])]
    if view.safety_answer_time:
        headline = gettext(
            "SAFETY: the patient answered “%(answer)s” at %(time)s to thoughts of being "
            "better off dead or of self-harm in the past 2 weeks.",
            answer=view.safety_answer,
            time=view.safety_answer_time,
        )
    else:
        headline = gettext(
            "SAFETY: the patient answered “%(answer)s” to thoughts of being "
            "better off dead or of self-harm in the past 2 weeks.",
            answer=view.safety_answer,
        )
    return [headline, *view.safety_history, *_acknowledgement(view)]


def _acknowledgement(view: SummaryView) -> list[str]:
    if not view.alert:
        return []
    if not view.alert.acknowledged_at:
        return [*view.earlier_acknowledgements, gettext("Alert not yet acknowledged.")]
    lines = [
        *view.earlier_acknowledgements,
        gettext(
            "Alert acknowledged at %(when)s by %(name)s.",
            when=view.alert_acknowledged_time,
            name=view.alert.acknowledged_by_name or "—",
        ),
    ]
    if view.alert.acknowledged_note:
        lines.append(gettext("Note: %(note)s", note=view.alert.acknowledged_note))
    return lines


def _today(view: SummaryView) -> list[str]:
    lines = [gettext("Today")]
    if view.agenda or view.agenda_note:
        agenda = quoted_text(view.agenda) if view.agenda else view.agenda_note
        lines.append(gettext("Wants to talk about") + colon() + agenda)
    if view.in_person:
        lines.append(gettext("Held for in person") + colon() + view.in_person_names)
    lines += [f"{row.label}{colon()}{_row_text(row)}" for row in view.today]
    lines += [_measure_text(m) for m in view.measures]
    return [*lines, view.today_empty] if view.today_empty else lines


def _measure_text(m) -> str:
    """A standard measure as one line of numbers: its total, earlier totals, change."""
    if m.not_offered:
        return m.not_offered
    parts = [f"{m.name}{colon()}{m.score_text}" + (f" ({m.prorated})" if m.prorated else "")]
    if m.change_long:
        parts.append(m.change_long)
    if m.earlier:
        parts.append(m.earlier)
    return "; ".join(parts)


def _flags(view: SummaryView) -> list[str]:
    lines = ["", gettext("Flags and openers")]
    if not view.flags:
        return [*lines, gettext("No flags from these answers.")]
    for flag in view.flags:
        evidence = f" [{flag.evidence}]" if flag.evidence else ""
        lines.append(f"- {flag.title} ({flag.practices}){evidence}{colon()}{flag.opener_text}")
    if view.also_noted:
        lines.append(gettext("Also noted") + colon() + view.also_noted_names)
        lines += [f"  - {flag.title}{colon()}{flag.opener_text}" for flag in view.also_noted]
    return lines


def _blocks(view: SummaryView) -> list[str]:
    lines = []
    for block in view.blocks:
        lines += ["", block.title]
        if block.empty:
            lines.append(f"- {block.empty}")
        for row in block.rows:
            if row.medicines and not row.note:
                lines += _medicine_lines(row)
            else:
                lines.append(f"- {row.label}{colon()}{_row_text(row)}")
    return lines


NOT_HELPING_MARK = "!"  # starts the line of a medicine that is "not helping", as bold does


def _medicine_lines(row: Row) -> list[str]:
    """One line per medicine, as the page lists them; one "not helping" stands out."""
    tag = f" [{row.language}]" if row.language else ""
    lines = [f"- {row.label}{colon().rstrip()}{tag}"]
    for name, feeling, not_helping in row.medicines:
        mark = NOT_HELPING_MARK if not_helping else "-"
        lines.append(f"  {mark} {name} — {feeling}")
    return lines


def _since_last_visit(view: SummaryView) -> list[str]:
    heading = gettext("Since last visit")
    lines = [f"{heading} ({view.previous_date})" if view.previous_date else heading]
    found = view.changes + view.not_compared
    lines += [f"- {line}" for line in found] or [f"- {_no_changes(view)}"]
    if view.previous_hopes:
        label = gettext("Last visit, if treatment worked well")
        lines.append(f"- {label}{colon()}{quoted_text(view.previous_hopes)}")
    return lines


def _footer(view: SummaryView) -> list[str]:
    skipped = [gettext("Skipped: %(items)s", items=view.skipped_names)] if view.skipped else []
    return [*skipped, gettext("Patient-reported; not a diagnosis.")]


CONTINUATION = "    "  # what starts each further line of a patient's text


def _kept_in_place(line: str) -> str:
    """A line whose text (a patient's answer, say) breaks over several lines: every
    further line is indented, so it can never pass for one of the export's own lines
    ("SAFETY: ...", "- Agenda: ..."). Any line break counts, CR and U+2028 too."""
    parts = str(line).splitlines() or [""]
    return "\n".join([parts[0]] + [CONTINUATION + part for part in parts[1:]])


def quoted_text(text: Text) -> str:
    """The patient's words in quotation marks, then their language's tag; words holding
    the other direction's letters read in their own order in a line of the reader's."""
    suffix = f" [{text.language}]" if text.language else ""
    words, mark = bidi.in_reading_order(text.text)
    return f"{mark}“{words}”{mark}{suffix}"


def _row_text(row: Row) -> str:
    if row.note:
        return row.note
    if row.medicines:
        meds = " · ".join(f"{name} — {feeling}" for name, feeling, _worse in row.medicines)
        return f"{meds} [{row.language}]" if row.language else meds
    parts = []
    if row.words:
        parts.append(row.words_text)
    if row.quote:
        parts.append(quoted_text(row.quote))
    return " — ".join(parts)


def _no_changes(view: SummaryView) -> str:
    if view.previous_date:  # the heading names that visit's date, as on the page
        return gettext("No changes in these answers since then.")
    return gettext("First reflection with this patient reference.")
