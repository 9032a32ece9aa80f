"""The one page opened from inside the EHR: a SMART App Launch 2.2 EHR launch.

The EHR opens ``/smart/launch?iss=<its FHIR base>&launch=<opaque id>`` in a new window.
Only an issuer the clinic listed (PATIENTAPP_SMART_ISSUERS) is followed. The reader must
be signed in here, as psychiatrist or admin: the EHR never signs anyone in, roles stay
ours. Then:

1. the EHR's `.well-known/smart-configuration` names its authorization and token
   endpoints;
2. the browser goes to its authorization endpoint with `launch`, `aud` (the FHIR base),
   PKCE (S256), state, and the scopes needed to read the patient and the encounter;
3. the token response carries the launch context: `patient`, `encounter`, and
   `fhirContext` (a list; an Encounter reference there counts, anything unknown is
   ignored);
4. the app reads the Patient (its identifier in the clinic's chart-number system, the
   Settings' "Chart number system") and the Encounter (its day) from the EHR's FHIR API;
5. the visits here with that chart number on that day (today when the EHR gives no
   encounter, or one without a start, which the audit says): exactly one opens its
   summary; none or several are said, with a chooser for several. Never a guess: an
   encounter of another patient, or a Patient that is not the one asked for, opens
   nothing.

`iss` goes back to the EHR as `aud` exactly as the EHR sent it; only the match against
the allowed EHRs ignores a trailing "/".

Every launch is audited with the EHR's ids; the access token is used for those two reads
and then forgotten, never stored or logged.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

import requests
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, format_time
from flask_babel import lazy_gettext as _l

from patientapp.auth.provider import (
    SignInFailed,
    error_code,
    exchange_code,
    oauth_app,
    read_secret,
)
from patientapp.auth.sessions import audit, current_user, login_required
from patientapp.auth.signin import audit_unsigned
from patientapp.db import storage
from patientapp.web import errors
from patientapp.web.context import base_url, clinic_settings, clinic_zone, get_db, now

bp = Blueprint("smart", __name__)
errors.STAFF.register(bp)

READERS = ("psychiatrist", "admin")  # who reads a summary (staff/views.py)
NAME = "smart"
# Read the patient and the encounter the EHR launched with, nothing else (SMART v2 scopes).
SCOPES = "launch patient/Patient.rs patient/Encounter.rs"
FLOW_KEY = "smart_flow"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # FHIR's id datatype
MAX_LAUNCH = 1000

NOT_ALLOWED = _l(
    "This app does not take launches from that EHR. Ask the clinic's admin to add it to "
    "the allowed EHRs."
)
EHR_FAILED = _l(
    "The EHR did not let this app read the patient's record, so no summary can be "
    "opened from it. Please try again from the EHR."
)
LAUNCH_USED = _l(
    "This launch from the EHR was already used. To open the page again, open it again from the EHR."
)
NO_CHART_SYSTEM = _l(
    "No visit can be found from the EHR until Settings say that patient references are "
    "chart numbers and name their system (Chart number system)."
)


@dataclass(frozen=True)
class Settings:
    issuers: frozenset[str]
    client_id: str
    timeout: float


class LaunchFailed(Exception):
    def __init__(self, reason: str, message=EHR_FAILED):
        super().__init__(reason)
        self.reason = reason
        self.message = message


def settings() -> Settings | None:
    """The EHRs the clinic allows, and this app's client there; None when not set up."""
    cfg = current_app.config
    issuers = frozenset(i.rstrip("/") for i in (cfg.get("SMART_ISSUERS") or "").split())
    if not issuers or not cfg.get("SMART_CLIENT_ID"):
        return None
    return Settings(
        issuers=issuers,
        client_id=cfg["SMART_CLIENT_ID"],
        timeout=float(cfg.get("OIDC_TIMEOUT_SECONDS") or 5),
    )


def _base(iss: str) -> str:
    """The EHR's FHIR base as the allowed list holds it (no trailing "/")."""
    return iss.rstrip("/")


def _client(found: Settings, iss: str):
    return oauth_app(
        NAME,
        f"{_base(iss)}/.well-known/smart-configuration",
        found.client_id,
        read_secret(current_app.config, "SMART_CLIENT_SECRET"),  # read where it is used
        SCOPES,
        found.timeout,
    )


def _refused(reason: str, message, status: int, detail_ids: str = ""):
    """Audit a launch that opened nothing, and say why. Before anyone signed in (the
    launch address itself), entries are limited per client (audit_unsigned: then 429)."""
    db = get_db()
    with storage.write(db):
        if g.get("user"):
            audit("smart_launch_failed", detail=f"{reason}{detail_ids}")
        elif not audit_unsigned(db, "smart_launch_failed", f"{reason}{detail_ids}"):
            status = 429
    return render_template("staff/smart.html", problem=str(message)), status


@bp.get("/smart/launch")
def launch():
    """Where the EHR opens this app: an allowed issuer and a launch id, then on to the
    EHR's authorization, once the reader is signed in here."""
    found = settings()
    if found is None:
        abort(404)
    iss = (request.args.get("iss") or "").strip()  # kept as sent: it goes back as `aud`
    launch_id = request.args.get("launch") or ""
    if _base(iss) not in found.issuers:
        return _refused("issuer not allowed", NOT_ALLOWED, 403)
    if not launch_id or len(launch_id) > MAX_LAUNCH:
        return _refused("no launch id", EHR_FAILED, 400)
    target = url_for("smart.authorize") + "?" + urlencode({"iss": iss, "launch": launch_id})
    if current_user() is None:
        return redirect(url_for("auth.login", next=target))
    return redirect(target)


@bp.get("/staff/smart/authorize")
@login_required(*READERS, hide_as_404=True)
def authorize():
    found = settings()
    if found is None:
        abort(404)
    iss = request.args.get("iss") or ""
    launch_id = request.args.get("launch") or ""
    if _base(iss) not in found.issuers or not launch_id or len(launch_id) > MAX_LAUNCH:
        return _refused("issuer not allowed", NOT_ALLOWED, 403)
    client = _client(found, iss)
    redirect_uri = base_url() + url_for("smart.callback")
    try:
        client.load_server_metadata()
        made = client.create_authorization_url(redirect_uri, launch=launch_id, aud=iss)
    except (requests.RequestException, ValueError, TypeError, RuntimeError):
        client.server_metadata.clear()
        return _refused("EHR unreachable", EHR_FAILED, 503)
    client.save_authorize_data(redirect_uri=redirect_uri, **made)
    # Which EHR each launch in progress went to, by its state: with two EHRs allowed, a
    # callback is only ever taken to the EHR its own state was made for.
    flows = {k: v for k, v in (session.get(FLOW_KEY) or {}).items() if k != made["state"]}
    session[FLOW_KEY] = dict(list(flows.items())[-4:]) | {made["state"]: iss}
    # A page that moves on by itself, not a redirect: after a password sign-in the
    # redirect would be part of the form's navigation, which the pages' form-action keeps
    # to this site; the EHR's authorization endpoint may be anywhere.
    return render_template("staff/smart.html", onward=made["url"])


@bp.get("/staff/smart/callback")
@login_required(*READERS, hide_as_404=True)
def callback():
    found = settings()
    if found is None:
        abort(404)
    flows = session.get(FLOW_KEY) or {}
    iss = flows.pop(str(request.args.get("state")), None) if isinstance(flows, dict) else None
    session[FLOW_KEY] = flows
    if iss is None:
        # Most often Back or a reload after a launch that opened its page: the EHR is
        # not at fault, the launch was used.
        return _refused("no launch in progress", LAUNCH_USED, 400)
    if _base(iss) not in found.issuers:  # removed from the allowed EHRs meanwhile
        return _refused("issuer not allowed", NOT_ALLOWED, 403)
    try:
        context = _launch_context(found, iss)
    except LaunchFailed as failure:
        return _refused(failure.reason, failure.message, 401)
    ids = f" (EHR {iss}, patient {context.patient}, encounter {context.encounter or '-'})"
    try:
        chart, day, undated = _chart_and_day(iss, context)
    except LaunchFailed as failure:
        return _refused(failure.reason, failure.message, 502, ids)
    if undated:
        ids = ids.removesuffix(")") + "; the encounter has no start: today's visits)"
    matches = [
        row
        for row in storage.visits_for_day(get_db(), day.isoformat())
        if storage.reference_key(row.visit.patient_ref) == storage.reference_key(chart)
        and row.visit.status != "cancelled"
    ]
    with storage.write(get_db()):
        audit(
            "smart_launch",
            visit_id=matches[0].visit.id if len(matches) == 1 else None,
            detail=f"{len(matches)} found{ids}",
        )
    if len(matches) == 1:
        return redirect(_page_of(matches[0].visit))
    choices = [
        {
            "visit": row.visit,
            "url": _page_of(row.visit),
            "time": format_time(row.visit.appointment_at, "short"),
            "psychiatrist_name": row.psychiatrist_name,
        }
        for row in matches
    ]
    return render_template(
        "staff/smart.html", choices=choices, day_label=format_date(day, "full"), chart=chart
    ), (200 if matches else 404)


def _page_of(visit) -> str:
    """The one page of a sent visit; before that, its invitation (with how far it got)."""
    if visit.status in SENT:
        return url_for("staff.summary_page", visit_id=visit.id)
    return url_for("staff.invitation", visit_id=visit.id)


SENT = ("submitted", "reviewed")


@dataclass(frozen=True)
class Context:
    patient: str
    encounter: str | None
    token: dict


def _launch_context(found: Settings, iss: str) -> Context:
    """The token and the launch context the EHR gave with it."""
    client = _client(found, iss)
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError, TypeError) as error:
        client.server_metadata.clear()
        raise LaunchFailed("EHR unreachable") from error
    issuer = metadata.get("issuer")
    if "iss" in request.args and issuer and request.args["iss"] != issuer:
        raise LaunchFailed("wrong issuer in the response")
    if "error" in request.args:
        raise LaunchFailed(f"EHR answered {error_code(request.args['error'])}")
    try:
        token = exchange_code(client, "EHR", "launch")
    except SignInFailed as failure:
        raise LaunchFailed(failure.reason) from failure
    patient = token.get("patient")
    if not isinstance(patient, str) or not FHIR_ID.match(patient):
        raise LaunchFailed("no patient in the launch context")
    encounter = token.get("encounter")
    if not (isinstance(encounter, str) and FHIR_ID.match(encounter)):
        encounter = _encounter_in(token.get("fhirContext"))
    return Context(patient=patient, encounter=encounter, token=token)


def _encounter_in(fhir_context) -> str | None:
    """An Encounter reference in `fhirContext` (SMART 2.2: a list of objects with a
    `reference`, a `canonical` or an `identifier`); everything else is ignored."""
    if not isinstance(fhir_context, list):
        return None
    for item in fhir_context:
        reference = item.get("reference") if isinstance(item, dict) else None
        if isinstance(reference, str) and reference.startswith("Encounter/"):
            found = reference.removeprefix("Encounter/")
            if FHIR_ID.match(found):
                return found
    return None


def _read(iss: str, path: str, token: dict) -> dict:
    """GET one resource; it must be a JSON object of the type and id asked for."""
    try:
        response = requests.get(
            f"{_base(iss)}/{path}",
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "Accept": "application/fhir+json",
            },
            timeout=settings().timeout,
        )
    except requests.RequestException as error:
        raise LaunchFailed("EHR unreachable") from error
    if response.status_code != 200:
        raise LaunchFailed(f"EHR answered {response.status_code} for {path.split('/')[0]}")
    kind, wanted = path.split("/")
    try:
        found = response.json()
    except ValueError as error:
        raise LaunchFailed(f"EHR sent no JSON for {kind}") from error
    if not isinstance(found, dict) or found.get("resourceType") != kind:
        raise LaunchFailed(f"EHR sent no {kind}")
    if found.get("id") != wanted:  # a read by id answers with that id (FHIR)
        raise LaunchFailed(f"EHR sent another {kind}")
    return found


def _chart_and_day(iss: str, context: Context) -> tuple[str, date, bool]:
    """The patient's chart number (their identifier in the clinic's system), the
    appointment day (the encounter's start, else today), and whether an encounter was
    given without a start that can be read (then today, and the audit says so). An
    encounter whose subject is another patient is a broken launch: nothing opens."""
    system = (clinic_settings()["chart_number_system"] or "").strip()
    if not system or not clinic_settings()["references_are_chart_numbers"]:
        raise LaunchFailed("no chart number system in Settings", NO_CHART_SYSTEM)
    patient = _read(iss, f"Patient/{context.patient}", context.token)
    identifiers = patient.get("identifier")
    charts = [
        ident["value"]
        for ident in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(ident, dict)
        and ident.get("system") == system
        and isinstance(ident.get("value"), str)
        and ident["value"].strip()
    ]
    if len(set(charts)) != 1:
        raise LaunchFailed(f"{len(set(charts))} chart numbers on the EHR's patient")
    today = now().date()
    if not context.encounter:
        return charts[0], today, False
    encounter = _read(iss, f"Encounter/{context.encounter}", context.token)
    if not _of_patient(encounter.get("subject"), context.patient):
        raise LaunchFailed("EHR's encounter is another patient's")
    period = encounter.get("period")
    start = period.get("start") if isinstance(period, dict) else None
    day = _clinic_day(start) if isinstance(start, str) else None
    return charts[0], day or today, day is None


def _of_patient(subject, patient: str) -> bool:
    """Whether an Encounter's subject is the launch's patient: its reference, relative
    or absolute, names Patient/<id>. Without a reference (an optional element, or an
    identifier only) there is nothing to contradict the launch."""
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return subject is None or isinstance(subject, dict)
    reference = reference.split("/_history/", 1)[0]  # a version of that patient is that patient
    wanted = f"Patient/{patient}"
    return reference == wanted or reference.endswith(f"/{wanted}")


def _clinic_day(start: str) -> date | None:
    """The clinic's day of a FHIR dateTime: a time with its offset is moved into the
    clinic's time zone first (an evening visit given in UTC is still that evening's)."""
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(start)
        if moment.tzinfo is None:
            return moment.date()
        zone = clinic_zone()
        return (moment.astimezone(zone) if zone else moment.astimezone()).date()
    with contextlib.suppress(ValueError):
        return date.fromisoformat(start[:10])
    return None
