"""The read-only FHIR API for an integration engine.

``GET /api/fhir/Questionnaire/reflection`` and ``GET /api/fhir/QuestionnaireResponse
?_lastUpdated=ge...`` answer only a live bearer token that an admin created for the
integration (Integrations page). Cookies are never read here, so a signed-in browser gets
nowhere, and the blueprint is exempt from CSRF for that reason: no request can ride on an
ambient credential. Every token is read-only, rate limited per minute, and every visit it
reads is audited.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Blueprint, current_app, g, jsonify, request

from patientapp.db import storage
from patientapp.domain import throttle
from patientapp.domain.api_tokens import hash_token
from patientapp.exports import fhir, record
from patientapp.exports.record import FHIR_JSON
from patientapp.web.context import aware, base_url, clinic_settings, clinic_zone, get_db, now

if TYPE_CHECKING:
    from patientapp.domain.records import Visit

bp = Blueprint("api", __name__, url_prefix="/api/fhir")

DEFAULT_COUNT = 100
MAX_COUNT = 500
REQUEST_SCOPE = "api-request"  # each request a token made, kept for its one-minute window
# _count and _page: ASCII digits only ("²" passes str.isdigit() but not int()), and few
# enough that int() never meets Python's limit on long numbers.
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


# --- the resources of a visit --------------------------------------------------------------


def languages() -> list[str]:
    return list(current_app.config["OFFERED_LANGUAGES"])


def questionnaire_json() -> dict:
    return record.questionnaire_json(languages())


def response_for(visit: Visit) -> dict:
    """The QuestionnaireResponse of one visit, from what is stored (``exports.record``)."""
    return record.response_for(get_db(), visit, settings=clinic_settings(), base_url=base_url())


# --- plumbing ------------------------------------------------------------------------------


def _outcome(status: int, code: str, text: str, headers=None):
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    response = jsonify(body)
    response.status_code = status
    response.mimetype = FHIR_JSON
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _fhir(body: dict):
    response = jsonify(body)
    response.mimetype = FHIR_JSON
    return response


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@bp.before_request
def authenticate():
    """Only a live token in the Authorization header gets in; cookies count for nothing."""
    g.pop("user", None)
    token = _bearer()
    record = storage.api_token_by_hash(get_db(), hash_token(token)) if token else None
    if record is None or record["scope"] != "read":
        return _outcome(
            401, "login", "A valid bearer token is required.", {"WWW-Authenticate": "Bearer"}
        )
    db, moment = get_db(), now()
    per_minute = throttle.Window(
        REQUEST_SCOPE, current_app.config["API_REQUESTS_PER_MINUTE"], timedelta(minutes=1)
    )
    if not throttle.count_request(db, per_minute, str(record["id"]), moment):
        return _outcome(429, "throttled", "Too many requests.", {"Retry-After": "60"})
    storage.touch_api_token(db, record["id"], moment)
    g.api_token = record
    return None


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


def _since(raw: str) -> datetime | None:
    """A `_lastUpdated=ge<instant>` value as the clinic's local time (as stored), or None
    when it is no instant, or one whose UTC or local time falls outside years 1 to 9999
    (ge9999-12-31T23:59:59-14:00 is past the end of the calendar in UTC)."""
    if not raw.startswith("ge"):
        return None
    try:
        moment = datetime.fromisoformat(raw[2:].replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = aware(moment)
        zone = clinic_zone()
        # Converting goes through UTC: an instant outside years 1 to 9999 there fails.
        return (moment.astimezone(zone) if zone else moment.astimezone()).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):  # OSError: the C library's localtime()
        return None


def _number(name: str, default: int, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        return None
    return int(raw)


# --- routes --------------------------------------------------------------------------------


@bp.get("/Questionnaire/<resource_id>")
def questionnaire_read(resource_id: str):
    if resource_id != fhir.QUESTIONNAIRE_ID:
        return _outcome(404, "not-found", "No such Questionnaire.")
    _audit("fhir_questionnaire_read")
    return _fhir(questionnaire_json())


@bp.get("/QuestionnaireResponse")
def response_search():
    """A searchset Bundle of the responses changed since _lastUpdated=ge..., paged."""
    since = _since(request.args.get("_lastUpdated", ""))
    count = _number("_count", DEFAULT_COUNT, 1, MAX_COUNT)
    page = _number("_page", 1, 1, 100_000)
    if since is None or count is None or page is None:
        return _outcome(
            400,
            "invalid",
            "Give _lastUpdated=ge<date-time> (within years 1 to 9999, in UTC too), and "
            "optionally _count (1-500) and _page (1-100000), in ASCII digits.",
        )
    rows = storage.visits_updated_since(get_db(), since, limit=count + 1, offset=(page - 1) * count)
    more, rows = len(rows) > count, rows[:count]
    entries = []
    with storage.write(get_db()):  # one commit for the page's audit entries
        for visit in rows:
            resource = response_for(visit)
            _audit("fhir_response_read", visit.id)
            entries.append(
                {
                    "fullUrl": f"{base_url()}/api/fhir/QuestionnaireResponse/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
            )

    def page_url(number: int) -> str:
        query = {"_lastUpdated": request.args["_lastUpdated"], "_count": count, "_page": number}
        return f"{base_url()}{request.path}?{urlencode(query)}"

    links = [{"relation": "self", "url": page_url(page)}]
    if more:
        links.append({"relation": "next", "url": page_url(page + 1)})
    return _fhir(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "timestamp": aware(now()).isoformat(timespec="seconds"),
            "link": links,
            **({"entry": entries} if entries else {}),  # FHIR allows no empty arrays
        }
    )
