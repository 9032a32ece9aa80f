"""Standard measures (PHQ-9, GAD-7): instruments read from data, and their scores.

An instrument is a TOML file in ``instruments/`` (the format is described in
``phq9.toml``): its items in the published wording, the answer scale with each answer's
score, the scoring rule with where it is published, the bands, the LOINC codes, and the
official text of each language it may be asked in with that text's source. Adding a
third instrument is a new file, named in ``definition.toml``'s ``[measures]``.

The questionnaire (``model.parse``) asks each named instrument as a section of its own
just before the safety question. Its items are ordinary single-choice items, with the
same screens, drafts, review and "In person" hold as every other, except for their words:
those come only from the official text (``wording``), never from the translation
catalogs. An item may be asked as one of the questionnaire's own items (``asked_as``):
PHQ-9's item 9 is the safety question S1, asked once.

Scores (``Instrument.score``) exist only for instruments, never for the reflection.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

INSTRUMENTS_DIR = Path(__file__).with_name("instruments")
LOINC = "http://loinc.org"


class InstrumentError(ValueError):
    """An instrument definition file is not valid."""


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str  # a message id (context "severity"): the psychiatrist's word, translated


@dataclass(frozen=True)
class ScaleAnswer:
    id: str  # the stored choice id
    score: int
    code: str  # its LOINC answer code


@dataclass(frozen=True)
class Wording:
    """An instrument's official text in one language, and where it was published."""

    source: str
    stem: str
    items: tuple[str, ...]  # in the instrument's item order
    scale: tuple[str, ...]  # in the scale's order


@dataclass(frozen=True)
class InstrumentItem:
    number: int  # 1-based, the published numbering
    id: str  # the item id its answer is stored under
    code: str  # LOINC
    asked_as: bool = False  # asked as one of the questionnaire's own items (S1)


@dataclass(frozen=True)
class Coded:
    code: str
    display: str


@dataclass(frozen=True)
class Score:
    """One instrument's result for one visit."""

    instrument: Instrument
    total: int | None  # None: no total (see missing, held)
    band: Band | None
    answered: int
    skipped: tuple[str, ...] = ()  # item ids seen and not answered
    held: tuple[str, ...] = ()  # item ids kept for in person (their value is not used)
    not_reached: tuple[str, ...] = ()
    prorated: bool = False


@dataclass(frozen=True)
class Instrument:
    id: str
    name: str  # "PHQ-9": a name, the same in every language
    title: str  # the patient's section heading: a message id, translated
    code: Coded  # the LOINC panel
    total_code: Coded  # the LOINC total score
    copyright: str
    rule: str  # the published scoring rule this follows
    prorate_max_missing: int  # 0: no prorating
    prorate_source: str
    bands: tuple[Band, ...]
    scale: tuple[ScaleAnswer, ...]
    items: tuple[InstrumentItem, ...]
    wordings: dict[str, Wording] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def source_language(self) -> str:
        return "en"

    @property
    def maximum(self) -> int:
        return max(a.score for a in self.scale) * len(self.items)

    def offered_in(self, language: str) -> bool:
        """Whether the instrument may be asked in this language: only with an official
        text whose source the definition names."""
        return language in self.wordings

    def wording(self, language: str) -> Wording:
        """The official text in ``language``, or in the original language when there is
        none (a patient who began in a language it is offered in, then switched)."""
        return self.wordings.get(language) or self.wordings[self.source_language]

    def item_text(self, item_id: str, language: str) -> str:
        words = self.wording(language)
        for n, item in enumerate(self.items):
            if item.id == item_id:
                return words.items[n]
        raise KeyError(item_id)

    def answer_text(self, choice_id: str, language: str) -> str:
        words = self.wording(language)
        for n, answer in enumerate(self.scale):
            if answer.id == choice_id:
                return words.scale[n]
        raise KeyError(choice_id)

    def band_of(self, total: int) -> Band | None:
        return next((b for b in self.bands if b.low <= total <= b.high), None)

    def score(self, answers: Mapping, held=frozenset(), reached=None) -> Score:
        """The total and band of these answers. A held item's value is never used; a
        skipped, held or unreached item leaves no total unless the published rule
        allows prorating so many (``prorate``): then the total is the mean of the
        answered items times the number of items, rounded half up."""
        scores = {a.id: a.score for a in self.scale}
        values, skipped, kept, unreached = [], [], [], []
        for item in self.items:
            if item.id in held:
                kept.append(item.id)
            elif answers.get(item.id) in scores:
                values.append(scores[answers[item.id]])
            elif reached is not None and item.id not in reached:
                unreached.append(item.id)
            else:
                skipped.append(item.id)
        missing = len(self.items) - len(values)
        total, prorated = None, False
        if values and missing == 0:
            total = sum(values)
        elif values and missing <= self.prorate_max_missing:
            total = int(sum(values) * len(self.items) / len(values) + 0.5)
            prorated = True
        return Score(
            instrument=self,
            total=total,
            band=self.band_of(total) if total is not None else None,
            answered=len(values),
            skipped=tuple(skipped),
            held=tuple(kept),
            not_reached=tuple(unreached),
            prorated=prorated,
        )


def _need(raw: Mapping, key: str, where: str, kind=str):
    if key not in raw:
        raise InstrumentError(f"{where}: missing '{key}'")
    value = raw[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise InstrumentError(f"{where}: '{key}' must be {kind.__name__}")
    return value


def _coded(raw, where: str) -> Coded:
    if not isinstance(raw, dict):
        raise InstrumentError(f"{where}: expected {{ code = ..., display = ... }}")
    return Coded(_need(raw, "code", where), _need(raw, "display", where))


def _texts(raw, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
        raise InstrumentError(f"{where}: expected a list of texts")
    return tuple(raw)


KEYS = {"id", "name", "title", "code", "total", "copyright", "scoring", "scale", "items"}
KEYS |= {"languages"}


def parse(data: Mapping, where: str = "instrument") -> Instrument:
    """Build and check one instrument from its parsed TOML."""
    unknown = set(data) - KEYS
    if unknown:
        raise InstrumentError(f"{where}: unknown keys {sorted(unknown)}")
    ident = _need(data, "id", where)
    where = f"instrument {ident}"
    scoring = _need(data, "scoring", where, dict)
    prorate = scoring.get("prorate", False)
    if prorate is False:
        max_missing, prorate_source = 0, ""
    elif isinstance(prorate, dict):
        max_missing = _need(prorate, "max_missing", f"{where} prorate", int)
        prorate_source = _need(prorate, "source", f"{where} prorate")
        if max_missing < 1 or not prorate_source.strip():
            raise InstrumentError(
                f"{where}: prorate needs max_missing >= 1 and the published rule's source"
            )
    else:
        raise InstrumentError(f"{where}: prorate is false or {{ max_missing, source }}")
    scale = tuple(
        ScaleAnswer(
            _need(a, "id", f"{where} scale"),
            _need(a, "score", f"{where} scale", int),
            _need(a, "code", f"{where} scale"),
        )
        for a in _need(data, "scale", where, list)
    )
    if len(scale) < 2 or len({a.id for a in scale}) != len(scale):
        raise InstrumentError(f"{where}: the scale needs two or more answers, each its own id")
    items = []
    for number, raw in enumerate(_need(data, "items", where, list), start=1):
        at = f"{where} item {number}"
        asked_as = raw.get("asked_as")
        if asked_as is not None and "id" in raw:
            raise InstrumentError(f"{at}: either an id of its own or asked_as, not both")
        item_id = asked_as if asked_as is not None else _need(raw, "id", at)
        if not isinstance(item_id, str) or not item_id:
            raise InstrumentError(f"{at}: the id must be text")
        items.append(InstrumentItem(number, item_id, _need(raw, "code", at), asked_as is not None))
    if not items or len({i.id for i in items}) != len(items):
        raise InstrumentError(f"{where}: items must be listed, each with its own id")
    bands = tuple(
        Band(
            _need(b, "low", f"{where} band", int),
            _need(b, "high", f"{where} band", int),
            _need(b, "label", f"{where} band"),
        )
        for b in _need(scoring, "bands", where, list)
    )
    maximum = max(a.score for a in scale) * len(items)
    minimum = min(a.score for a in scale) * len(items)
    expected = minimum
    for band in bands:  # bands cover every possible total once, in order
        if band.low != expected or band.high < band.low:
            raise InstrumentError(
                f"{where}: bands must run from {minimum} to {maximum} without gaps"
            )
        expected = band.high + 1
    if expected != maximum + 1:
        raise InstrumentError(f"{where}: bands must run from {minimum} to {maximum} without gaps")
    wordings = {}
    for language, raw in _need(data, "languages", where, dict).items():
        at = f"{where} language {language}"
        wording = Wording(
            source=_need(raw, "source", at),
            stem=_need(raw, "stem", at),
            items=_texts(_need(raw, "items", at, list), f"{at} items"),
            scale=_texts(_need(raw, "scale", at, list), f"{at} scale"),
        )
        if not wording.source.strip():
            raise InstrumentError(f"{at}: name the official text's source")
        if len(wording.items) != len(items) or len(wording.scale) != len(scale):
            raise InstrumentError(
                f"{at}: {len(items)} item texts and {len(scale)} answer texts expected"
            )
        wordings[language] = wording
    if "en" not in wordings:
        raise InstrumentError(f"{where}: the original English text is needed")
    return Instrument(
        id=ident,
        name=_need(data, "name", where),
        title=_need(data, "title", where),
        code=_coded(_need(data, "code", where, dict), f"{where} code"),
        total_code=_coded(_need(data, "total", where, dict), f"{where} total"),
        copyright=_need(data, "copyright", where),
        rule=_need(scoring, "rule", where),
        prorate_max_missing=max_missing,
        prorate_source=prorate_source,
        bands=bands,
        scale=scale,
        items=tuple(items),
        wordings=wordings,
    )


def load(name: str, directory: Path = INSTRUMENTS_DIR) -> Instrument:
    """Read and check ``directory/name.toml``."""
    path = Path(directory) / f"{name}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InstrumentError(f"cannot read instrument {path}: {exc}") from exc
    instrument = parse(data, str(path))
    if instrument.id != name:
        raise InstrumentError(f"{path}: its id is '{instrument.id}', not '{name}'")
    return instrument
