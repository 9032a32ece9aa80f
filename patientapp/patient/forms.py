"""The patient's questionnaire forms: one Flask-WTF form per screen, built at run time
from the definition.

Every field is optional (each question can be skipped). What each item type asks,
checks and stores is its own (``item_types``); this module splits a section into the
screens a phone shows, puts a screen's items together, fills them from stored answers and
reads them back, and keeps each screen's page as a skeleton to fill on a GET.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from html import unescape

from flask import current_app, g, render_template, request
from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import FieldList, FormField, RadioField, SelectMultipleField, StringField

from patientapp.questionnaire.model import Item, Section
from patientapp.web.context import clinic_settings

# How much of a phone screen a question takes, in rows of about 54 CSS px at 360 px (one
# choice, a little less when its label is short enough to share a row). A screen holds
# about 25 rows between its heading and its buttons (the language switcher folded into
# one line); SCREEN_ROWS leaves room for longer translations and the 320 px phone: the
# tallest screen with every answer filled measures 1,869 px (pt_BR, 320 px) of the 1,900
# px the browser test allows (bench/screens.py).
SCREEN_ROWS = 24.0
QUESTION_ROWS = 2.0  # the question's own words, its help line and its box
SKIP_ROWS = 1.2  # "Prefer not to say", set apart
TEXT_ROWS = {"short": 2.0, "long": 5.0}  # a text box, empty or full of its longest text
LONG_TEXT = 100  # characters: a box for more grows to about five rows


def _choice_rows(label: str) -> float:
    return 0.6 if len(label) <= 14 else 1.0 if len(label) <= 30 else 1.5


def _text_rows(item: Item) -> float:
    return TEXT_ROWS["long" if (item.max_length or 0) > LONG_TEXT else "short"]


class Measures:
    """The rows the parts of a question take, which each item type adds up in its own
    ``screen_rows``."""

    skip = SKIP_ROWS

    @staticmethod
    def question(item: Item) -> float:
        """The question's own rows, and a row for an intro above it."""
        return QUESTION_ROWS + (1.0 if item.intro else 0.0)

    @staticmethod
    def choices(item: Item) -> float:
        return sum(_choice_rows(choice.label) for choice in item.choices)

    @staticmethod
    def text(item: Item) -> float:
        return _text_rows(item)


def screen_rows(item: Item) -> float:
    """About how many rows one question takes on a phone (see SCREEN_ROWS)."""
    return item.item_type.screen_rows(item, Measures)


# A section's title, where a screen goes on into the next section: about a row.
HEADING_ROWS = 1.2


@dataclass(frozen=True)
class Page:
    """One phone screen: ``items`` in order, possibly ending one section and beginning the
    next. It is addressed by the section it starts in (``number``, the step of
    /step/N) and its place among the screens starting there (``screen``)."""

    number: int
    screen: int
    items: tuple[Item, ...]


def _sections_of(section: Section) -> tuple[Section, ...]:
    """The sections a section's screens are packed with: the shipped questionnaire's when
    it is one of them, else the section alone (a definition under test)."""
    from patientapp.questionnaire.model import default

    shipped = default().sections
    return shipped if section in shipped else (section,)


@lru_cache(maxsize=16)
def pages(sections: tuple[Section, ...]) -> tuple[Page, ...]:
    """The screens of the whole questionnaire, in order, so that none grows much past two
    and a half phone screens and as few as hold the questions are used. A screen may end
    one section and begin the next: sections are the patient's headings, screens what
    they tap through. An item answered in rows (the medicine list) stands on a screen of
    its own: with every row filled it is most of that by itself. An item whose answer can
    leave later items unasked (M0) ends its screen, so that answer is saved (Next) before
    they would show. A section marked own_screen (the safety question) is a screen by
    itself. The other items keep their order and are shared out evenly over as few
    screens as hold them; a section with no items keeps an empty screen."""
    runs: list[list[tuple[int, Item]]] = []
    last: tuple[int, Item] | None = None
    for number, section in enumerate(sections, start=1):
        if not section.items:
            runs.append([(number, None)])  # type: ignore[list-item]
            last = None
            continue
        for item in section.items:
            fresh = (
                last is None
                or item.item_type.has_rows
                or last[1].item_type.has_rows
                or last[1].decides
                or (last[0] != number and (section.own_screen or sections[last[0] - 1].own_screen))
                # A standard measure begins a screen of its own, under its stem.
                or item.instrument != last[1].instrument
            )
            if fresh:
                runs.append([])
            runs[-1].append((number, item))
            last = (number, item)
    found: list[Page] = []
    for run in runs:
        if run[0][1] is None:
            found.append(Page(run[0][0], 1 + sum(p.number == run[0][0] for p in found), ()))
            continue
        starts = {n for n, (number, _) in enumerate(run) if n and number != run[n - 1][0]}
        for chunk in _share_out(tuple(item for _, item in run), starts):
            first = next(number for number, item in run if item is chunk[0])
            found.append(Page(first, 1 + sum(p.number == first for p in found), chunk))
    return tuple(found)


@lru_cache(maxsize=64)
def screens(section: Section) -> tuple[tuple[Item, ...], ...]:
    """The screens that start in one section, in order (see ``pages``): their items may go
    on into the next sections. A section every item of which sits on an earlier
    section's screens has none of its own."""
    sections = _sections_of(section)
    number = sections.index(section) + 1
    return tuple(page.items for page in pages(sections) if page.number == number)


def _share_out(items: tuple[Item, ...], starts: frozenset[int] | set[int] = frozenset()):
    """Items in order over the fewest screens that hold them, the fullest screen as light
    as it can be (a question longer than a screen stands alone). ``starts``: the places
    where a new section begins, whose title takes a row unless a screen starts there."""
    rows = [screen_rows(item) for item in items]

    def load(a: int, b: int) -> float:
        return sum(rows[a:b]) + HEADING_ROWS * sum(1 for n in starts if a < n < b)

    @cache
    def best(start: int, parts: int) -> tuple[float, float, tuple[int, ...]]:
        """(the fullest screen, the lightest, where screens start) for items[start:] on
        `parts` screens: the fullest as light as can be, then the lightest as full as can
        be (no lone question beside two full screens)."""
        if parts == 1:
            rows_ = load(start, len(items))
            return rows_, rows_, (start,)
        choices = []
        for cut in range(start + 1, len(items) - parts + 2):
            fullest, lightest, starts_ = best(cut, parts - 1)
            here = load(start, cut)
            choices.append((max(here, fullest), min(here, lightest), (start, *starts_)))
        return min(choices, key=lambda choice: (choice[0], -choice[1]))

    parts = max(1, math.ceil(sum(rows) / SCREEN_ROWS))
    while True:
        fullest, _, cuts = best(0, min(parts, len(items)))
        if fullest <= SCREEN_ROWS or parts >= len(items):
            break
        parts += 1
    bounds = [*cuts, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def shown_pages(q, hidden: frozenset[str] = frozenset()) -> list[Page]:
    """The screens of the whole questionnaire this visit sees: a screen whose every item
    is unasked (the medicine list, when not taking medicine) is passed over."""
    return shown_pages_of(q.sections, hidden)


def shown_pages_of(sections: tuple[Section, ...], hidden: frozenset[str]) -> list[Page]:
    return [
        page
        for page in pages(sections)
        if not page.items or any(item.id not in hidden for item in page.items)
    ]


def page_of(q, item_id: str) -> Page:
    """The screen an item is asked on."""
    return next(page for page in pages(q.sections) if any(i.id == item_id for i in page.items))


def screen_items(
    section: Section, screen: int | None, hidden: frozenset[str] = frozenset()
) -> tuple[Item, ...]:
    """The items on screen ``screen`` (1-based) of a section; None means the whole
    section, as a form posted without a screen number asks it. ``hidden`` names the
    items this visit's answers leave unasked (``Questionnaire.not_asked``)."""
    items = section.items if screen is None else screens(section)[screen - 1]
    return tuple(item for item in items if item.id not in hidden) if hidden else items


def shown_screens(section: Section, hidden: frozenset[str] = frozenset()) -> tuple[int, ...]:
    """The numbers of the section's screens this visit sees: a screen whose every item is
    unasked (the medicine list, when not taking medicine) is passed over by Next, Back
    and the links. Numbers stay those of the whole section, so a link keeps its screen.
    A section with screens of its own keeps one (the definition never hides all of one);
    a section whose questions all sit on an earlier section's screens has none."""
    own = screens(section)
    if not own:
        return ()  # every question sits on an earlier section's screens
    if section.items and all(item.id in hidden for item in section.items):
        return ()  # a standard measure this visit does not offer
    found = tuple(
        number
        for number, items in enumerate(own, start=1)
        if not items or any(item.id not in hidden for item in items)
    )
    return found or (1,)


@dataclass(frozen=True)
class Whereabouts:
    """What a screen tells the patient about where they are: the screen's place among
    the screens this visit sees (the progress moves on every screen), and the title of
    each section that begins part-way down it, by the id of its first question."""

    position: int
    count: int
    headings: dict


def whereabouts(section: Section, screen: int, hidden: frozenset[str] = frozenset()):
    sections = _sections_of(section)
    number = sections.index(section) + 1
    shown = [(page.number, page.screen) for page in shown_pages_of(sections, hidden)]
    at = (number, screen)
    if screen is None and section.items:  # the whole section: where it begins
        first = next(p for p in pages(sections) if section.items[0] in p.items)
        at = (first.number, first.screen)
    position = shown.index(at) + 1 if at in shown else 1
    home = {item.id: s for s in sections for item in s.items}
    headings, before = {}, section
    for item in screen_items(section, screen, hidden):
        if home[item.id] is not before:
            headings[item.id] = home[item.id].title
        before = home[item.id]
    return Whereabouts(position, len(shown), headings)


# A medicine row's number in a field name (``M1-0-name``): a few ASCII digits. WTForms'
# FieldList reads any str.isdigit() text as one and calls int() on it, which "²" passes
# and fails (a 500), as do 5,000 nines (Python's limit on long numbers); "٣" it would
# read as a row 3 that nothing else counts.
ROW_NUMBER = re.compile(r"[0-9]{1,9}")


class RowList(FieldList):
    """A FieldList that takes only ASCII row numbers from the posted field names."""

    def _extract_indices(self, prefix, formdata):
        offset = len(prefix) + 1
        for key in formdata:
            if key.startswith(prefix):
                number = key[offset:].split(self._field_separator, 1)[0]
                if ROW_NUMBER.fullmatch(number):
                    yield int(number)


def _row_lists(fields: dict[str, object]) -> dict[str, object]:
    """The item's fields, each FieldList read as a RowList (the field keeps its place)."""
    for field in fields.values():
        if getattr(field, "field_class", None) is FieldList:
            field.field_class = RowList
    return fields


@lru_cache(maxsize=128)
def section_form_class(
    section: Section, med_rows: int = 1, screen: int | None = None
) -> type[FlaskForm]:
    """A FlaskForm class for one screen of a section (cached: classes are immutable once
    built)."""
    fields: dict[str, object] = {}
    for item in screen_items(section, screen):
        fields.update(_row_lists(item.item_type.fields(item, med_rows)))
    # No CSRF field of its own: CSRFProtect checks every POST's token before the view runs
    # (tests/web/patient/test_step_page.py), and step.html writes the session's token itself.
    fields["Meta"] = type("Meta", (), {"csrf": False})
    return type(f"Section_{section.id}_{screen or 0}_{med_rows}", (FlaskForm,), fields)


def medicine_rows(answers: dict, item: Item, submitted_rows: int = 0) -> int:
    """How many medicine rows to show: what was typed, or what is stored plus one empty
    row to write in; at least one. "Add another medicine" saves the typed rows, so the
    next screen has exactly one new empty row."""
    filled = len(answers.get(item.id) or [])
    return min(max(1, filled + 1, submitted_rows), item.max_rows)


def form_data(items: tuple[Item, ...], answers: dict) -> dict[str, object]:
    """Stored answers as form data, to fill a screen's form."""
    data: dict[str, object] = {}
    for item in items:
        value = answers.get(item.id)
        if value is not None:
            data.update(item.item_type.form_data(item, value))
    return data


def answers_from(items: tuple[Item, ...], form: FlaskForm) -> dict[str, object]:
    """A validated form's answers by item id; None marks a skipped item."""
    return {item.id: item.item_type.answer(item, form) for item in items}


# --- a screen's GET page from a kept skeleton --------------------------------------------
#
# The first GET of a screen in a language renders ``patient/step.html`` the usual way with
# an empty form and keeps the HTML as a skeleton: its text, and the places where this
# request's own values go (a choice ticked, a text box's words, the CSRF token, the idle
# time). Each later GET of that screen fills those places in, without building a form or
# running the templates. A skeleton is made only of the definition, the language and the
# clinic's settings (with, outside its staffed hours, when it next opens), never of
# anyone's answers: this visit's answers are put in, escaped,
# for this response only. What the places receive follows WTForms' own rules for a form
# filled with ``data=`` (tests/web/patient/test_step_page.py renders every screen both ways and
# compares them). A screen this cannot fill exactly (a draft, errors, odd stored data) is
# rendered in full.

STEP_TEMPLATE = "patient/step.html"
SKELETON_CACHE_SIZE = 512  # skeletons kept per app: languages x screens x medicine rows x settings
SKELETON_CACHE = "patientapp.step_pages"
# Stand-ins rendered into a skeleton where a request's own value goes (never real values).
CSRF_MARK = "csrf-token-of-this-request-6b1d0c"
IDLE_MARK = "idle-seconds-of-this-request-6b1d0c"

TAG = re.compile(r"<(input|textarea)\b[^>]*>")
ATTRIBUTE = re.compile(r'\s([a-zA-Z_:-]+)(?:="([^"]*)")?')

# Kinds of field a skeleton fills.
ONE, MANY, TEXT = "one", "many", "text"


@dataclass(frozen=True)
class _Field:
    kind: str
    filters: tuple = ()


@dataclass(frozen=True)
class _Rows:
    """A FieldList of FormFields (the medicine list): its row count and the row fields."""

    entries: int
    fields: dict[str, _Field]


@dataclass(frozen=True)
class Skeleton:
    pieces: tuple  # text, or a slot tuple: ("check", name, value) / ("text", name) / ...
    fields: dict  # top-level field name -> _Field or _Rows


class _Unsupported(Exception):
    """A form or page this module cannot fill exactly: render it in full."""


def _field_info(field) -> _Field:
    if isinstance(field, SelectMultipleField):
        kind = MANY
    elif isinstance(field, RadioField):
        kind = ONE
    elif isinstance(field, StringField):  # also TextAreaField
        kind = TEXT
    else:
        raise _Unsupported(type(field).__name__)
    if kind != TEXT and field.coerce is not str:
        raise _Unsupported("coerce")
    return _Field(kind, tuple(field.filters))


def _fields_of(form) -> dict:
    fields: dict = {}
    for field in form:
        if isinstance(field, FieldList):
            entries = list(field.entries)
            if not entries or not all(isinstance(entry, FormField) for entry in entries):
                raise _Unsupported("list")
            row = {sub.short_name: _field_info(sub) for sub in entries[0].form}
            fields[field.name] = _Rows(len(entries), row)
        else:
            fields[field.name] = _field_info(field)
    return fields


def _names(fields: dict) -> dict[str, str]:
    """Every input name of the form, with its kind."""
    names = {}
    for name, info in fields.items():
        if isinstance(info, _Rows):
            for index in range(info.entries):
                for short, sub in info.fields.items():
                    names[f"{name}-{index}-{short}"] = sub.kind
        else:
            names[name] = info.kind
    return names


def _split_marks(text: str) -> list:
    pieces: list = []
    for i, chunk in enumerate(text.split(CSRF_MARK)):
        if i:
            pieces.append(("csrf",))
        for j, part in enumerate(chunk.split(IDLE_MARK)):
            if j:
                pieces.append(("idle",))
            if part:
                pieces.append(part)
    return pieces


def _parse(html: str, fields: dict) -> tuple:
    names = _names(fields)
    pieces: list = []
    at = 0
    for tag in TAG.finditer(html):
        attributes = {key: unescape(value or "") for key, value in ATTRIBUTE.findall(tag.group())}
        name = attributes.get("name", "")
        if name not in names:
            continue
        kind = names[name]
        if "checked" in attributes:
            raise _Unsupported("checked in a skeleton")
        if tag.group(1) == "input" and attributes.get("type") in ("radio", "checkbox"):
            if kind == TEXT:
                raise _Unsupported("a choice on a text field")
            head = tag.start() + len("<input")
            pieces += [*_split_marks(html[at:head]), ("check", name, attributes.get("value", ""))]
            at = head
        elif tag.group(1) == "input" and kind == TEXT:
            value = re.search(r'\svalue=""', tag.group())
            if value is None:
                raise _Unsupported("a text box with a value")
            head = tag.start() + value.start() + len(' value="')
            pieces += [*_split_marks(html[at:head]), ("text", name)]
            at = head
        elif tag.group(1) == "textarea" and kind == TEXT:
            head = tag.end() + len("\r\n")
            if not html.startswith("\r\n</textarea>", tag.end()):
                raise _Unsupported("a text area with words")
            pieces += [*_split_marks(html[at:head]), ("text", name)]
            at = head
        else:
            raise _Unsupported(f"an input for {name}")
    pieces += _split_marks(html[at:])
    return tuple(pieces)


def _csrf_mark() -> str:
    return CSRF_MARK


def _build(section, rows: int, screen: int, context: dict) -> Skeleton | None:
    form = section_form_class(section, rows, screen)(formdata=None, data={})
    try:
        fields = _fields_of(form)
        html = render_template(
            STEP_TEMPLATE, form=form, idle_seconds=IDLE_MARK, csrf_token=_csrf_mark, **context
        )
        return Skeleton(_parse(html, fields), fields)
    except _Unsupported:
        return None


# --- filling in one request's values ---------------------------------------------------


def _one(value) -> set:
    return {str(value) if value is not None else None}  # str() of stored JSON never fails


def _many(value) -> set:
    try:
        return {str(v) for v in value}
    except (ValueError, TypeError):
        return set()


def _text(value, info: _Field) -> str:
    data = value
    with contextlib.suppress(ValueError):  # as WTForms runs a field's filters
        for keep in info.filters:
            data = keep(data)
    return str(escape(str(data) if data is not None else ""))


_MISSING = object()


def _values(fields: dict, data: dict) -> tuple[dict[str, set], dict[str, str]]:
    """What WTForms would tick and write for a form filled with ``data=``."""
    ticked: dict[str, set] = {}
    texts: dict[str, str] = {}

    def put(name: str, info: _Field, value) -> None:
        if info.kind == TEXT:
            texts[name] = _text(None if value is _MISSING else value, info)
        elif value is not _MISSING:
            ticked[name] = _one(value) if info.kind == ONE else _many(value)

    for name, info in fields.items():
        value = data.get(name, _MISSING)
        if isinstance(info, _Rows):
            rows = [] if value is _MISSING or not value else value
            if (
                not isinstance(rows, list | tuple)
                or len(rows) > info.entries
                or not all(isinstance(row, dict) and "meta" not in row for row in rows)
            ):
                raise _Unsupported("rows")
            for index in range(info.entries):
                row = rows[index] if index < len(rows) else {}
                for short, sub in info.fields.items():
                    put(f"{name}-{index}-{short}", sub, row.get(short, _MISSING))
        else:
            put(name, info, value)
    return ticked, texts


def _fill(skeleton: Skeleton, data: dict, token: str, idle_seconds: int) -> str:
    ticked, texts = _values(skeleton.fields, data)
    out = []
    for piece in skeleton.pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif piece[0] == "check":
            out.append(" checked" if piece[2] in ticked.get(piece[1], ()) else "")
        elif piece[0] == "text":
            out.append(texts.get(piece[1], ""))
        elif piece[0] == "csrf":
            out.append(str(escape(token)))
        else:
            out.append(str(idle_seconds))
    return "".join(out)


def _cache() -> OrderedDict:
    return current_app.extensions.setdefault(SKELETON_CACHE, OrderedDict())


def _settings_key() -> str:
    """The clinic's settings as one key (they change what a page says), once a request."""
    settings = clinic_settings()
    kept = g.get("settings_key")
    if kept is None or kept[0] is not settings:
        kept = g.settings_key = (settings, repr(sorted(settings.items())))
    return kept[1]


def render_step_page(
    section,
    *,
    number: int,
    total: int,
    screen: int,
    returning: bool,
    rows: int,
    data: dict,
    token: str,
    idle_seconds: int,
    hidden: frozenset[str] = frozenset(),
    opens_at: datetime | None = None,
    back_to_review: bool = False,
) -> str | None:
    """The GET page of one screen filled with ``data`` (the form data of this visit's
    stored answers), or None when it must be rendered in full. ``hidden``: the items
    this visit's answers leave unasked. ``opens_at``: when the clinic next opens, while
    it is outside its staffed hours (the safety question's help says so)."""
    from flask_babel import get_locale

    from patientapp.i18n import offered_languages

    items = screen_items(section, screen, hidden)
    where = whereabouts(section, screen, hidden)
    key = (
        str(get_locale()),
        section,
        number,
        total,
        screen,
        (where.position, where.count),  # the progress, which this visit's branching moves
        # What this visit's answers decide about the page: which questions it asks and
        # which screen is the last (its button). One visit's branching never shows in
        # another's page: a visit asked otherwise gets a skeleton of its own.
        tuple(item.id for item in items),
        back_to_review,  # from the review, whether Next goes back there
        returning,
        rows,
        opens_at,  # outside staffed hours the safety question's help names the opening
        tuple(offered_languages()),
        _settings_key(),
        request.script_root,
        request.path,
    )
    cache = _cache()  # shared by the server's threads: each step below stands alone
    skeleton = cache.get(key, _MISSING)
    if skeleton is _MISSING:
        context = {
            "section": section,
            "number": number,
            "total": total,
            "where": where,
            "returning": returning,
            "from_draft": False,
            "items": items,
            "screen": screen,
            "back_to_review": back_to_review,
            "opens_at": opens_at,
        }
        skeleton = _build(section, rows, screen, context)
        cache[key] = skeleton
        while len(cache) > SKELETON_CACHE_SIZE:
            with contextlib.suppress(KeyError):  # another thread emptied it first
                cache.popitem(last=False)
    else:
        with contextlib.suppress(KeyError):
            cache.move_to_end(key)
    if skeleton is None:
        return None
    try:
        return _fill(skeleton, data, token, idle_seconds)
    except _Unsupported:
        return None
