"""Languages: which ones ship, how a request's language is chosen, catalog compilation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import current_app, g, request, session
from flask_babel import Babel, get_locale

DOMAIN = "messages"


@dataclass(frozen=True)
class Language:
    code: str  # the catalog folder and Babel locale, e.g. "pt_BR"
    name: str  # the language's name in itself
    direction: str = "ltr"

    @property
    def tag(self) -> str:
        """The BCP 47 tag for <html lang>, e.g. "pt-BR"."""
        return self.code.replace("_", "-")


LANGUAGES = {
    lang.code: lang
    for lang in (
        Language("en", "English"),
        Language("es", "Español"),
        Language("fr", "Français"),
        Language("pt_BR", "Português (Brasil)"),
        Language("zh_Hans", "简体中文"),
        Language("vi", "Tiếng Việt"),
        Language("ar", "العربية", "rtl"),
    )
}
SOURCE_LANGUAGE = "en"


class MissingCatalogError(RuntimeError):
    """A configured language has no translation catalog."""


def translations_source() -> Path:
    """The folder holding <lang>/LC_MESSAGES/messages.po (installed or source tree)."""
    package = Path(__file__).parent
    installed = package / "translations"
    return installed if installed.is_dir() else package.parent / "translations"


def compile_catalogs(source: Path, target: Path, languages) -> None:
    """Compile each language's .po into target/<lang>/LC_MESSAGES/messages.mo when stale."""
    for code in languages:
        if code == SOURCE_LANGUAGE:
            continue
        po_path = source / code / "LC_MESSAGES" / f"{DOMAIN}.po"
        if not po_path.is_file():
            raise MissingCatalogError(
                f"Language '{code}' is configured but has no catalog at {po_path}. "
                f"Remove it from the offered languages or add the catalog."
            )
        mo_path = target / code / "LC_MESSAGES" / f"{DOMAIN}.mo"
        if mo_path.is_file() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=code)
        tmp = mo_path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=False)
        tmp.replace(mo_path)


def available_languages() -> list[str]:
    """Languages that ship with a catalog (English is the source and needs none)."""
    source = translations_source()
    return [
        code
        for code in LANGUAGES
        if code == SOURCE_LANGUAGE or (source / code / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    ]


def offered_languages() -> list[str]:
    """The languages this clinic offers now (settings page), among those compiled."""
    from patientapp.web.context import clinic_settings

    shipped = current_app.config["OFFERED_LANGUAGES"]
    settings = clinic_settings()
    kept = g.get("offered_languages")  # asked several times a request: worked out once
    if kept is None or kept[0] is not settings or kept[1] is not shipped:
        chosen = settings.get("languages") or shipped
        offered = tuple(code for code in chosen if code in shipped) or (SOURCE_LANGUAGE,)
        kept = g.offered_languages = (settings, shipped, offered)
    return list(kept[2])


def _valid(code: str | None) -> str | None:
    if code and code in offered_languages():
        return code
    return None


def select_locale() -> str:
    """?lang= -> the choice made on this device -> the patient's language for this visit
    (also on another device) -> the invitation's suggestion -> Accept-Language -> clinic
    default; only among the languages the clinic offers."""
    chosen = (
        _valid(request.args.get("lang"))
        or _valid(session.get("lang"))
        or _valid(g.get("visit_language"))
        or _valid(g.get("suggested_language"))
    )
    if chosen:
        return chosen
    offered = offered_languages()
    tags = [code.replace("_", "-") for code in offered]
    best = request.accept_languages.best_match(tags) if request else None
    if best:
        return offered[tags.index(best)]
    # Accept-Language "zh-CN" or "pt" should still find zh_Hans and pt_BR.
    for header_lang, _quality in request.accept_languages:
        base = header_lang.split("-")[0].lower()
        for code in offered:
            if code.split("_")[0].lower() == base:
                return code
    default = current_app.config["DEFAULT_LANGUAGE"]
    return default if default in offered else offered[0]


def _remember_language(response):
    """A ?lang= choice sticks for the rest of this browser session; not on a page that
    ended it (a tablet's closed page, `g.session_cleared`): its ?lang= was the last
    patient's, and the next person must not start in it."""
    chosen = request.args.get("lang")
    if g.get("session_cleared"):
        return response
    if chosen and request.endpoint != "static" and chosen in offered_languages():
        session["lang"] = chosen
    return response


def current_language() -> Language:
    from flask_babel import get_locale

    locale = get_locale()
    code = str(locale) if locale else SOURCE_LANGUAGE
    return LANGUAGES.get(code, LANGUAGES[SOURCE_LANGUAGE])


def language_name(code: str) -> str:
    lang = LANGUAGES.get(code)
    return lang.name if lang else code


def init_app(app) -> None:
    offered = app.config["OFFERED_LANGUAGES"]
    unknown = [code for code in offered if code not in LANGUAGES]
    if unknown:
        raise MissingCatalogError(f"Unknown language codes configured: {', '.join(unknown)}")
    compiled = Path(
        app.config.get("COMPILED_TRANSLATIONS") or Path(app.instance_path) / "translations"
    )
    compile_catalogs(translations_source(), compiled, offered)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    Babel(app, locale_selector=select_locale)
    app.after_request(_remember_language)
    app.jinja_env.globals.update(
        current_language=current_language,
        language_name=language_name,
        all_languages=LANGUAGES,
        offered_languages=offered_languages,
        colon=colon,
    )
    # Locale objects are cheap to build but validating each code once catches typos early.
    for code in offered:
        Locale.parse(code)


def joined(values: list[str]) -> str:
    """A list as the reader's language writes one ("a, b and c")."""
    return format_list(values, locale=get_locale()) if values else ""


def colon() -> str:
    """What the reader's language puts between a label and its value ("Visit: …"; French
    "Visite : …", Chinese a full-width colon, U+FF1A)."""
    from flask_babel import pgettext

    # Translators: what goes between a label and its value on the one-page summary
    # ("Visit: Dec 7"): a colon and a space in English, " : " in French, a full-width
    # colon alone in Chinese.
    return pgettext("label and value", ": ")


def listed(values: list[str]) -> str:
    """A list with the separator the reader's language puts between middle items
    ("a, b, c"), for a list that follows a label rather than one inside a sentence."""
    if not values:
        return ""
    pattern = get_locale().list_patterns["standard"]["middle"]
    result = values[0]
    for value in values[1:]:
        result = pattern.format(result, value)
    return result
