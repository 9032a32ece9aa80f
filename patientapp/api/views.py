"""The read-only FHIR R4 API for an integration engine, under ``/api/fhir``.

- ``GET metadata``: the CapabilityStatement, listing exactly what is below.
- ``GET Questionnaire/reflection`` (the current version), ``GET Questionnaire/<id>``
  (``reflection-<version>``, the current one too) and ``GET Questionnaire?url=...&
  version=...``: every version a stored response names.
- ``GET QuestionnaireResponse/<id>``: one visit's response (read, the visit's UUID).
- ``GET CodeSystem/<id>``, ``GET CodeSystem?url=...``: each choice list's code system, so
  every coding's system resolves; ``StructureDefinition`` likewise for the project's own
  extensions.
- ``GET QuestionnaireResponse?...``: a searchset Bundle (search-type) over ``_lastUpdated``
  (``eq``, ``ge``, ``gt``, ``le``, ``lt``, repeatable for a range), ``status`` and
  ``_count``, in the order of the visits' change sequence; the ``next`` link carries
  ``_cursor``, the last sequence number read (keyset paging), so a visit that changes
  while an engine pages comes again at the end and none is skipped.
- ``Observation`` (each saved safety value, and each standard measure's total: PHQ-9,
  GAD-7), ``Flag`` (the safety alert) and ``DocumentReference`` (the one page as text):
  read by id and searched over ``_lastUpdated`` and ``_count`` the same way, paged by the
  same change sequence (a visit's resources are never split over two pages).

Only sent visits (submitted or reviewed) leave. A token given the in-progress scope on the
Integrations page also reads visits not sent (in progress, or cancelled before sending),
with their status and progress only: anything not sent may still be held "In person";
it reads no Observation, Flag or DocumentReference of such a visit. Held answers never
leave.

Every request needs a live bearer token an admin created (not revoked, not expired);
cookies are never read here, so a signed-in browser gets nowhere, and the blueprint is
exempt from CSRF for that reason. Tokens are read-only and rate limited per minute; every
visit read is audited. Every answer under the prefix with a body, errors included (400,
401, 403, 404, 405, 406, 429, 500, 503), is ``application/fhir+json; charset=utf-8``,
errors as an OperationOutcome; the one answer without a body is a conditional read's 304
(``If-None-Match`` naming the current ``ETag``). Only GET and HEAD: OPTIONS is a 405 like
POST, since FHIR R4 has no OPTIONS interaction (its capabilities are ``GET metadata``).
An ``Accept`` (or ``_format``, which overrides it) that allows no FHIR JSON is a 406.
Unknown search parameters follow ``Prefer: handling=``: ``lenient`` (the default)
ignores them and leaves them out of the self link, ``strict`` answers 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from patientapp import config
from patientapp.auth.sessions import record_refusal
from patientapp.db import storage
from patientapp.domain import throttle
from patientapp.domain.api_tokens import hash_token
from patientapp.exports import derived, fhir, record
from patientapp.exports.record import FHIR_JSON, FHIR_JSON_UTF8
from patientapp.i18n import SOURCE_LANGUAGE
from patientapp.questionnaire import model as questionnaire
from patientapp.web.context import (
    aware,
    base_url,
    clinic_settings,
    configured_base_url,
    get_db,
    now,
)

if TYPE_CHECKING:
    from patientapp.domain.records import Visit

PREFIX = "/api/fhir"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


def route(rule: str):
    """A read route: GET, and HEAD with it. No automatic OPTIONS answer (Flask's is an
    empty text/html 200): FHIR R4 has no OPTIONS interaction, its capabilities are
    ``GET metadata``, so OPTIONS is a 405 OperationOutcome like POST, token or not."""
    return bp.get(rule, provide_automatic_options=False)


DEFAULT_COUNT = 100
MAX_COUNT = 500
REQUEST_SCOPE = "api-request"  # each request a token made, kept for its one-minute window
# _count and _cursor: ASCII digits only ("²" passes str.isdigit() but not int()), and few
# enough that int() never meets Python's limit on long numbers.
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR's id datatype
UUID_LENGTH = 36  # a visit's UUID starts the id of every resource made from the visit
# A FHIR date search value: a prefix, then a date or dateTime of any precision.
DATE_VALUE = re.compile(
    r"(?P<prefix>eq|ge|gt|le|lt)?(?P<year>[0-9]{4})(-(?P<month>[0-9]{2})(-(?P<day>[0-9]{2})"
    r"(T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(:(?P<second>[0-9]{2})(\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"
)
# What this server supports (and its CapabilityStatement says, and nothing more).
SEARCH_PARAMS = ("_lastUpdated", "status")  # QuestionnaireResponse's
DERIVED_PARAMS = ("_lastUpdated",)  # Observation's, Flag's, DocumentReference's
RESULT_PARAMS = ("_count", "_cursor", "_format")
SENT = ("submitted", "reviewed")  # what any token reads
NOT_SENT = ("in_progress", "cancelled")  # status and progress only, with the scope
# FHIR QuestionnaireResponse status -> the stored statuses it covers.
STATUSES = {
    "in-progress": ("in_progress",),
    "completed": ("submitted", "reviewed"),
    "stopped": ("cancelled",),
    "amended": (),
    "entered-in-error": (),
}
JSON_FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")
# What an Accept header may ask for and get: FHIR JSON under its R4, DSTU2 and generic
# names, and the wildcards that include one of them.
SERVED_TYPES = frozenset(
    {"application/fhir+json", "application/json+fhir", "application/json", "text/json"}
)
WILDCARDS = frozenset({"*/*", "*", "application/*", "text/*"})  # "*": older Java clients
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SearchError(Exception):
    """A search the API answers with a 4xx OperationOutcome."""

    def __init__(self, status: int, code: str, text: str):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


# --- answers: every one application/fhir+json; charset=utf-8 ----------------------------


def _fhir(body: dict, status: int = 200, headers=None):
    response = jsonify(body)
    response.status_code = status
    response.headers["Content-Type"] = FHIR_JSON_UTF8
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _outcome(status: int, code: str, text: str, headers=None, severity: str = "error"):
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    }
    return _fhir(body, status, headers)


HTTP_OUTCOMES = {
    400: ("invalid", "The request is not a valid FHIR request."),
    401: ("login", "A valid bearer token is required."),
    403: ("forbidden", "This token may not do that."),
    404: ("not-found", "There is no such resource or interaction here."),
    405: ("not-supported", "This API only reads: GET (and HEAD) only."),
    406: ("not-supported", "This API answers in FHIR JSON only."),
    413: ("too-costly", "The request is too large."),
    429: ("throttled", "Too many requests."),
}


def _http_outcome(error: HTTPException):
    code, text = HTTP_OUTCOMES.get(error.code or 400, ("processing", "The request failed."))
    headers = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if error.code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return _outcome(error.code or 400, code, text, headers)


@bp.before_app_request
def unrouted():
    """A path under the prefix that matches no route (404) or not with this method (405)
    belongs to no blueprint, so the app's HTML error pages would answer: answer it here."""
    error = request.routing_exception
    if error is None or isinstance(error, RequestRedirect):
        return None
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return None
    if isinstance(error, HTTPException):
        return _http_outcome(error)
    return None


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    return _http_outcome(error)


@bp.errorhandler(Exception)
def server_error(error: Exception):
    if isinstance(error, storage.OPERATIONAL_ERRORS) and storage.write_failure(error):
        current_app.logger.error("database write failed on the FHIR API: %s", error)
        return _outcome(503, "transient", "Try again in a moment.", {"Retry-After": "5"})
    if current_app.testing and not current_app.config.get("CATCH_ERRORS_IN_TESTS"):
        raise error
    rule = request.url_rule.rule if request.url_rule else "?"
    current_app.logger.error("unhandled %s on the FHIR API %s", type(error).__name__, rule)
    return _outcome(500, "exception", "Something went wrong on the server.")


# --- tokens ------------------------------------------------------------------------------


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _why_not_live(token: dict) -> str:
    if token.get("revoked_at"):
        return "revoked"
    return "expired" if token["scope"] == "read" else f"scope {token['scope']}"


def _audit_refused(token: dict, why: str) -> None:
    """A refusal of a token we issued ("access_refused", limited per token like the
    refusals of signed-in staff); a token nobody issued is not audited."""
    detail = f"token {token['id']}: {why}"
    record_refusal(f"token:{token['id']}", detail, actor=f"api:{token['name']}")


def _live(token: dict | None) -> bool:
    if token is None or token["scope"] != "read":
        return False
    expires = token.get("expires_at")
    return not expires or now() < datetime.fromisoformat(expires)


@bp.before_request
def authenticate():
    """Only a live token in the Authorization header gets in; cookies count for nothing."""
    g.pop("user", None)
    g.pop("earlier_shown", None)  # noted by this request's reads only
    token = _bearer()
    found = storage.api_token_by_hash(get_db(), hash_token(token)) if token else None
    if not _live(found):
        known = found or (storage.api_token_ever(get_db(), hash_token(token)) if token else None)
        if known is not None:  # one of ours, no longer good: who kept using it is audited
            _audit_refused(known, _why_not_live(known))
        return _outcome(
            401, "login", "A valid bearer token is required.", {"WWW-Authenticate": "Bearer"}
        )
    db, moment = get_db(), now()
    per_minute = throttle.Window(
        REQUEST_SCOPE, current_app.config["API_REQUESTS_PER_MINUTE"], timedelta(minutes=1)
    )
    if not throttle.count_request(db, per_minute, str(found["id"]), moment):
        return _outcome(429, "throttled", "Too many requests.", {"Retry-After": "60"})
    storage.touch_api_token(db, found["id"], moment)
    g.api_token = found
    fmt = request.args.get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in JSON_FORMATS:
        return _outcome(406, "not-supported", "Only _format=json is served.")
    if fmt is None and request.accept_mimetypes and not _accepts_fhir_json():
        return _outcome(
            406,
            "not-supported",
            "Only FHIR JSON is served: Accept application/fhir+json, application/json or */*.",
        )
    return None


def _accepts_fhir_json() -> bool:
    """Whether the Accept header allows FHIR JSON (FHIR asks servers for HTTP's content
    negotiation): a served type or a wildcard with q above 0, whatever its charset, and
    with a `fhirVersion` parameter only for R4 (4.0, 4.0.1: another version is a 406). A
    missing Accept allows anything; `_format`, when given, overrides Accept (FHIR, for
    clients that cannot set the header)."""
    for value, quality in request.accept_mimetypes:
        kind, *parameters = (part.strip().lower() for part in value.split(";"))
        versions = [
            p.partition("=")[2].strip('"') for p in parameters if p.startswith("fhirversion=")
        ]
        if quality <= 0 or (kind not in SERVED_TYPES and kind not in WILDCARDS):
            continue
        if all(version == "4.0" or version.startswith("4.0.") for version in versions):
            return True
    return False


def readable_statuses() -> tuple[str, ...]:
    """The stored statuses this request's token reads: sent visits, and those not sent
    when the token has the in-progress scope."""
    return SENT + NOT_SENT if g.api_token["in_progress"] else SENT


def _audit(action: str, visit_id: int | None = None, detail: str = "") -> None:
    token = g.api_token
    storage.audit(
        get_db(),
        action,
        now=now(),
        actor=f"api:{token['name']}",
        visit_id=visit_id,
        detail=detail or f"token {token['id']}",
    )


# --- the resources ------------------------------------------------------------------------


def languages() -> list[str]:
    return list(current_app.config["OFFERED_LANGUAGES"])


def questionnaire_json() -> dict:
    return record.questionnaire_json(languages())


def is_sent(visit: Visit) -> bool:
    return visit.status in SENT


def response_for(visit: Visit) -> dict:
    """The QuestionnaireResponse of one visit, from what is stored (``exports.record``):
    in full once sent, else status and progress only."""
    return record.response_for(
        get_db(),
        visit,
        settings=clinic_settings(),
        base_url=configured_base_url(),
        full=is_sent(visit),
    )


def _response_url(visit: Visit) -> str:
    return f"{base_url()}{PREFIX}/QuestionnaireResponse/{fhir.resource_id(visit)}"


def _etag(visit: Visit) -> str:
    return f'W/"{visit.change_seq}"'


def _not_modified(visit: Visit):
    """A read's 304 Not Modified (no body, the ETag) when If-None-Match names the visit's
    current version, compared weakly as RFC 9110 asks for If-None-Match; else None."""
    if not request.if_none_match.contains_weak(str(visit.change_seq)):
        return None
    response = current_app.response_class(status=304, headers={"ETag": _etag(visit)})
    response.headers.remove("Content-Type")
    return response


# --- search parameters ----------------------------------------------------------------------


def _strict() -> bool:
    """`Prefer: handling=strict` (any other value, or none, is lenient: FHIR's default)."""
    for preference in re.split(r"[,;]", request.headers.get("Prefer", "")):
        name, _, value = preference.partition("=")
        if name.strip().lower() == "handling" and value.strip().strip('"').lower() == "strict":
            return True
    return False


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def date_range(raw: str) -> tuple[int | None, int | None]:
    """A `_lastUpdated` value as [low, high) in microseconds since 1970 UTC (None: open).

    The value's precision is a range (FHIR search, dates): ge2026-11-25 is from the start
    of that day, gt2026-11-25 after its end; a time without offset is the clinic's."""
    match = DATE_VALUE.fullmatch(raw)
    if match is None:
        raise ValueError(raw)
    part = match.groupdict()
    fraction = part["fraction"] or ""
    start = datetime(
        int(part["year"]),
        int(part["month"] or 1),
        int(part["day"] or 1),
        int(part["hour"] or 0),
        int(part["minute"] or 0),
        int(part["second"] or 0),
        int((fraction + "000000")[:6]),
    )
    if part["fraction"] is not None:
        step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    elif part["second"] is not None:
        step = timedelta(seconds=1)
    elif part["minute"] is not None:
        step = timedelta(minutes=1)
    elif part["day"] is not None:
        step = timedelta(days=1)
    else:
        step = None  # a month or a year: up to the first of the next one
    if step is not None:
        end = start + step
    elif part["month"] is not None:
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    else:
        end = start.replace(year=start.year + 1)
    if part["zone"]:
        offset = datetime.fromisoformat(f"2000-01-01T00:00:00{part['zone'].replace('Z', '+00:00')}")
        low, high = start.replace(tzinfo=offset.tzinfo), end.replace(tzinfo=offset.tzinfo)
    else:
        low, high = aware(start), aware(end)
    low_us, high_us = _micros(low), _micros(high)
    prefix = part["prefix"] or "eq"
    return {
        "eq": (low_us, high_us),
        "ge": (low_us, None),
        "gt": (high_us, None),
        "lt": (None, low_us),
        "le": (None, high_us),
    }[prefix]


class Search:
    """An API search as understood: the statuses, change-time ranges, page size and
    cursor, and the parameters used (for the self and next links)."""

    def __init__(
        self,
        args,
        strict: bool,
        readable: tuple[str, ...],
        kind: str = "QuestionnaireResponse",
        params: tuple[str, ...] = SEARCH_PARAMS,
    ):
        self.kind, self.params = kind, params
        self.statuses = readable
        self.ranges: list[tuple[int | None, int | None]] = []
        self.count = DEFAULT_COUNT
        self.cursor = 0
        self.used: list[tuple[str, str]] = []
        for name, value in args.items(multi=True):
            if name == "_lastUpdated" and name in params:
                self.ranges.append(self._date(value))
            elif name == "status" and name in params:
                self.statuses = self._status(value, readable)
            elif name == "_count":
                self.count = self._number(name, value, 1, MAX_COUNT)
            elif name == "_cursor":
                self.cursor = self._number(name, value, 0, 10**18 - 1)
                continue  # the cursor goes into the next link only
            elif name == "_format":
                continue  # checked on the way in; JSON is all there is
            elif strict:
                raise SearchError(
                    400,
                    "not-supported",
                    f"Unknown search parameter {name!r}: {kind} supports "
                    f"{', '.join(params + RESULT_PARAMS)} (see metadata).",
                )
            else:
                continue  # lenient: ignored, and left out of the self link
            if name != "_count":
                self.used.append((name, value))

    @staticmethod
    def _date(value: str) -> tuple[int | None, int | None]:
        try:
            return date_range(value)
        except (ValueError, OverflowError, OSError):  # OSError: the C library's localtime()
            raise SearchError(
                400,
                "invalid",
                f"_lastUpdated={value!r}: give a date or date-time (years 1 to 9999) with an "
                "optional prefix eq, ge, gt, le or lt, e.g. _lastUpdated=ge2026-11-25T00:00:00Z.",
            ) from None

    def _status(self, value: str, readable: tuple[str, ...]) -> tuple[str, ...]:
        wanted: list[str] = []
        for code in value.split(","):
            if code not in STATUSES:
                raise SearchError(
                    400,
                    "invalid",
                    f"status={code!r}: use one of {', '.join(STATUSES)} (comma-separated).",
                )
            wanted += STATUSES[code]
        if not set(wanted) <= set(readable):
            raise SearchError(
                403,
                "forbidden",
                "This token reads sent visits only; an admin can give a token the "
                "in-progress scope on the Integrations page.",
            )
        return tuple(s for s in self.statuses if s in wanted)  # several status params: AND

    @staticmethod
    def _number(name: str, value: str, low: int, high: int) -> int:
        if not WHOLE_NUMBER.fullmatch(value) or not low <= int(value) <= high:
            raise SearchError(
                400, "invalid", f"{name}={value!r}: a whole number from {low} to {high}."
            )
        return int(value)

    def url(self, cursor: int | None = None) -> str:
        query = [*self.used, ("_count", str(self.count))]
        if cursor:
            query.append(("_cursor", str(cursor)))
        return f"{base_url()}{PREFIX}/{self.kind}?{urlencode(query)}"


# --- the resources made from a sent visit beside its response -------------------------------


def document_language() -> str:
    """The language of the one page a DocumentReference carries: the clinic's default
    language (PATIENTAPP_DEFAULT_LANGUAGE, what staff pages fall back on) when shipped."""
    default = current_app.config.get("DEFAULT_LANGUAGE") or SOURCE_LANGUAGE
    return default if default in languages() else SOURCE_LANGUAGE


@dataclass(frozen=True)
class Derived:
    """A resource type made from a sent visit (``exports.derived``): which rows a visit
    needs to have any (None: every sent visit has one), how its reads are audited and how
    one visit's resources are made."""

    kind: str
    having: str | tuple[str, ...] | None
    action: str
    make: Callable[[Visit], list[dict]]
    documentation: str

    def audit_read(self, visit: Visit) -> None:
        """The read, for the visit and for each earlier visit whose answers it holds
        (``make`` noted them in ``g.earlier_shown``)."""
        _audit(self.action, visit.id)
        for earlier_id in g.get("earlier_shown", {}).get(visit.id, ()):
            detail = f"token {g.api_token['id']}: {self.action} of visit {visit.id}"
            _audit("earlier_visit_shown", earlier_id, detail=detail)


def _observations(visit: Visit) -> list[dict]:
    return derived.observations(get_db(), visit, settings=clinic_settings())


def _flags(visit: Visit) -> list[dict]:
    return derived.flags(get_db(), visit, settings=clinic_settings())


def _documents(visit: Visit) -> list[dict]:
    """The one page; the earlier visits its text shows are noted for the read's audit."""
    made, shown = derived.documents_shown(
        get_db(), visit, settings=clinic_settings(), language=document_language()
    )
    g.setdefault("earlier_shown", {})[visit.id] = shown
    return made


DERIVED = {
    "Observation": Derived(
        "Observation",
        ("safety_answers", "measure_totals"),
        "fhir_observation_read",
        _observations,
        "One per saved value of the safety question (PHQ-9 item 9, LOINC 44260-8), the "
        "whole history: effectiveDateTime when it was saved, valueCodeableConcept the LOINC "
        "answer (or dataAbsentReason asked-declined for a skip), interpretation POS or NEG, "
        "derivedFrom the visit's QuestionnaireResponse. id: <visit UUID>-safety-<n>. "
        "And one per standard measure the visit offered whose answers give a total "
        "(PHQ-9 total LOINC 44261-6, GAD-7 total LOINC 70274-6): effectiveDateTime when "
        "the visit was sent, valueInteger the total, interpretation.text its band "
        "(minimal, mild, moderate, moderately severe, severe), derivedFrom the visit's "
        "QuestionnaireResponse; a skipped or held item leaves no total (a held answer's "
        "value is never used). id: <visit UUID>-<phq9|gad7>-total.",
    ),
    "Flag": Derived(
        "Flag",
        "alerts",
        "fhir_flag_read",
        _flags,
        "The safety alert a worrying safety answer raised (category safety): active until "
        "acknowledged, then inactive; period from raised to acknowledged; flag-detail the "
        "Observation of the first worrying value. id: <visit UUID>-safety-alert.",
    ),
    "DocumentReference": Derived(
        "DocumentReference",
        None,
        "fhir_document_read",
        _documents,
        "The one-page summary as plain text (the staff 'plain text for the medical record' "
        "download, in the clinic's default language): status current, docStatus final, "
        "type LOINC 34785-6, the text as a text/plain; charset=utf-8 attachment, "
        "context.related the visit's QuestionnaireResponse. Held answers are never in "
        "it. id: <visit UUID>-summary.",
    ),
}


def _visit_of(resource_id: str) -> Visit | None:
    """The sent visit a derived resource's id names (its first 36 characters), or None."""
    if not RESOURCE_ID.fullmatch(resource_id) or len(resource_id) <= UUID_LENGTH:
        return None
    if resource_id[UUID_LENGTH] != "-":
        return None
    visit = storage.visit_by_uuid(get_db(), resource_id[:UUID_LENGTH])
    # Never a visit not sent, whatever the token's scope: anything of its answers leaves
    # only once it is sent.
    return visit if visit is not None and is_sent(visit) else None


def _derived_read(kind: Derived, resource_id: str):
    visit = _visit_of(resource_id)
    found = [r for r in kind.make(visit) if r["id"] == resource_id] if visit else []
    if not found:
        return _outcome(404, "not-found", f"No such {kind.kind}.")
    with storage.write(get_db()):  # a 304 is audited as the 200 is (see response_read)
        kind.audit_read(visit)
    not_modified = _not_modified(visit)
    if not_modified is not None:
        return not_modified
    return _fhir(found[0], headers={"ETag": _etag(visit)})


def _derived_search(kind: Derived):
    """A searchset Bundle of one derived type in change-sequence order, paged by the
    visits' cursor: a page ends at the last visit whose resources all fit in _count (at
    least one visit a page), so a visit's resources are never split."""
    try:
        search = Search(request.args, _strict(), SENT, kind.kind, DERIVED_PARAMS)
    except SearchError as error:
        return _outcome(error.status, error.code, error.text)
    db = get_db()
    ranges = tuple(search.ranges)
    rows = storage.exported_visits(
        db,
        statuses=SENT,
        ranges=ranges,
        after_seq=search.cursor,
        limit=search.count + 1,
        having=kind.having,
    )
    entries, last = [], None
    with storage.write(db):  # one commit for the page's audit entries
        for visit in rows:
            made = kind.make(visit)
            if last is not None and len(entries) + len(made) > search.count:
                break
            kind.audit_read(visit)
            entries += [
                {
                    "fullUrl": f"{base_url()}{PREFIX}/{kind.kind}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in made
            ]
            last = visit
    more = last is not None and last is not rows[-1]
    total = storage.count_exported(db, statuses=SENT, ranges=ranges, having=kind.having)
    links = [{"relation": "self", "url": search.url(search.cursor)}]
    if more:
        links.append({"relation": "next", "url": search.url(last.change_seq)})
    return _bundle(entries, links, total)


def _bundle(entries: list[dict], links: list[dict], total: int) -> dict:
    return _fhir(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": aware(now()).isoformat(timespec="seconds"),
            "total": total,
            "link": links,
            **({"entry": entries} if entries else {}),  # FHIR allows no empty arrays
        }
    )


# --- routes --------------------------------------------------------------------------------


HL7_PARAMS = "http://hl7.org/fhir/SearchParameter/"
LAST_UPDATED = {
    "name": "_lastUpdated",
    "definition": HL7_PARAMS + "Resource-lastUpdated",
    "type": "date",
    "documentation": (
        "Prefixes eq (or none), ge, gt, le, lt; repeat it for a range. A time without "
        "offset is the clinic's."
    ),
}
COUNT = {
    "name": "_count",
    "type": "number",
    "documentation": f"Page size, 1 to {MAX_COUNT} (default {DEFAULT_COUNT}).",
}
SEARCH_PARAM_DEFINITIONS = [
    LAST_UPDATED,
    {
        "name": "status",
        "definition": HL7_PARAMS + "QuestionnaireResponse-status",
        "type": "token",
        "documentation": "in-progress, completed, stopped; a comma for either.",
    },
    COUNT,
]
PAGING = (
    "Paging follows the change sequence: follow the next link (its _cursor), then poll "
    "with _lastUpdated=gt<the newest meta.lastUpdated read>."
)


def _canonical_params(kind: str, versioned: bool = True) -> list[dict]:
    params = [{"name": "url", "definition": f"{HL7_PARAMS}{kind}-url", "type": "uri"}]
    if versioned:
        params.append(
            {"name": "version", "definition": f"{HL7_PARAMS}{kind}-version", "type": "token"}
        )
    return params


@route("/metadata")
def metadata():
    """The CapabilityStatement: exactly the interactions and parameters served."""
    return _fhir(capability_statement())


def capability_statement() -> dict:
    settings = clinic_settings()
    if not settings["references_are_chart_numbers"]:
        patient = (
            "No patient link: the clinic's patient references are not chart numbers, so "
            "subject, author and source are left out."
        )
    elif settings.get("chart_number_system"):
        patient = (
            "subject, author and source: the patient, by chart number (identifier type MR, "
            f"system {settings['chart_number_system']})."
        )
    else:
        patient = (
            "subject, author and source: the patient, by chart number (identifier type MR); "
            "no identifier system is given, since the clinic has set none."
        )
    identifier = (
        f"identifier: system {configured_base_url()}/visits, value the visit's UUID."
        if configured_base_url()
        else "identifier: system urn:ietf:rfc:3986, value urn:uuid:<the visit's UUID>."
    )
    derived_resources = [
        {
            "type": kind.kind,
            "documentation": (
                f"{kind.documentation} Only sent visits, whatever the token's scope. "
                f"subject as the QuestionnaireResponse's. {PAGING}"
            ),
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "readHistory": False,
            "updateCreate": False,
            "conditionalRead": "not-match",
            "searchParam": [LAST_UPDATED, COUNT],
        }
        for kind in DERIVED.values()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": aware(now()).isoformat(timespec="seconds"),
        "publisher": "Pre-visit reflection",
        "kind": "instance",
        "software": {"name": "Pre-visit reflection", "version": config.VERSION},
        "implementation": {
            "description": "Read-only FHIR API of the pre-visit reflection app",
            "url": f"{base_url()}{PREFIX}",
        },
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read only: GET and HEAD (OPTIONS, POST and the rest: 405). FHIR JSON "
                    "only: an Accept or _format (which overrides Accept) allowing none is "
                    'a 406. Reads carry ETag W/"<versionId>"; If-None-Match naming it '
                    "gives 304. Unknown search parameters: Prefer: handling=lenient (the "
                    "default) ignores them and leaves them out of the self link; "
                    "handling=strict answers 400 with an OperationOutcome."
                ),
                "security": {
                    "description": (
                        "Authorization: Bearer <token>, one token per integration, created "
                        "by an admin on the Integrations page; tokens can expire and be "
                        "rotated or revoked; every visit read is audited."
                    )
                },
                "resource": [
                    {
                        "type": "QuestionnaireResponse",
                        "documentation": (
                            "One per visit. Only sent visits (status completed); a token with "
                            "the in-progress scope also reads visits not sent (in-progress, "
                            "stopped) with status and progress only. Answers held for in "
                            "person never leave. id: the visit's UUID. "
                            f"{identifier} {patient} {PAGING}"
                        ),
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "versioning": "versioned",
                        "readHistory": False,
                        "updateCreate": False,
                        "conditionalRead": "not-match",
                        "searchParam": SEARCH_PARAM_DEFINITIONS,
                    },
                    *derived_resources,
                    {
                        "type": "CodeSystem",
                        "documentation": (
                            "One per choice list (each item's own answers, "
                            f"{fhir.CODE_SYSTEM_BASE}<item id>); the safety question "
                            "S1 (44260-8, the PHQ-9 answer list) and the items of the "
                            "standard measures (PHQ-9, GAD-7) use LOINC answer codes "
                            "instead."
                        ),
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "conditionalRead": "not-supported",
                        "searchParam": _canonical_params("CodeSystem"),
                    },
                    {
                        "type": "Questionnaire",
                        "documentation": (
                            f"url {fhir.QUESTIONNAIRE_URL}: the current version (id "
                            f"{fhir.QUESTIONNAIRE_ID}) and every earlier version a stored "
                            "response names (status retired: the items that version asked, "
                            "worded as now). Read by id reflection-<version> for every "
                            f"version served, the current one too (also {fhir.QUESTIONNAIRE_ID},"
                            " the id a search gives it). Any other version: none (read: 404)."
                        ),
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "conditionalRead": "not-supported",
                        "searchParam": _canonical_params("Questionnaire"),
                    },
                    {
                        "type": "StructureDefinition",
                        "documentation": (
                            "The project's own extensions (urn:patientapp:fhir:"
                            "StructureDefinition:<id>), each with the context it is "
                            "allowed in."
                        ),
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "conditionalRead": "not-supported",
                        "searchParam": _canonical_params("StructureDefinition", False),
                    },
                ],
            }
        ],
    }


# --- conformance resources: Questionnaire, CodeSystem, StructureDefinition ------------------


def questionnaires() -> list[dict]:
    """The current Questionnaire and each earlier version a stored response names."""
    definition = questionnaire.default()
    versions = fhir.served_versions(definition, storage.questionnaire_versions(get_db()))
    return [fhir.questionnaire_resource(definition, languages(), version) for version in versions]


def questionnaire_reads() -> list[dict]:
    """What a read by id finds: each served version, and the current one also under
    ``reflection-<version>``, the read an engine builds from a response's canonical. A
    search finds it once, as ``reflection``."""
    current, *earlier = questionnaires()
    versioned = {**current, "id": fhir.versioned_questionnaire_id(current["version"])}
    return [current, versioned, *earlier]


def code_systems() -> list[dict]:
    return record.code_systems(languages())


CONFORMANCE = {
    "Questionnaire": (questionnaires, ("url", "version"), "fhir_questionnaire_read"),
    "CodeSystem": (code_systems, ("url", "version"), "fhir_codesystem_read"),
    "StructureDefinition": (fhir.structure_definitions, ("url",), "fhir_structure_read"),
}


def _conformance_read(kind: str, resource_id: str, make: Callable[[], list[dict]] | None = None):
    searched, _params, action = CONFORMANCE[kind]
    found = [r for r in (make or searched)() if r["id"] == resource_id]
    if not found:
        return _outcome(404, "not-found", f"No such {kind}.")
    _audit(action)
    return _fhir(found[0])


def _conformance_search(kind: str):
    """By canonical (`url`, and `version` where it has one): how a client resolves a
    coding's system, a response's questionnaire or an extension. Without either, every
    one."""
    make, params, action = CONFORMANCE[kind]
    strict = _strict()
    wanted: dict[str, str] = {}
    for name, value in request.args.items(multi=True):
        if name in params:
            wanted[name] = value
        elif name != "_format" and strict:
            return _outcome(
                400,
                "not-supported",
                f"Unknown search parameter {name!r}: use {', '.join(params)}.",
            )
    found = [r for r in make() if all(r.get(name) == value for name, value in wanted.items())]
    _audit(action)
    query = urlencode(sorted(wanted.items()))
    link = f"{base_url()}{PREFIX}/{kind}" + (f"?{query}" if query else "")
    entries = [
        {
            "fullUrl": f"{base_url()}{PREFIX}/{kind}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in found
    ]
    return _bundle(entries, [{"relation": "self", "url": link}], len(found))


@route("/Questionnaire/<resource_id>")
def questionnaire_read(resource_id: str):
    return _conformance_read("Questionnaire", resource_id, questionnaire_reads)


@route("/Questionnaire")
def questionnaire_search():
    return _conformance_search("Questionnaire")


@route("/CodeSystem/<resource_id>")
def codesystem_read(resource_id: str):
    """One choice list's CodeSystem (each item's own answers)."""
    return _conformance_read("CodeSystem", resource_id)


@route("/CodeSystem")
def codesystem_search():
    return _conformance_search("CodeSystem")


@route("/StructureDefinition/<resource_id>")
def structure_read(resource_id: str):
    return _conformance_read("StructureDefinition", resource_id)


@route("/StructureDefinition")
def structure_search():
    return _conformance_search("StructureDefinition")


# --- visits: responses and what is made from them --------------------------------------------


@route("/QuestionnaireResponse/<resource_id>")
def response_read(resource_id: str):
    """One visit's response by its id (every Bundle entry's fullUrl), if this token may
    read it; any other id is 404, so a token learns nothing of visits it cannot read."""
    visit = (
        storage.visit_by_uuid(get_db(), resource_id) if RESOURCE_ID.fullmatch(resource_id) else None
    )
    if visit is None or visit.status not in readable_statuses():
        return _outcome(404, "not-found", "No such QuestionnaireResponse.")
    not_modified = _not_modified(visit)
    resource = response_for(visit) if not_modified is None else None
    # A 304 is audited as the 200 is: it tells the engine that what it holds of this
    # visit is the current record, so it is a read of that visit by that token.
    with storage.write(get_db()):
        _audit("fhir_response_read", visit.id)
    if not_modified is not None:
        return not_modified
    return _fhir(resource, headers={"ETag": _etag(visit)})


@route("/QuestionnaireResponse")
def response_search():
    """A searchset Bundle in change-sequence order, paged by cursor."""
    try:
        search = Search(request.args, _strict(), readable_statuses())
    except SearchError as error:
        if error.status == 403:
            _audit_refused(g.api_token, f"{request.path.rsplit('/', 1)[-1]} beyond its scope")
        return _outcome(error.status, error.code, error.text)
    db = get_db()
    ranges = tuple(search.ranges)
    rows = storage.exported_visits(
        db, statuses=search.statuses, ranges=ranges, after_seq=search.cursor, limit=search.count + 1
    )
    more, rows = len(rows) > search.count, rows[: search.count]
    total = storage.count_exported(db, statuses=search.statuses, ranges=ranges)
    entries = []
    with storage.write(db):  # one commit for the page's audit entries
        for visit in rows:
            resource = response_for(visit)
            _audit("fhir_response_read", visit.id)
            entries.append(
                {"fullUrl": _response_url(visit), "resource": resource, "search": {"mode": "match"}}
            )
    links = [{"relation": "self", "url": search.url(search.cursor)}]
    if more:
        links.append({"relation": "next", "url": search.url(rows[-1].change_seq)})
    return _bundle(entries, links, total)


@route("/Observation/<resource_id>")
def observation_read(resource_id: str):
    return _derived_read(DERIVED["Observation"], resource_id)


@route("/Observation")
def observation_search():
    return _derived_search(DERIVED["Observation"])


@route("/Flag/<resource_id>")
def flag_read(resource_id: str):
    return _derived_read(DERIVED["Flag"], resource_id)


@route("/Flag")
def flag_search():
    return _derived_search(DERIVED["Flag"])


@route("/DocumentReference/<resource_id>")
def document_read(resource_id: str):
    return _derived_read(DERIVED["DocumentReference"], resource_id)


@route("/DocumentReference")
def document_search():
    return _derived_search(DERIVED["DocumentReference"])
