"""Translation tooling: extract, update, init, compile and check the message catalogs.

Developer commands, run from a source checkout (they need babel.cfg beside the package):

    flask --app app i18n extract        # translations/messages.pot
    flask --app app i18n update         # extract, then merge into every catalog
    flask --app app i18n init es        # new catalog translations/es/LC_MESSAGES/messages.po
    flask --app app i18n compile        # messages.mo beside every messages.po
    flask --app app i18n check          # fail on anything missing, untranslated or broken

extract, update, init and compile are Babel's own pybabel commands, run in-process (the
TOML questionnaire extractor below is registered in babel.cfg); check is this project's,
stricter than anything upstream. English is the source language, so it has no catalog.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gettext
import json
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import click
from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog, Message
from babel.messages.frontend import (
    BaseError,
    CommandMixin,
    CompileCatalog,
    ExtractMessages,
    InitCatalog,
    UpdateCatalog,
)
from babel.messages.pofile import read_po

from patientapp.config import VERSION
from patientapp.i18n import DOMAIN, LANGUAGES, SOURCE_LANGUAGE

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
COMMENT_TAGS = ("Translators:",)

# --- the questionnaire extractor --------------------------------------------------------

SECTION_KEYS = ("title",)
ITEM_KEYS = (
    "prompt",
    "short",
    "help",
    "help_closed",
    "intro",
    "min_label",
    "max_label",
    "row_label",
    "choice_label",
    "text_prompt",
)
CHOICE_KEYS = ("label",)


def _id_pattern(ident: str) -> re.Pattern:
    """`id = "M3"` on its own line (items, sections) or in an inline table (choices)."""
    return re.compile(rf'(?:^\s*|\{{\s*)id\s*=\s*"{re.escape(ident)}"', re.MULTILINE)


class _LineFinder:
    """Line numbers of strings in the TOML text, searched after the id that owns them,
    so a label used twice ("Mixed") gets the line under the right item."""

    def __init__(self, text: str):
        self.text = text

    def after_id(self, ident: str, start: int) -> int:
        match = _id_pattern(ident).search(self.text, start)
        return match.start() if match else start

    def line_of(self, value: str, start: int) -> int:
        # A string with TOML escapes is not found verbatim; its owner's line is close.
        found = self.text.find(value, start)
        return self.text.count("\n", 0, found if found >= 0 else start) + 1


def _strings(raw: dict, keys: tuple[str, ...]):
    """(key, value) for each translatable, non-empty string, in file order."""
    return [(k, v) for k, v in raw.items() if k in keys and isinstance(v, str) and v]


def _item_messages(item: dict, finder: _LineFinder, at: int):
    """Messages of one item whose `id = ...` line starts at offset `at`."""
    item_id = str(item.get("id", "?"))
    for key, value in _strings(item, ITEM_KEYS):
        yield finder.line_of(value, at), None, value, [f"{item_id} {key}"]
    for choice in item.get("choices", ()):
        choice_at = finder.after_id(str(choice.get("id", "")), at)
        context = choice.get("context")
        for _key, value in _strings(choice, CHOICE_KEYS):
            # A choice with a context is extracted as pgettext(context, label).
            yield (
                finder.line_of(value, choice_at),
                "pgettext" if isinstance(context, str) and context else None,
                (context, value) if isinstance(context, str) and context else value,
                [f"{item_id} choice {choice.get('id', '?')}"],
            )


def extract_questionnaire(fileobj, keywords, comment_tags, options):
    """Babel extraction method for questionnaire.toml.

    Yields ``(lineno, None, message, [comment])`` for each section title, each item's
    prompt, short, help, help_closed, intro, min_label, max_label, row_label,
    choice_label and text_prompt, and each choice label. The comment names the owner ("M3
    choice safety_net", "M4 prompt", "section medicines title") so translators see where
    a string is shown.
    """
    text = fileobj.read()
    if isinstance(text, bytes):
        text = text.decode(options.get("encoding", "utf-8"))
    finder = _LineFinder(text)
    position = 0
    for section in tomllib.loads(text).get("sections", ()):
        section_id = str(section.get("id", "?"))
        position = finder.after_id(section_id, position)
        for key, value in _strings(section, SECTION_KEYS):
            yield finder.line_of(value, position), None, value, [f"section {section_id} {key}"]
        for item in section.get("items", ()):
            position = finder.after_id(str(item.get("id", "?")), position)
            yield from _item_messages(item, finder, position)


def extract_instrument(fileobj, keywords, comment_tags, options):
    """Babel extraction method for a standard measure (questionnaire/instruments/*.toml).

    Only our own words are extracted: the patient's section heading (``title``) and each
    band's label, in the context "severity" (the psychiatrist reads "moderate"). The
    instrument's questions and answers are never extracted: they are shown only in an
    official translation named in the file, never translated here.
    """
    text = fileobj.read()
    if isinstance(text, bytes):
        text = text.decode(options.get("encoding", "utf-8"))
    finder = _LineFinder(text)
    data = tomllib.loads(text)
    name = str(data.get("id", "?"))
    if isinstance(data.get("title"), str) and data["title"]:
        yield finder.line_of(data["title"], 0), None, data["title"], [f"{name} section title"]
    for band in data.get("scoring", {}).get("bands", ()):
        label = band.get("label")
        if isinstance(label, str) and label:
            where = f"{name} band {band.get('low', '?')}-{band.get('high', '?')}"
            yield finder.line_of(label, 0), "pgettext", ("severity", label), [where]


# --- extracting, initialising, updating: Babel's own pybabel commands, in-process ------


def project_root() -> Path:
    """The folder holding babel.cfg: the parent of the patientapp package."""
    if not (PROJECT_ROOT / "babel.cfg").is_file():
        raise click.ClickException(
            f"No babel.cfg in {PROJECT_ROOT}: the i18n commands work in a source checkout."
        )
    return PROJECT_ROOT


def default_translations_dir() -> Path:
    """translations/ in the source tree (where the catalogs are edited)."""
    return project_root() / "translations"


def template_path(translations_dir: Path) -> Path:
    """Where the extracted template lives: translations/messages.pot."""
    return translations_dir / f"{DOMAIN}.pot"


def catalog_path(translations_dir: Path, lang: str) -> Path:
    """translations/<lang>/LC_MESSAGES/messages.po."""
    return translations_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def shipped_languages(translations_dir: Path) -> list[str]:
    """Every language with a catalog in translations_dir, sorted."""
    return sorted(p.parent.parent.name for p in translations_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def _read_catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def _pybabel(command_class: type[CommandMixin], **options):
    """Run one pybabel command with options named as in setup.cfg (output_file for
    --output-file); what it refuses becomes a ClickException."""
    command = command_class()
    for name, value in options.items():
        if not hasattr(command, name):
            raise TypeError(f"{command_class.__name__} has no option {name!r}")
        setattr(command, name, value)
    try:
        command.ensure_finalized()
        return command.run()
    except BaseError as exc:
        raise click.ClickException(str(exc)) from exc


def extract(output: Path) -> Path:
    """Extract every message babel.cfg names into the template at output, as
    `pybabel extract -F babel.cfg --sort-output --add-location=file -o output .` does."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".tmp")  # a failure never leaves half a file
    try:
        # Files are named by their path from the scanned folder, so "." from the project
        # root gives "patientapp/patient/views.py", the form babel.cfg's patterns match.
        with contextlib.chdir(project_root()):
            _pybabel(
                ExtractMessages,
                mapping_file="babel.cfg",
                input_paths=["."],
                output_file=str(partial),
                project="patientapp",
                version=VERSION,
                add_comments=list(COMMENT_TAGS),
                strip_comments=True,
                sort_output=True,
                add_location="file",  # no line numbers: they would churn on every edit
            )
        # pybabel marks a template's header fuzzy; ours never was, and init clears it.
        text = partial.read_text(encoding="utf-8")
        partial.write_text(text.replace('#, fuzzy\nmsgid ""\n', 'msgid ""\n', 1), "utf-8")
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def extract_template() -> Catalog:
    """A fresh extract of the code as an in-memory template."""
    with tempfile.TemporaryDirectory() as folder:
        return _read_catalog(extract(Path(folder) / f"{DOMAIN}.pot"))


def _new_catalog_path(translations_dir: Path, lang: str) -> Path:
    """Where lang's new catalog goes; a ClickException if it must not be created."""
    if lang == SOURCE_LANGUAGE:
        raise click.ClickException(f"'{lang}' is the source language and needs no catalog.")
    try:
        Locale.parse(lang)
    except (ValueError, UnknownLocaleError) as exc:
        raise click.ClickException(f"'{lang}' is not a language Babel knows: {exc}") from exc
    path = catalog_path(translations_dir, lang)
    if path.exists():
        raise click.ClickException(f"{path} exists; use 'update' to bring it up to date.")
    return path


def init_catalog(translations_dir: Path, lang: str) -> Path:
    """Create an empty catalog for lang from translations_dir/messages.pot (`pybabel
    init`); refuses to replace an existing one."""
    path = _new_catalog_path(translations_dir, lang)
    _pybabel(
        InitCatalog,
        input_file=str(template_path(translations_dir)),
        output_file=str(path),
        locale=lang,
    )
    return path


def update_catalogs(translations_dir: Path) -> list[Path]:
    """Merge translations_dir/messages.pot into every shipped catalog (`pybabel update`);
    returns the paths written."""
    languages = shipped_languages(translations_dir)
    if languages:
        _pybabel(
            UpdateCatalog,
            input_file=str(template_path(translations_dir)),
            output_dir=str(translations_dir),
            # A new string must arrive untranslated, not wrongly guessed.
            no_fuzzy_matching=True,
        )
    return [catalog_path(translations_dir, lang) for lang in languages]


# --- checking --------------------------------------------------------------------------

# %(name)s with any flags, width, precision and conversion; %% is a literal percent.
NAMED_PERCENT = re.compile(r"%\([^)]*\)[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z]")
# {name} or {name!r:>4}; doubled braces are literal and skipped.
BRACE = re.compile(r"(?<!\{)\{([A-Za-z_]\w*)(?:![rsa])?(?::[^{}]*)?\}(?!\})")


def placeholders(text: str) -> set[str]:
    """The named placeholders in a message: "%(n)s" and "{name}" spelled as written."""
    return set(NAMED_PERCENT.findall(text)) | {f"{{{name}}}" for name in BRACE.findall(text)}


def _quoted(message_id) -> str:
    singular = message_id[0] if isinstance(message_id, (list, tuple)) else message_id
    return json.dumps(singular, ensure_ascii=False)


def _forms(message: Message) -> tuple[str, ...]:
    return tuple(message.string) if message.pluralizable else (message.string,)


def _expected(template_message: Message) -> tuple[set[str], set[str]]:
    """(required, allowed) placeholders for every translated form. A plural's singular may
    leave out a placeholder ("One file" / "%(num)s files"), so each form may too."""
    ids = template_message.id if template_message.pluralizable else (template_message.id,)
    sets = [placeholders(text) for text in ids]
    return set.intersection(*sets), set.union(*sets)


def _format_problem(form: str, original: str) -> str | None:
    """Why form would break %-formatting at runtime (a stray "%"), or None."""
    if "%(" not in original and "%%" not in original:
        return None  # Flask-Babel only %-formats messages that take parameters.
    try:
        form % {name[2 : name.index(")")]: 0 for name in NAMED_PERCENT.findall(form)}
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc)
    return None


COUNT = re.compile(r"^%\(num\)[a-z]$")  # ngettext's count, as Flask-Babel names it


def single_number_forms(catalog: Catalog) -> frozenset[int]:
    """The plural forms the language's rule gives to exactly one number, n = 0 to 1000
    (Arabic's 0, 1 and 2; Spanish's 1). As GNU msgfmt allows, such a form may say its
    number in words and leave out the count ("دقيقتين", two minutes, not "2 دقيقتين")."""
    return _single_number_forms(catalog.plural_expr)


@functools.cache
def _single_number_forms(plural_expr: str) -> frozenset[int]:
    rule = gettext.c2py(plural_expr)
    counts = collections.Counter(rule(n) for n in range(1001))
    return frozenset(form for form, count in counts.items() if count == 1)


def _placeholder_problems(
    template_message: Message, message: Message, single: frozenset[int] = frozenset()
) -> list[str]:
    required, allowed = _expected(template_message)
    original = template_message.id[-1] if template_message.pluralizable else template_message.id
    problems = []
    forms = _forms(message)
    for index, form in enumerate(forms):
        where = f" (form {index})" if len(forms) > 1 else ""
        found = placeholders(form)
        needed = {p for p in required if not (index in single and COUNT.match(p))}
        lacking, extra = sorted(needed - found), sorted(found - allowed)
        if lacking or extra:
            detail = "; ".join(
                filter(
                    None,
                    [
                        lacking and "lacks " + ", ".join(lacking),
                        extra and "adds " + ", ".join(extra),
                    ],
                )
            )
            problems.append(f"placeholders{where}: {_quoted(message.id)}: translation {detail}")
        elif reason := _format_problem(form, original):
            problems.append(f"bad %-format{where}: {_quoted(message.id)}: {reason}")
    return problems


@dataclass
class CatalogReport:
    """The result of checking one language's catalog against the template."""

    lang: str
    total: int = 0
    translated: int = 0
    fuzzy: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def percent(self) -> int:
        # Rounded down, so "100%" is only shown when nothing at all is missing.
        return 100 * self.translated // self.total if self.total else 100

    def summary(self) -> str:
        return f"{self.lang}: {self.total} messages, {self.percent}% translated, {self.fuzzy} fuzzy"


def _key(message_id, context):
    """How a catalog files a message: by its singular, with the context if any."""
    singular = message_id[0] if isinstance(message_id, (list, tuple)) else message_id
    return singular if context is None else (singular, context)


def _is_translated(message: Message | None) -> bool:
    return message is not None and not message.fuzzy and all(_forms(message))


def _message_problems(
    template_message: Message, message: Message | None, catalog: Catalog
) -> list[str]:
    """What is wrong with one catalog entry; empty when it is fully translated."""
    quoted = _quoted(template_message.id)
    if message is None:
        obsolete = _key(template_message.id, template_message.context) in catalog.obsolete
        return [f"missing{' (only an obsolete #~ entry)' if obsolete else ''}: {quoted}"]
    if message.id != template_message.id:
        return [f"plural forms differ from the code: {quoted}"]
    if message.fuzzy:
        return [f"fuzzy: {quoted}"]
    if not all(_forms(message)):
        return [f"untranslated: {quoted}"]
    if message.pluralizable and len(_forms(message)) != catalog.num_plurals:
        return [
            f"plural forms: {quoted} has {len(_forms(message))}, "
            f"the language needs {catalog.num_plurals}"
        ]
    single = single_number_forms(catalog) if message.pluralizable else frozenset()
    return _placeholder_problems(template_message, message, single)


def check_catalog(lang: str, catalog: Catalog, template: Catalog) -> CatalogReport:
    """Compare one catalog with the template: counts and one line per problem."""
    report = CatalogReport(lang)
    wanted = [m for m in template if m.id]
    for template_message in wanted:
        message = catalog.get(template_message.id, template_message.context)
        report.total += 1
        report.fuzzy += bool(message is not None and message.fuzzy)
        report.translated += _is_translated(message)
        report.problems.extend(_message_problems(template_message, message, catalog))
    known = {_key(m.id, m.context) for m in wanted}
    for message in catalog:
        if message.id and _key(message.id, message.context) not in known:
            # Harmless at runtime, but it means `update` was not run after a code change.
            report.problems.append(f"stale (no longer in the code): {_quoted(message.id)}")
    return report


def catalog_reports(translations_dir: Path, template: Catalog) -> dict[str, CatalogReport]:
    """A CatalogReport for every shipped language in translations_dir."""
    return {
        lang: check_catalog(
            lang, _read_catalog(catalog_path(translations_dir, lang), lang), template
        )
        for lang in shipped_languages(translations_dir)
    }


def check_catalogs(translations_dir: Path, template_catalog: Catalog) -> dict[str, list[str]]:
    """Problems per shipped language (an empty list when the catalog is complete).

    Flags messages missing from the catalog (or only obsolete there), untranslated and
    fuzzy ones, wrong plural forms, placeholders (%(name)s, {name}) that differ from
    the message id, stray "%" that would break formatting, and stale entries the code
    no longer uses.
    """
    return {
        lang: report.problems
        for lang, report in catalog_reports(Path(translations_dir), template_catalog).items()
    }


# --- the command group -----------------------------------------------------------------


def _dir_option(help_text: str):
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=help_text + " (default: translations/ in the source tree).",
    )


def _extract_to(directory: Path) -> None:
    count = sum(1 for m in _read_catalog(extract(template_path(directory))) if m.id)
    click.echo(f"Extracted {count} messages to {template_path(directory)}")


@click.group("i18n")
def i18n_group() -> None:
    """Translation catalogs: extract, update, init, compile, check."""


@i18n_group.command("extract")
@_dir_option("Folder for messages.pot")
def extract_command(directory: Path | None) -> None:
    """Extract every translatable string into translations/messages.pot."""
    _extract_to(directory or default_translations_dir())


@i18n_group.command("update")
@_dir_option("Folder holding the catalogs")
def update_command(directory: Path | None) -> None:
    """Extract, then merge new and changed strings into every catalog."""
    directory = directory or default_translations_dir()
    _extract_to(directory)
    for path in update_catalogs(directory):
        click.echo(f"Updated {path}")


@i18n_group.command("init")
@click.argument("lang")
@_dir_option("Folder holding the catalogs")
def init_command(lang: str, directory: Path | None) -> None:
    """Create an empty catalog for LANG, such as es or pt_BR."""
    directory = directory or default_translations_dir()
    _new_catalog_path(directory, lang)  # fail before extracting, not after
    # Extract first so a new catalog never starts from a stale template.
    _extract_to(directory)
    click.echo(f"Created {init_catalog(directory, lang)}")
    if lang not in LANGUAGES:
        click.echo(f"Note: add '{lang}' to LANGUAGES in patientapp/i18n.py to offer it.")


@i18n_group.command("compile")
@_dir_option("Folder holding the catalogs")
def compile_command(directory: Path | None) -> None:
    """Compile every catalog to messages.mo beside its messages.po."""
    directory = directory or default_translations_dir()
    languages = shipped_languages(directory)
    if languages and _pybabel(CompileCatalog, directory=str(directory)):
        raise click.ClickException("Babel found errors in the catalogs (listed above).")
    click.echo(f"Compiled {len(languages)} catalog(s): {', '.join(languages) or 'none'}")


@i18n_group.command("check")
@_dir_option("Folder holding the catalogs to check")
@click.pass_context
def check_command(ctx: click.Context, directory: Path | None) -> None:
    """Fail on any missing, untranslated, fuzzy or broken translation.

    Every catalog is compared with a fresh extract of the code (not the saved
    messages.pot), so a string added to the code but not to a catalog is caught.
    """
    reports = catalog_reports(directory or default_translations_dir(), extract_template())
    if not reports:
        click.echo("No catalogs to check (English is the source language).")
    for lang, report in reports.items():
        for problem in report.problems:
            click.echo(f"{lang}: {problem}")
        click.echo(report.summary())
    if any(report.problems for report in reports.values()):
        ctx.exit(1)


def init_app(app) -> None:
    """Register `flask i18n ...` on the app."""
    app.cli.add_command(i18n_group)
