"""The one-page summary as the reader sees it: pure summary logic, translated and laid out.

``build`` gathers everything the page shows, top to bottom as CONTENT.md lays it out,
into one SummaryView. The summary page, its print view (templates/staff/summary.html)
and the plain text for the medical record (summary_text.py) all render this one model,
so the copy for the record always says what the page says. Items the patient marked
"I'd rather talk about this in person" are removed before any logic runs: only their
topic names appear, in the footer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from babel import Locale
from flask_babel import (
    format_date,
    format_decimal,
    format_time,
    get_locale,
    gettext,
    ngettext,
    pgettext,
)
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from patientapp.domain.records import Alert, EarlierAcknowledgement, SafetyAnswer, Visit
from patientapp.i18n import joined, language_name, listed
from patientapp.questionnaire import display
from patientapp.questionnaire.model import STANCE, Questionnaire
from patientapp.summary import bidi
from patientapp.summary import measures as measures_
from patientapp.summary import rules as summary
from patientapp.summary.rules import N_

# The article's practices as it words them (CONTENT.md v3); the relationship with the
# medicine is one of the interpersonal experiences.
PRACTICES = {
    1: _l("Focus on affect"),
    2: _l("Exploration of avoidance"),
    3: _l("Past experiences"),
    4: _l("Identification of patterns"),
    5: _l("Interpersonal experiences"),
    6: _l("The therapeutic relationship"),
    7: _l("Wishes and fantasies about treatment"),
}
SAFETY_LINES = {
    "not_endorsed": _l("Safety question: not endorsed (“Not at all”)."),
    "declined": _l("Safety question: declined (skipped by the patient; not the same as “no”)."),
    "not_reached": _l("Safety question: not reached."),
}
IN_PERSON_NOTE = _l("to discuss in person")
NOT_REACHED_NOTE = _l("not reached")
# An item the patient's own answer left unasked: M0 "no" hides M1-M5 and P1.
NOT_ASKED_NOTE = _l("not asked: not taking medicine")
NOTHING_TO_SHOW = _l("Nothing to show: every item here was skipped.")
# The titles questionnaire.toml gives the summary's blocks ([[summary.blocks]] title),
# marked here for Babel: the questionnaire extractor takes only what patients read.
# A block title missing here would show untranslated (tests/unit/test_layout.py checks).
BLOCK_TITLES = (
    N_("Medicines"),
    N_("Patterns"),
    N_("Family, culture, past treatment"),
    N_("Meaning and hopes"),
    N_("Relationship"),
)


@dataclass(frozen=True)
class Text:
    """Patient free text, exactly as written, with the language it was written in."""

    text: str
    language: str  # a language name, shown only when it differs from the reader's
    lang: str = ""  # its BCP 47 tag (lang=), with the name: for screen readers and fonts

    def __str__(self) -> str:
        return self.text


@dataclass
class Row:
    label: str
    words: list[str] = field(default_factory=list)
    quote: Text | None = None
    skipped: bool = False  # skipped rows leave the body: the footer lists them once
    note: str = ""  # shown instead of an answer: held for in person, or not reached
    # M1: one line per medicine, (name as written, feeling, whether it is "not helping")
    medicines: list[tuple[str, str, bool]] = field(default_factory=list)
    language: str = ""  # the language the medicine names were written in

    @property
    def words_text(self) -> str:
        """The chosen answers as the reader's language lists them ("a, b", "a、b")."""
        return listed(self.words)


@dataclass
class Block:
    title: str
    rows: list[Row]
    extra: list[str] = field(default_factory=list)
    empty: str = ""  # one line when nothing in the section has an answer to show


@dataclass
class FlagView:
    title: str
    practices: str
    opener_html: Markup
    opener_text: str
    evidence: str = ""  # "3 answers point here", when more than one does


@dataclass
class SummaryView:
    visit_id: int
    clinic: str
    patient_ref: str
    visit_date: str
    visit_day: str
    completed_at: str
    language: str
    minutes: int | None
    status: str
    safety: str
    safety_answer: str
    safety_answer_time: str  # when safety_answer was saved, or "" before the history
    safety_headline: str  # the banner's sentence: safety_answer, with its time when known
    alert: Alert | None
    alert_acknowledged_time: str  # when the alert was acknowledged, or ""
    safety_history: list[str]
    agenda: Text | None
    feelings: list[str]
    flags: list[FlagView]
    also_noted: list[FlagView]  # the flags that fired beyond the three shown

    @property
    def today_empty(self) -> str:
        """One line when Today has nothing to show (v3: never a bare heading)."""
        shown = self.agenda or self.agenda_note or self.in_person or self.today or self.measures
        return "" if shown else str(NOTHING_TO_SHOW)

    @property
    def skipped_names(self) -> str:
        """The skipped items as a list after a label, in the reader's language."""
        return listed(self.skipped)

    @property
    def in_person_names(self) -> str:
        """The items held for in person, as a list after a label in the reader's language."""
        return listed(self.in_person)

    @property
    def also_noted_names(self) -> str:
        """Their names as a list after a label, in the reader's language."""
        return listed([flag.title for flag in self.also_noted])

    blocks: list[Block]
    changes: list[str]
    not_compared: list[str]  # why "since last visit" could not compare some answers
    previous_hopes: Text | None  # last visit's H1, quoted
    previous_date: str
    in_person: list[str]
    skipped: list[str]
    today: list[Row] = field(default_factory=list)
    agenda_note: str = ""  # why there is no agenda to quote, when it is not a skip
    # The standard measures (PHQ-9, GAD-7): one line each under Today, with the trend.
    measures: list[measures_.MeasureLine] = field(default_factory=list)
    previous_id: int | None = None  # the visit "since last visit" compares with
    # Acknowledgements of the alert before a worse answer opened it again, one sentence
    # each (then its note, when it has one), oldest first.
    earlier_acknowledgements: list[str] = field(default_factory=list)

    @property
    def earlier_shown(self) -> tuple[int, ...]:
        """The earlier visits of the same reference whose answers the page shows: the one
        "since last visit" compares with, and those behind the measures' earlier totals.
        Each read of the page is a read of theirs, audited as such."""
        ids = [self.previous_id] if self.previous_id is not None else []
        ids += [visit_id for line in self.measures for visit_id in line.shown_from]
        return tuple(dict.fromkeys(ids))


def completed_at(visit: Visit) -> str:
    """When the answers were sent, beside the visit's date in the header: the time alone
    on the visit's own day ("7:05 AM"), else the date as the visit's is written and the
    time, joined the locale's way ("Dec 6, 2026, 7:05 AM"); "" before they are sent.
    Answers come the evening before, or days after, through the link."""
    if visit.submitted_at is None:
        return ""
    time, day = _time_and_other_day(visit.submitted_at, visit)
    return get_locale().datetime_formats["medium"].format(time, day) if day else time


def _at(moment: datetime, visit: Visit) -> str:
    """A time after "at" in a sentence: alone on the visit's own day, else with its day
    in brackets, which still reads after "at" in every language."""
    time, day = _time_and_other_day(moment, visit)
    # Translators: a time with its day in brackets, after "at" in the summary's sentences
    # ("Changed to “Not at all” at 9:05 AM (Nov 24, 2026).") when it was not the visit's day.
    return gettext("%(time)s (%(day)s)", time=time, day=day) if day else time


def _time_and_other_day(moment: datetime, visit: Visit) -> tuple[str, str]:
    """The moment's time, and its date as the visit's is written when it is another day
    than the visit's ("" on the visit's own day)."""
    day = format_date(moment, "medium")
    same = day == format_date(visit.appointment_at, "medium")
    return format_time(moment, "short"), "" if same else day


def quote_html(text: Text, element: str = "q") -> Markup:
    """A quote, whole, marked with the language it was written in.

    ``data-fit`` lets the print fitting (static/summary.js) shorten it on paper, and
    only when the page would not fit one sheet otherwise. Inside an opener, whose
    translated sentence already has quotation marks, the words go in a plain span rather
    than a <q> that would add a second pair.
    """
    tag = Markup(' <span class="lang-tag">[%s]</span>') % text.language if text.language else ""
    lang = Markup(' lang="%s"') % text.lang if text.lang else ""
    # `element` is one of two fixed tag names chosen by the caller, never user text.
    return Markup('<%s class="quote" dir="auto"%s data-fit>%s</%s>%s') % (
        Markup(element),  # noqa: S704
        lang,
        text.text,
        Markup(element),  # noqa: S704
        tag,
    )


def name_html(name: str) -> Markup:
    """A medicine name as the patient wrote it, whole; shortened on paper only to fit."""
    return Markup('<span class="med-name" dir="auto" data-fit>%s</span>') % name


def phrase(value: summary.Phrase) -> str:
    """A phrase form of an answer, in the reader's language."""
    return pgettext(value.context, value.text)


QUOTE_END = "\x00"  # marks where a quote ends inside an opener, until its tag goes there
CLOSING_MARKS = '\u201d"\u00bb\u300d\u300f\u2019\u203a'  # closing quotation marks


def _tag_after_quote(opener, language: str, as_html: bool):
    """The quote's language tag placed after the opener's closing quotation mark (v3:
    never inside the patient's words), or nothing when it is the reader's language."""
    # The closing mark may follow a space (French "« mots »") or be escaped in HTML; in
    # plain text a direction mark may wait to follow it (bidi.in_reading_order).
    found = re.search(
        f"{QUOTE_END}([{''.join(bidi.MARKS.values())}]?)"
        f"((?:[\\s\u00a0\u202f]*(?:[{CLOSING_MARKS}]|&#34;|&quot;))?)",
        str(opener),
    )
    if found is None:
        return opener
    if not language:
        tag = ""
    elif as_html:
        tag = str(Markup(' <span class="lang-tag">[%s]</span>') % language)
    else:
        tag = f" [{language}]"
    placed = str(opener).replace(found.group(0), found.group(2) + found.group(1) + tag, 1)
    return Markup(placed) if as_html else placed  # noqa: S704 - escaped above


def _param_value(value, questionnaire: Questionnaire, language: Text, as_html: bool):
    """A flag opener's parameter as shown; `language`: what F2's words were written in
    (its tag and lang: the only free text an opener quotes)."""
    if isinstance(value, summary.Phrase):
        return phrase(value)
    if isinstance(value, summary.ChoiceRef):
        return display.label(questionnaire.items[value.item_id], value.choice_id)
    if isinstance(value, tuple):
        return joined([_param_value(v, questionnaire, language, as_html) for v in value])
    if isinstance(value, summary.Quote):
        words = value.text.replace(QUOTE_END, "")  # the marker is never the patient's
        if as_html:  # the tag follows the closing quotation mark (_tag_after_quote)
            end = Markup(QUOTE_END)  # noqa: S704 - a constant, no user text
            return quote_html(Text(words, "", language.lang), element="span") + end
        words, mark = bidi.in_reading_order(words)  # plain text: no dir="auto" there
        return mark + words + QUOTE_END + mark
    return value


def _flag_view(flag: summary.Flag, questionnaire: Questionnaire, language: Text) -> FlagView:
    """A flag as the page shows it; `language`: what the F2 words it may quote were
    written in (Text("", name, lang), both empty in the reader's language)."""
    template = gettext(flag.opener)
    html_params = {
        k: _param_value(v, questionnaire, language, True) for k, v in flag.kwargs.items()
    }
    text_params = {
        k: _param_value(v, questionnaire, language, False) for k, v in flag.kwargs.items()
    }
    practices = joined([str(PRACTICES[n]) for n in flag.practices])
    evidence = (
        ngettext("%(num)s answer points here", "%(num)s answers point here", flag.evidence)
        if flag.evidence > 1
        else ""
    )
    return FlagView(
        gettext(flag.title),
        practices,
        _tag_after_quote(escape(template) % html_params, language.language, True),
        _tag_after_quote(template % text_params, language.language, False),
        evidence,
    )


def _row(
    questionnaire: Questionnaire,
    item_id: str,
    answers: dict,
    code: str,
    label: str | None = None,
    note: str = "",
) -> Row:
    """An answer's row; `code`: the language its free text was written in."""
    item = questionnaire.items[item_id]
    if note:
        return Row(label or gettext(item.short), note=note)
    value = answers.get(item_id)
    shown = display.show(item, value)
    quote = written(shown.quote, code) if shown.quote else None
    row = Row(
        label or gettext(item.short),
        list(shown.words),
        quote,
        skipped=not summary.is_answered(value),
    )
    if shown.pairs:
        feelings = [r.get("feeling") if isinstance(r, dict) else None for r in value]
        row.medicines = [
            (own, words, feeling == "not_helping")
            for (own, words), feeling in zip(shown.pairs, feelings, strict=False)
        ]
        row.language = language_tag(code)
    return row


def _changes(current: dict, previous: dict | None, questionnaire: Questionnaire) -> list[str]:
    lines = []
    for change in summary.changes(current, previous):
        if change.kind == "stance":
            lines.append(
                gettext(
                    "Stance: %(before)s → %(after)s",
                    before=gettext(summary.STANCE_LABELS[change.before]),
                    after=gettext(summary.STANCE_LABELS[change.after]),
                )
            )
            continue
        item = questionnaire.items[change.item_id]
        if change.kind == "new_worries":
            lines.append(
                gettext("New worries: %(list)s", list=joined(display.labels(item, change.after)))
            )
        elif change.kind == "gone_worries":
            lines.append(
                gettext(
                    "Worries no longer named: %(list)s",
                    list=joined(display.labels(item, change.before)),
                )
            )
        else:
            before = " ".join(display.show(item, change.before).words)
            after = " ".join(display.show(item, change.after).words)
            lines.append(
                gettext(
                    "%(topic)s: %(before)s → %(after)s",
                    topic=gettext(item.short),
                    before=before,
                    after=after,
                )
            )
    return lines


def stance_line(parts: summary.Stance) -> str:
    """ "Need 7/10 · worries: side effects, becoming dependent · both high (ambivalent)"."""
    named = listed([phrase(w) for w in parts.worries]) or pgettext("worries", "none")
    return gettext(
        "Need %(need)s/10 · worries: %(worries)s · %(word)s",
        need=parts.need,
        worries=named,
        word=gettext(summary.STANCE_LABELS[parts.key]),
    )


def _held_and_not_asked(
    questionnaire: Questionnaire, answers: dict, in_person, offered=()
) -> tuple[set[str], dict[str, str]]:
    """The items held for in person, and those an answer left unasked (M0 "no") with the
    item that hid each (or a measure the visit did not offer, with its id). What a held
    answer left unasked is held too: "not asked" would give the held answer away."""
    held, hidden = set(in_person), {}
    for item_id, decider in questionnaire.not_asked(answers, offered).items():
        if decider in in_person:
            held.add(item_id)
        else:
            hidden[item_id] = decider
    return held, hidden


def _not_compared(
    current: dict,
    previous: dict,
    questionnaire: Questionnaire,
    not_asked: dict | None = None,
    not_asked_before: dict | None = None,
    held: set[str] | frozenset[str] = frozenset(),
    held_before: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Why some answers were not compared: not answered, held for in person, or not
    asked (M0 "no") on that visit; a held or unasked item is never "not answered"."""
    now, before = summary.not_compared(current, previous)

    def names(item_ids: list[str]) -> str:
        return joined([gettext(questionnaire.items[i].short) for i in item_ids])

    unasked_now = [i for i in now if i in (not_asked or {})]
    unasked_before = [i for i in before if i in (not_asked_before or {})]
    held_now = [i for i in now if i in held and i not in unasked_now]
    held_then = [i for i in before if i in held_before and i not in unasked_before]
    now = [i for i in now if i not in unasked_now and i not in held_now]
    before = [i for i in before if i not in unasked_before and i not in held_then]
    lines = []
    if now:
        lines.append(gettext("Not compared, not answered this time: %(items)s", items=names(now)))
    if held_now:
        lines.append(
            gettext("Not compared, held for in person this time: %(items)s", items=names(held_now))
        )
    if unasked_now:
        lines.append(
            gettext(
                "Not compared, not asked this time (not taking medicine): %(items)s",
                items=names(unasked_now),
            )
        )
    if before:
        lines.append(
            gettext("Not compared, not answered last time: %(items)s", items=names(before))
        )
    if held_then:
        lines.append(
            gettext("Not compared, held for in person last time: %(items)s", items=names(held_then))
        )
    if unasked_before:
        lines.append(
            gettext(
                "Not compared, not asked last time (not taking medicine): %(items)s",
                items=names(unasked_before),
            )
        )
    return lines


def written(words: str, code: str) -> Text:
    """Patient words in the language `code` they were written in: named (the tag) and
    marked (lang) only when the reader reads another language."""
    name = language_tag(code)
    return Text(words, name, code.replace("_", "-") if name else "")


def language_tag(code: str) -> str:
    """The name of the language free text was written in, in the reader's language, or
    nothing when the reader's language is the same one."""
    if Locale.parse(code or "en").language == get_locale().language:
        return ""
    return language_name(code)


def _previous_hopes(previous: Visit | None, answers: dict | None, reader: str) -> Text | None:
    hopes = summary.previous_hopes(answers)
    if hopes is None:
        return None
    # Free text names the language it was written in when the reader's differs.
    code = (previous.answer_language if previous else "") or "en"
    return written(hopes.text, code)


def _acknowledged_time(alert: Alert | None, visit: Visit) -> str:
    if alert and alert.acknowledged_at:
        return _at(alert.acknowledged_at, visit)
    return ""


def _safety_history_lines(
    history: list[SafetyAnswer], questionnaire: Questionnaire, visit: Visit
) -> list[str]:
    """How a worrying safety answer was changed or skipped, one sentence per saved value.
    Nothing when the patient saved one value only: the banner already says it."""
    if len(history) < 2 or not summary.ever_worrying([h.value for h in history]):
        return []
    item = questionnaire.items[questionnaire.layout.safety]
    lines = []
    for number, entry in enumerate(history):
        time = _at(entry.saved_at, visit)
        if entry.value == summary.DECLINED:
            lines.append(gettext("Skipped the question at %(time)s.", time=time))
            continue
        answer = display.label(item, entry.value)
        if number == 0:
            lines.append(
                gettext("First answered “%(answer)s” at %(time)s.", answer=answer, time=time)
            )
        else:
            lines.append(gettext("Changed to “%(answer)s” at %(time)s.", answer=answer, time=time))
    return lines


def _safety(visit: Visit, answers: dict, history: list[SafetyAnswer], reached: bool) -> str:
    """The banner's state; `reached`: whether the safety question was shown."""
    if summary.ever_worrying([h.value for h in history]):
        return "endorsed"
    return visit.safety or summary.safety_status(answers, reached)


def _banner_answer(
    answers: dict, history: list[SafetyAnswer], questionnaire: Questionnaire, visit: Visit
) -> tuple[str, str]:
    """The answer the banner names and its time: the most severe worrying value ever
    saved (first saved, if saved again), else the current answer with no time."""
    worrying = [h for h in history if summary.is_worrying(h.value)]
    if worrying:
        # max() keeps the first of equals; a value outside the scale ranks lowest.
        entry = max(worrying, key=lambda h: summary.safety_severity(h.value))
        value, time = entry.value, _at(entry.saved_at, visit)
    else:
        value, time = answers.get(questionnaire.layout.safety), ""
    item = questionnaire.items.get(questionnaire.layout.safety)
    return (display.label(item, value) if value and item else "", time)


def _safety_headline(answer: str, time: str) -> str:
    if time:
        return gettext(
            "the patient answered “%(answer)s” at %(time)s to thoughts of being better off "
            "dead or of self-harm in the past 2 weeks.",
            answer=answer,
            time=time,
        )
    return gettext(
        "the patient answered “%(answer)s” to thoughts of being better off dead or of "
        "self-harm in the past 2 weeks.",
        answer=answer,
    )


def minutes_taken(visit: Visit) -> int | None:
    """Whole minutes from starting to sending (at least 1), or None if not sent."""
    if not (visit.started_at and visit.submitted_at):
        return None
    spent = visit.submitted_at - visit.started_at
    return max(1, round(spent.total_seconds() / 60))


def _reached(visit: Visit, questionnaire: Questionnaire) -> set[str]:
    """The questions the patient was shown (v3: per screen): every one up to the last
    question of the furthest screen shown. A visit from before that was kept reads by
    section: every question of the sections up to its furthest step."""
    ids = questionnaire.item_ids
    if visit.reached_item in questionnaire.items:
        return set(ids[: ids.index(visit.reached_item) + 1])
    sections = questionnaire.sections[: max(visit.furthest_step, 0)]
    return {item.id for section in sections for item in section.items}


@dataclass
class _Body:
    """What the summary's rows are built from: the answers it may show and why the others
    have none (held for in person, not asked, not reached), for one visit."""

    q: Questionnaire
    visible: dict
    held: set[str]
    hidden: dict[str, str]
    reached: set[str]  # the questions shown (_reached)
    asked: set[str]
    languages: dict[str, str]
    written_in: str

    def tag(self, item_id: str) -> str:
        """The name of the language an answer was written in, in the reader's language;
        empty when the reader reads that language (v3: a tag only where they differ)."""
        return language_tag(self.code(item_id))

    def code(self, item_id: str) -> str:
        """The language an answer was written in."""
        return self.languages.get(item_id) or self.written_in

    def note(self, *item_ids: str) -> str:
        """Why these items have no answer to show, when it is not a skip."""
        if any(i in self.held for i in item_ids):
            return str(IN_PERSON_NOTE)
        if any(i in self.hidden for i in item_ids):
            return str(NOT_ASKED_NOTE)
        if any(i not in self.reached for i in item_ids):
            return str(NOT_REACHED_NOTE)
        return ""

    def row(self, item_id: str) -> Row:
        if item_id not in self.asked:
            return Row("")  # a row without a label is dropped below
        return _row(self.q, item_id, self.visible, self.code(item_id), None, self.note(item_id))

    def rows(self, *item_ids: str) -> list[Row]:
        return [self.row(i) for i in item_ids]

    def stance_rows(self) -> list[Row]:
        """The stance row; without a stance, the need's own row follows it."""
        need, worries = self.q.layout.stance.need, self.q.layout.stance.worries
        stance = summary.stance_parts(self.visible)
        stance_row = Row(
            # No stance row when neither part was asked: their own rows say so.
            "" if {need, worries} <= self.hidden.keys() else gettext("Stance"),
            [stance_line(stance)] if stance else [],
            skipped=stance is None,
            note="" if stance else self.note(need, worries),
        )
        # The stance names the need; without a stance the need has its own row.
        return [stance_row, *([] if stance else self.rows(need))]

    def block_rows(self, entries: tuple[str, ...]) -> list[Row]:
        return [r for i in entries for r in (self.stance_rows() if i == STANCE else self.rows(i))]


def build(
    *,
    visit: Visit,
    answers: dict,
    in_person: set[str],
    previous: Visit | None,
    previous_answers: dict | None,
    previous_in_person: set[str] | None,
    alert: Alert | None,
    clinic: str,
    questionnaire: Questionnaire,
    reader_language: str,
    answer_languages: dict[str, str] | None = None,
    safety_history: list[SafetyAnswer] | None = None,
    earlier: list[tuple[Visit, dict, set[str]]] | None = None,
    earlier_acknowledgements: list[EarlierAcknowledgement] | None = None,
) -> SummaryView:
    """Everything the one-page summary shows, in the reader's language. ``earlier``: the
    same patient reference's earlier sent visits with their answers and held items,
    newest first, for the trend of the standard measures."""
    q = questionnaire
    layout = q.layout  # where each item shows: questionnaire.toml's [summary]
    # Items the patient's own answer left unasked (M0 "no"), each with the item that hid
    # it. Like held items they are removed before any logic runs, so no flag, stance or
    # change ever reads them (a sent visit keeps none of them; older data may hold some).
    held, hidden = _held_and_not_asked(q, answers, in_person, visit.offered)
    written_in = visit.answer_language or "en"
    body = _Body(
        q=q,
        visible={k: v for k, v in answers.items() if k not in held and k not in hidden},
        held=held,
        hidden=hidden,
        reached=_reached(visit, q),
        # Items added after the version this visit was answered under were never asked:
        # they are left out entirely, neither skipped nor "not reached". (An answer shows
        # in any case: a visit begun before an upgrade is answered on the new screens.)
        asked=q.asked_in(visit.questionnaire_version) | set(answers),
        languages=answer_languages or {},
        written_in=written_in,
    )
    visible, note = body.visible, body.note
    blocks = [Block(gettext(b.title), body.block_rows(b.items)) for b in layout.blocks]
    for block in blocks:
        block.rows = _shown_rows(block.rows)
        block.empty = "" if block.rows else str(NOTHING_TO_SHOW)
    # The agenda has its own line at the top of Today, beside the topics held back.
    today = _shown_rows(body.rows(*layout.today))
    held_before, hidden_before = _held_and_not_asked(
        q, previous_answers or {}, previous_in_person or set(), previous.offered if previous else ()
    )
    previous_visible = (
        None
        if previous_answers is None
        else {
            k: v
            for k, v in previous_answers.items()
            if k not in held_before and k not in hidden_before
        }
    )
    skipped = [
        gettext(q.items[i].short)
        for i in summary.skipped_items(visible, body.reached, q)
        if i not in held
        and i != layout.safety
        and i in body.asked
        and i not in hidden
        and not q.items[i].instrument  # the Measures line says what a measure lacks
    ]
    history = safety_history or []
    banner_answer, banner_time = _banner_answer(answers, history, q, visit)
    f2 = written("", body.code("F2"))  # the only free text an opener quotes is F2's
    return SummaryView(
        visit_id=visit.id,
        clinic=clinic,
        patient_ref=visit.patient_ref,
        visit_date=format_date(visit.appointment_at, "medium"),
        visit_day=visit.day.isoformat(),
        completed_at=completed_at(visit),
        language=language_name(written_in),
        minutes=minutes_taken(visit),
        status=visit.status,
        safety=_safety(visit, answers, history, q.layout.safety in body.reached),
        safety_answer=banner_answer,
        safety_answer_time=banner_time,
        safety_headline=_safety_headline(banner_answer, banner_time),
        alert=alert,
        alert_acknowledged_time=_acknowledged_time(alert, visit),
        safety_history=_safety_history_lines(history, q, visit),
        agenda=(
            written(visible[layout.agenda], body.code(layout.agenda))
            if visible.get(layout.agenda)
            else None
        ),
        feelings=display.labels(q.items["T1"], visible.get("T1")),
        # The only free text an opener quotes is F2's.
        flags=[_flag_view(f, q, f2) for f in summary.top_flags(visible, held=in_person)],
        also_noted=[_flag_view(f, q, f2) for f in summary.also_noted(visible, held=in_person)],
        blocks=blocks,
        changes=_changes(visible, previous_visible, q) if previous_visible is not None else [],
        not_compared=(
            _not_compared(visible, previous_visible, q, hidden, hidden_before, held, held_before)
            if previous_visible is not None
            else []
        ),
        previous_hopes=_previous_hopes(previous, previous_visible, reader_language),
        previous_date=format_date(previous.appointment_at, "medium") if previous else "",
        previous_id=previous.id if previous else None,
        in_person=[gettext(q.items[i].short) for i in q.item_ids if i in in_person],
        skipped=skipped,
        today=today,
        agenda_note=note(layout.agenda) if layout.agenda else "",
        measures=_measure_lines(q, visit, previous, answers, held, body.reached, earlier or []),
        earlier_acknowledgements=_earlier_acknowledgement_lines(
            earlier_acknowledgements or [], visit
        ),
    )


def _earlier_acknowledgement_lines(
    earlier: list[EarlierAcknowledgement], visit: Visit
) -> list[str]:
    """Who acknowledged the alert before a worse answer opened it again, and when: what
    they checked on was the answer before, so the page says so."""
    lines = []
    for ack in earlier:
        lines.append(
            gettext(
                "An earlier alert was acknowledged at %(when)s by %(name)s, before a worse "
                "answer opened it again.",
                when=_at(ack.acknowledged_at, visit),
                name=ack.acknowledged_by_name or "—",
            )
        )
        if ack.acknowledged_note:
            lines.append(gettext("Note: %(note)s", note=ack.acknowledged_note))
    return lines


def earlier_answers(db, visit: Visit) -> list[tuple[Visit, dict, set[str]]]:
    """The same patient reference's earlier sent visits that offered a standard measure,
    newest first, with their answers and held items: the trend's input."""
    from patientapp.db import storage

    return [(before, *storage.answers_for(db, before.id)) for before in earlier_measured(db, visit)]


def earlier_measured(db, visit: Visit) -> list[Visit]:
    """The same patient reference's earlier sent visits that offered a standard measure,
    newest first, as many as the trend may read."""
    from patientapp.db import storage

    found = storage.earlier_visits(db, visit, limit=measures_.EARLIER_SHOWN * 2)
    return [before for before in found if before.offered]


def _short_date(moment: datetime) -> str:
    return format_date(moment, "short")


def _why_none(score) -> str:
    """Why a measure has no total, in the reader's language."""
    reasons = []
    if score.skipped:
        reasons.append(
            ngettext("%(num)d question skipped", "%(num)d questions skipped", len(score.skipped))
        )
    if score.held:
        reasons.append(
            ngettext(
                "%(num)d answer held for in person",
                "%(num)d answers held for in person",
                len(score.held),
            )
        )
    if score.not_reached:
        reasons.append(
            ngettext(
                "%(num)d question not reached",
                "%(num)d questions not reached",
                len(score.not_reached),
            )
        )
    return gettext("no total: %(reasons)s", reasons=listed(reasons))


def _signed(number: int) -> str:
    """+3, -2 (with a true minus sign, U+2212), or 0."""
    if number > 0:
        return f"+{format_decimal(number)}"
    if number < 0:
        return f"\u2212{format_decimal(-number)}"
    return format_decimal(0)


def _measure_lines(
    q: Questionnaire,
    visit: Visit,
    previous: Visit | None,
    answers: dict,
    held: set[str],
    reached: set[str],
    earlier: list[tuple[Visit, dict, set[str]]],
) -> list[measures_.MeasureLine]:
    """The Measures line: each measure the visit offered with its total and band (or why
    there is none), the same patient reference's earlier totals as numbers and a small
    chart, and the change since the last of them; each measure included but not offered
    in the patient's language, said in one line."""
    history: dict[str, list[measures_.Point]] = {}
    for before, before_answers, before_held in reversed(earlier):  # oldest first
        found = measures_.scores(
            q, before.offered, before_answers, before_held, _reached(before, q)
        )
        for score in found:
            if score.total is not None:
                history.setdefault(score.instrument.id, []).append(
                    measures_.Point(
                        before.day.isoformat(),
                        _short_date(before.appointment_at),
                        score.total,
                        before.id,
                    )
                )
    lines = []
    for score in measures_.scores(q, visit.offered, answers, held, reached):
        instrument = score.instrument
        points = history.get(instrument.id, [])[-measures_.EARLIER_SHOWN :]
        trend = measures_.Trend(instrument, score, tuple(points))
        totals = [p.total for p in points] + ([score.total] if score.total is not None else [])
        dated = [f"{format_decimal(p.total)} ({p.label})" for p in points]
        if score.total is not None:
            dated.append(f"{format_decimal(score.total)} ({_short_date(visit.appointment_at)})")
        change = change_long = ""
        if trend.change is not None:
            change = _signed(trend.change)
            change_long = gettext("%(change)s since %(date)s", change=change, date=points[-1].label)
            if previous is None or points[-1].day != previous.day.isoformat():
                # Not against the visit "since last visit" names: the page says which.
                change = change_long
        lines.append(
            measures_.MeasureLine(
                name=instrument.name,
                total=score.total,
                maximum=instrument.maximum,
                band=pgettext("severity", score.band.label) if score.band else "",
                why_none="" if score.total is not None else _why_none(score),
                prorated=(
                    gettext(
                        "prorated from %(answered)d of %(items)d answers",
                        answered=score.answered,
                        items=len(instrument.items),
                    )
                    if score.prorated
                    else ""
                ),
                earlier=(
                    gettext(
                        "earlier: %(totals)s",
                        totals=listed([format_decimal(p.total) for p in points]),
                    )
                    if points
                    else ""
                ),
                change=change,
                change_long=change_long,
                shown_from=tuple(p.visit_id for p in points),
                chart=measures_.chart(
                    totals,
                    instrument,
                    # Read out (and shown on hover) with each total's date.
                    gettext(
                        "%(measure)s totals, oldest first: %(totals)s",
                        measure=instrument.name,
                        totals=joined(dated),
                    ),
                ),
            )
        )
    if visit.measures_offered is not None:
        for instrument in q.instruments:
            if instrument.id in visit.chosen and instrument.id not in visit.offered:
                lines.append(
                    measures_.MeasureLine(
                        name=instrument.name,
                        not_offered=gettext(
                            "%(measure)s not offered in %(language)s",
                            measure=instrument.name,
                            # The language the patient started in decided it.
                            language=language_name(
                                visit.measures_language or visit.answer_language or "en"
                            ),
                        ),
                    )
                )
    return lines


def _shown_rows(rows: list[Row]) -> list[Row]:
    """The rows the body shows: skipped ones go to the footer only."""
    return [r for r in rows if r.label and (r.note or not r.skipped)]
