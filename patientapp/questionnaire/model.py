"""The questionnaire definition: loaded from TOML into small frozen dataclasses.

The definition is data (``questionnaire.toml``); this module only reads and checks it.
Labels stay in English here: they are message ids that the views translate.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from patientapp.questionnaire import instruments as instrument_files
from patientapp.questionnaire.instruments import Instrument, InstrumentError
from patientapp.questionnaire.types import TYPES, ItemType

DEFINITION_PATH = Path(__file__).with_name("definition.toml")


class DefinitionError(ValueError):
    """The questionnaire definition file is not valid."""


@dataclass(frozen=True)
class Choice:
    id: str
    label: str
    exclusive: bool = False
    # A translation context (msgctxt) for a label whose English word means something
    # else elsewhere: M1 "Mixed" (mixed results) is not M2 "Mixed" (mixed feelings).
    context: str = ""
    # The items this answer leaves unasked, later in the questionnaire: M0 "no" (not
    # taking medicine) hides the medicine questions M1-M5 and P1.
    hides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item:
    id: str
    type: str
    prompt: str
    short: str
    section_id: str
    practices: tuple[int, ...] = ()
    help: str = ""
    # The help while the clinic is outside its staffed hours (Settings), with the crisis
    # text under it; %(day)s and %(time)s name when the clinic next opens.
    help_closed: str = ""
    intro: str = ""
    choices: tuple[Choice, ...] = ()
    max: int | None = None
    min: int | None = None
    max_length: int | None = None
    max_rows: int | None = None
    min_label: str = ""
    max_label: str = ""
    row_label: str = ""
    choice_label: str = ""
    text_prompt: str = ""
    since: str = ""  # the questionnaire version that first asked this item
    # A standard measure's item (PHQ-9, GAD-7): the instrument's id and the item's LOINC
    # code. Its words come from the instrument's official text (``wording``), never from
    # the translation catalogs.
    instrument: str = ""
    code: str = ""
    measure: Instrument | None = field(default=None, compare=False, repr=False)

    def choice(self, choice_id: str) -> Choice | None:
        return next((c for c in self.choices if c.id == choice_id), None)

    @property
    def item_type(self) -> ItemType:
        """What this item's type means: its fields, stored answer, display and macro."""
        return TYPES[self.type]

    @property
    def choice_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.choices)

    @property
    def decides(self) -> bool:
        """Whether an answer to this item can leave later items unasked."""
        return any(c.hides for c in self.choices)


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    items: tuple[Item, ...]
    own_screen: bool = False  # a screen by itself, never shared (the safety question)

    def __hash__(self) -> int:
        # By id alone: the screens and forms of a section are cached by it, and hashing
        # every item's every field on each lookup cost more than the lookup saved.
        return hash(self.id)


# In a summary block's items: the stance row (see SummaryLayout.stance).
STANCE = "stance"


@dataclass(frozen=True)
class StanceRow:
    """The summary logic's stance, one row built from two items' answers."""

    need: str  # the need scale (M4): placed by the stance row, shown alone without one
    worries: str  # the worries (M5): named by the stance, placed in a row of its own


@dataclass(frozen=True)
class SummaryBlock:
    title: str  # a message id, translated when shown
    items: tuple[str, ...]  # item ids in row order; STANCE for the stance row


@dataclass(frozen=True)
class SummaryLayout:
    """Where each item shows on the one-page summary: questionnaire.toml's [summary].

    Every item is placed exactly once (checked at load): as the safety banner's answer,
    the agenda line, a Today row, or a row of a block (the stance row placing its need).
    """

    safety: str = ""
    agenda: str = ""
    today: tuple[str, ...] = ()
    stance: StanceRow | None = None
    blocks: tuple[SummaryBlock, ...] = ()

    def placements(self) -> list[tuple[str, str]]:
        """(item id, where it shows) for every place, top of the page to bottom."""
        places = [(self.safety, "safety"), (self.agenda, "agenda")]
        places = [(item_id, where) for item_id, where in places if item_id]
        places += [(item_id, "today") for item_id in self.today]
        for block in self.blocks:
            for entry in block.items:
                if entry == STANCE and self.stance is not None:
                    places.append((self.stance.need, f"block '{block.title}' (the stance row)"))
                else:
                    places.append((entry, f"block '{block.title}'"))
        return places


@dataclass(frozen=True)
class Questionnaire:
    version: str
    sections: tuple[Section, ...]
    items: dict[str, Item] = field(default_factory=dict)
    layout: SummaryLayout = field(default_factory=SummaryLayout)
    # The standard measures a visit may be asked (PHQ-9, GAD-7), in the order they are
    # asked: each is a section of this questionnaire, asked only when the visit offers it.
    instruments: tuple[Instrument, ...] = ()

    def instrument(self, instrument_id: str) -> Instrument | None:
        return next((i for i in self.instruments if i.id == instrument_id), None)

    def scored_by(self, item_id: str) -> list[Instrument]:
        """The instruments that count this item's answer (S1 counts for PHQ-9)."""
        return [i for i in self.instruments if any(it.id == item_id for it in i.items)]

    @property
    def item_ids(self) -> list[str]:
        return [item.id for s in self.sections for item in s.items]

    def asked_in(self, version: str | None) -> set[str]:
        """Ids of the items a visit answered under ``version`` was asked.

        Items added later (``since`` newer than ``version``) were never shown to that
        patient: they are neither skipped nor unreached. An unknown or empty version
        (a visit never started) reads as this version.
        """
        key = _version_key(version or "")
        if key is None:
            return set(self.items)
        return {i for i, item in self.items.items() if _version_key(item.since or "0") <= key}

    def not_asked(self, answers: Mapping, measures=()) -> dict[str, str]:
        """The items these answers leave unasked, each with the id of the item whose
        answer hid it: M0 "no" hides M1-M5 and P1 (their choice's ``hides``). The items
        of an instrument the visit does not offer (``measures``: the ids it does, see
        ``Visit.offered``) are unasked too, each with the instrument's id.

        Unasked items are not shown; answers given before they became unasked are kept
        while the visit is open (a "No" by mistake loses nothing) and removed when it is
        sent. The summary reads them "not asked", never skipped or not reached. A skipped
        deciding item hides nothing.
        """
        hidden: dict[str, str] = {}
        for instrument in self.instruments:
            if instrument.id not in measures:
                for member in instrument.items:
                    if not member.asked_as:
                        hidden[member.id] = instrument.id
        for item in self.items.values():
            value = answers.get(item.id) if item.decides else None
            choice = item.choice(value) if isinstance(value, str) else None
            if choice is not None:
                hidden.update(dict.fromkeys(choice.hides, item.id))
        return hidden


def _version_key(version: str) -> tuple[int, ...] | None:
    """ "2026.2" -> (2026, 2); None for text that is not a dotted number."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return None


def _require(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise DefinitionError(f"{where}: missing '{key}'")
    return mapping[key]


CLOSED_HELP_NAMES = {"day": "", "time": ""}  # the placeholders a help_closed may use


def _check_help_closed(text, where: str) -> None:
    """A help_closed is text that the page can fill in with the next opening's day and
    time: any other placeholder, or a stray "%", would break the S1 screen."""
    if not isinstance(text, str):
        raise DefinitionError(f"{where}: help_closed: expected text")
    try:
        text % CLOSED_HELP_NAMES
    except (KeyError, ValueError, TypeError) as exc:
        raise DefinitionError(
            f"{where}: help_closed may name only %(day)s and %(time)s (not {exc})"
        ) from exc


def _parse_item(raw: dict, section_id: str) -> Item:
    item_id = _require(raw, "id", f"section {section_id}")
    where = f"item {item_id}"
    kind = _require(raw, "type", where)
    item_type = TYPES.get(kind)
    if item_type is None:
        raise DefinitionError(f"{where}: unknown type '{kind}'")
    choices = tuple(
        Choice(
            _require(c, "id", where),
            _require(c, "label", where),
            bool(c.get("exclusive")),
            str(c.get("context", "")),
            tuple(c.get("hides", ())),
        )
        for c in raw.get("choices", ())
    )
    if any(c.hides for c in choices) and kind != "single":
        raise DefinitionError(f"{where}: only a single choice can leave items unasked")
    ids = [c.id for c in choices]
    if len(ids) != len(set(ids)):
        raise DefinitionError(f"{where}: duplicate choice id")
    problem = item_type.definition_problem(raw)
    if problem:
        raise DefinitionError(f"{where}: {problem}")
    unknown = set(raw) - item_type.allowed_keys
    if unknown:
        raise DefinitionError(f"{where}: unknown keys {sorted(unknown)}")
    _check_help_closed(raw.get("help_closed", ""), where)
    simple = {k: v for k, v in raw.items() if k not in {"choices", "practices"}}
    return Item(
        **simple,
        section_id=section_id,
        choices=choices,
        practices=tuple(raw.get("practices", ())),
    )


def _check_hides(sections: list[Section]) -> None:
    """An answer hides only later items, and never a whole section: the decision is
    saved before the hidden items would show, and every step keeps its number."""
    order = [item.id for section in sections for item in section.items]
    for section in sections:
        for item in section.items:
            for choice in item.choices:
                for hidden in choice.hides:
                    if hidden not in order:
                        raise DefinitionError(f"item {item.id}: hides unknown item '{hidden}'")
                    if order.index(hidden) <= order.index(item.id):
                        raise DefinitionError(
                            f"item {item.id}: can hide only later items, not '{hidden}'"
                        )
                for other in sections:
                    if other.items and {i.id for i in other.items} <= set(choice.hides):
                        raise DefinitionError(
                            f"item {item.id}: would hide all of section '{other.id}'"
                        )


LAYOUT_KEYS = frozenset({"safety", "agenda", "today", "stance", "blocks"})


def _ids(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DefinitionError(f"{where}: expected a list of item ids")
    return tuple(value)


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise DefinitionError(f"{where}: expected text")
    return value


def _parse_layout(data: dict) -> SummaryLayout:
    raw = _require(data, "summary", "definition")
    if not isinstance(raw, dict):
        raise DefinitionError("[summary]: expected a table")
    unknown = set(raw) - LAYOUT_KEYS
    if unknown:
        raise DefinitionError(f"[summary]: unknown keys {sorted(unknown)}")
    stance = None
    if "stance" in raw:
        table = raw["stance"]
        if not isinstance(table, dict) or set(table) != {"need", "worries"}:
            raise DefinitionError("[summary] stance: expected { need = ID, worries = ID }")
        stance = StanceRow(
            _text(table["need"], "[summary] stance need"),
            _text(table["worries"], "[summary] stance worries"),
        )
    blocks = []
    for block in raw.get("blocks", ()):
        if not isinstance(block, dict):
            raise DefinitionError("[summary] blocks: expected [[summary.blocks]] tables")
        title = _text(_require(block, "title", "[summary] block"), "[summary] block title")
        where = f"[summary] block '{title}'"
        unknown = set(block) - {"title", "items"}
        if unknown:
            raise DefinitionError(f"{where}: unknown keys {sorted(unknown)}")
        items = _ids(_require(block, "items", where), where)
        if STANCE in items and stance is None:
            raise DefinitionError(
                f"{where}: places the stance row, but [summary] has no "
                "stance = { need = ID, worries = ID }"
            )
        blocks.append(SummaryBlock(title, items))
    return SummaryLayout(
        safety=_text(raw.get("safety", ""), "[summary] safety"),
        agenda=_text(raw.get("agenda", ""), "[summary] agenda"),
        today=_ids(raw.get("today", []), "[summary] today"),
        stance=stance,
        blocks=tuple(blocks),
    )


def _check_layout(layout: SummaryLayout, item_ids: list[str]) -> None:
    """Every item shows on the summary exactly once, and only items are placed: an item
    placed nowhere would be stored and exported but never read by the psychiatrist."""
    known = set(item_ids)
    placed: dict[str, str] = {}
    for item_id, where in layout.placements():
        if item_id not in known:
            raise DefinitionError(f"[summary] {where}: unknown item '{item_id}'")
        if item_id in placed:
            raise DefinitionError(
                f"item {item_id}: placed twice on the summary, in [summary] "
                f"{placed[item_id]} and {where}"
            )
        placed[item_id] = where
    if layout.stance is not None and layout.stance.worries not in known:
        raise DefinitionError(f"[summary] stance: unknown item '{layout.stance.worries}'")
    for item_id in item_ids:
        if item_id not in placed:
            raise DefinitionError(
                f"item {item_id}: placed nowhere on the summary; add it to [summary] "
                "(a block's items, today, agenda or safety)"
            )


MEASURE_KEYS = frozenset({"instruments", "before"})


def _measure_sections(data: dict, directory: Path) -> tuple[tuple[Instrument, ...], str]:
    """The instruments named in [measures], and the section they are asked before."""
    raw = data.get("measures")
    if raw is None:
        return (), ""
    if not isinstance(raw, dict) or set(raw) - MEASURE_KEYS:
        raise DefinitionError("[measures]: expected instruments = [...] and before = SECTION")
    names = _ids(_require(raw, "instruments", "[measures]"), "[measures] instruments")
    try:
        found = tuple(instrument_files.load(name, directory) for name in names)
    except InstrumentError as exc:
        raise DefinitionError(str(exc)) from exc
    return found, _text(_require(raw, "before", "[measures]"), "[measures] before")


def _instrument_section(instrument: Instrument, version: str) -> Section:
    """An instrument as a section: one single-choice item per published item, in the
    original English (the message ids of nothing: ``wording`` gives the words)."""
    english = instrument.wordings["en"]
    labels = {answer.id: english.scale[n] for n, answer in enumerate(instrument.scale)}
    items = []
    for n, member in enumerate(instrument.items):
        if member.asked_as:
            continue
        items.append(
            Item(
                id=member.id,
                type="single",
                prompt=english.items[n],
                # Names only where a topic is named (held for in person): "PHQ-9 #3".
                short=f"{instrument.name} #{member.number}",
                section_id=instrument.id,
                intro=english.stem if not items else "",
                choices=tuple(Choice(a, text) for a, text in labels.items()),
                since=version,
                instrument=instrument.id,
                code=member.code,
                measure=instrument,
            )
        )
    return Section(instrument.id, instrument.title, tuple(items))


def _check_asked_as(instrument: Instrument, items: dict[str, Item]) -> None:
    """An item asked as one of our own (PHQ-9 item 9 as S1) is that item with the same
    answers, so one answer counts for both."""
    for member in instrument.items:
        if not member.asked_as:
            continue
        own = items.get(member.id)
        where = f"instrument {instrument.id} item {member.number}"
        if own is None or own.instrument:
            raise DefinitionError(f"{where}: asked as '{member.id}', which is no item")
        if own.type != "single" or set(own.choice_ids) != {a.id for a in instrument.scale}:
            raise DefinitionError(
                f"{where}: asked as '{member.id}', whose answers are not the scale's"
            )


def parse(data: dict, directory: Path = instrument_files.INSTRUMENTS_DIR) -> Questionnaire:
    """Build and validate a questionnaire from parsed TOML data; the instruments its
    [measures] names are read from ``directory``."""
    version = _require(data, "version", "definition")
    sections = []
    for raw in _require(data, "sections", "definition"):
        section_id = _require(raw, "id", "section")
        items = tuple(_parse_item(i, section_id) for i in raw.get("items", ()))
        own = raw.get("own_screen", False)
        if not isinstance(own, bool):
            raise DefinitionError(f"section '{section_id}': own_screen must be true or false")
        sections.append(Section(section_id, _require(raw, "title", section_id), items, own))
    own_items = [item.id for section in sections for item in section.items]
    instruments, before = _measure_sections(data, directory)
    if instruments:
        at = next((n for n, s in enumerate(sections) if s.id == before), None)
        if at is None:
            raise DefinitionError(f"[measures] before: unknown section '{before}'")
        sections[at:at] = [_instrument_section(i, str(version)) for i in instruments]
    seen: dict[str, Item] = {}
    for section in sections:
        for item in section.items:
            if item.id in seen:
                raise DefinitionError(f"duplicate item id '{item.id}'")
            seen[item.id] = item
    section_ids = [s.id for s in sections]
    if len(section_ids) != len(set(section_ids)):
        raise DefinitionError("duplicate section id")
    _check_hides(sections)
    for instrument in instruments:
        _check_asked_as(instrument, seen)
    layout = _parse_layout(data)
    # A measure's items show on the summary's Measures line, as its score.
    _check_layout(layout, own_items)
    return Questionnaire(str(version), tuple(sections), seen, layout, instruments)


def load(
    path: Path | str = DEFINITION_PATH, instruments: Path = instrument_files.INSTRUMENTS_DIR
) -> Questionnaire:
    """Read and validate a definition file; raises DefinitionError with a clear reason.
    The instruments its [measures] names are read from ``instruments``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DefinitionError(f"cannot read questionnaire {path}: {exc}") from exc
    return parse(data, instruments)


@lru_cache(maxsize=1)
def default() -> Questionnaire:
    """The shipped questionnaire, loaded once."""
    return load(DEFINITION_PATH)
