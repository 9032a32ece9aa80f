"""Text messages (SMS) through the clinic's own gateway, with Python's urllib: the
gateway's settings as the admin stores them, a number as the front desk types it made
into E.164, one message sent, and what the gateway answered, in words an admin can act on.

The ``sms_mode`` setting picks one of three modes:

- ``none`` (the default): no text messages.
- ``email``: an e-mail-to-SMS gateway. ``sms_email_address`` is an address with
  ``{number}`` where the number goes, e.g. ``{number}@sms.example.net``. The number is put
  in as digits only, without the plus (``+15551234567`` gives
  ``15551234567@sms.example.net``), which is what most of these gateways want. This module
  only builds the address (``email_recipient``); the message goes out through the
  Outgoing mail relay (domain/mail.py).
- ``http``: one POST to ``sms_http_url`` (https://, or http:// on the clinic's own
  network) with the optional header line ``sms_http_auth`` ("Name: value") and a body
  built from the template ``sms_http_body``, sent as ``sms_http_content_type``: ``form``
  (application/x-www-form-urlencoded) or ``json`` (application/json). The template's
  placeholders are ``{to}`` (the number in E.164, with its plus), ``{body}`` (the message)
  and ``{from}`` (``sms_from``, a sender id or number, may be empty). Each value is escaped
  for the content type: url-encoded for form, a JSON string's inside for json (so in json
  a placeholder goes between quotes: ``{"to": "{to}", "text": "{body}"}``). Nothing else
  in the template is touched, and no other ``{...}`` is allowed (``template_problem``).

Twilio's Messages API, for example (its answer is "201 Created")::

    sms_mode               http
    sms_http_url           https://api.twilio.com/2010-04-01/Accounts/ACXXXX/Messages.json
    sms_http_auth          Authorization: Basic base64(AccountSID:AuthToken)
    sms_http_content_type  form
    sms_http_body          To={to}&From={from}&Body={body}
    sms_from               +15017122661 (a number of the Twilio account)

where base64(AccountSID:AuthToken) is what ``printf %s 'ACXXXX:token' | base64 -w0``
prints.

Like the mail relay: no request is needed (callers pass the settings), every socket step
gives up after ``TIMEOUT`` seconds (the host name's lookup is the system resolver's), and
a 3xx is not followed (a POST must not land somewhere else). The answer and every error
text name the gateway's host and the HTTP status only: never the number or the message
(patient data) nor the header's value (a secret), and nothing here is logged.
"""

from __future__ import annotations

import json
import re
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from patientapp.domain import mail

# The settings keys of the text message settings.
SMS_SETTINGS = (
    "sms_mode",
    "sms_email_address",
    "sms_http_url",
    "sms_http_auth",
    "sms_http_content_type",
    "sms_http_body",
    "sms_from",
)
MODES = ("none", "email", "http")
CONTENT_TYPES = {"form": "application/x-www-form-urlencoded", "json": "application/json"}
DEFAULT_MODE = "none"
DEFAULT_CONTENT_TYPE = "form"
TIMEOUT = 10  # seconds for each step with the gateway: connecting, sending, its answer
USER_AGENT = "patientapp"
# Headers the app sets itself (or http.client does): the header line may not replace them.
RESERVED_HEADERS = ("host", "content-type", "content-length", "transfer-encoding", "connection")

PHONE_FORMAT_ERROR = _l("Please enter the number with its country code, like +1 555 123 4567.")

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
PLACEHOLDER = re.compile(r"\{(to|body|from)\}")
# Anything that looks like a placeholder ({name}, { to }): a known one spelled exactly, or
# a mistake.
LOOKS_LIKE_PLACEHOLDER = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}")
# "(0)": the trunk prefix some countries write in international form ("+44 (0)20 ..."),
# never dialled from abroad.
TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")
PHONE_REST = re.compile(r"[0-9\s.()-]*")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
# The address once {number} is filled in: a plain local part, a domain with a dot.
ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`|~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
SAMPLE = {"to": "+15550000000", "body": 'x"\n', "from": "x"}  # for checking a JSON template


@dataclass(frozen=True, kw_only=True, slots=True)
class Gateway:
    """Where and how text messages leave, from the clinic's settings. ``mode`` is what the
    admin chose; ``configured`` says whether it has what it needs to send."""

    mode: str = DEFAULT_MODE
    email_address: str = ""
    url: str = ""
    auth: str = field(default="", repr=False)  # holds a secret: kept out of repr()
    content_type: str = DEFAULT_CONTENT_TYPE
    body: str = ""
    sender: str = ""

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Gateway:
        mode = str(settings.get("sms_mode") or DEFAULT_MODE)
        content_type = str(settings.get("sms_http_content_type") or DEFAULT_CONTENT_TYPE)
        return cls(
            mode=mode if mode in MODES else DEFAULT_MODE,
            email_address=str(settings.get("sms_email_address") or "").strip(),
            url=str(settings.get("sms_http_url") or "").strip(),
            auth=str(settings.get("sms_http_auth") or "").strip(),
            content_type=content_type if content_type in CONTENT_TYPES else DEFAULT_CONTENT_TYPE,
            body=str(settings.get("sms_http_body") or ""),
            sender=str(settings.get("sms_from") or "").strip(),
        )

    @property
    def configured(self) -> bool:
        """The mode is email or http and its settings are all there and valid."""
        if self.mode == "email":
            return _address_error(self.email_address) is None
        if self.mode == "http":
            return (
                _url_error(self.url) is None
                and _auth_error(self.auth) is None
                and self.content_type in CONTENT_TYPES
                and _template_error(self.body, self.content_type) is None
            )
        return False

    @property
    def host(self) -> str:
        """The HTTP gateway's host (and port when the URL gives one), for messages: never
        the path or the query, which may hold an account id or a key."""
        try:
            parts = urllib.parse.urlsplit(self.url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return ""
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{port}" if port else host

    @property
    def hostname(self) -> str:
        """The HTTP gateway's host name alone (what DNS is asked for)."""
        try:
            return urllib.parse.urlsplit(self.url).hostname or ""
        except ValueError:
            return ""


class TextError(Exception):
    """The gateway did not take the message; the text says why (never the number, the
    message or the header's value). ``permanent`` when sending it again as it is cannot
    help: a 4xx other than 408 and 429 (a wrong number, wrong credentials), or no gateway
    set up; a 3xx, a 5xx, a timeout or an unreachable gateway may pass."""

    def __init__(self, text: str, *, permanent: bool = False):
        super().__init__(text)
        self.permanent = permanent


# --- numbers ----------------------------------------------------------------------------


def normalise_phone(typed: str) -> str | None:
    """A number as typed ("+1 (555) 123-4567", "0044 20 7946 0958", "+33 6 12 34 56 78")
    in E.164 ("+15551234567"), or None when it is not one with its country code.

    It starts with + or 00; spaces, dashes, dots and parentheses are dropped, and so is a
    "(0)" ("+44 (0)20 7946 0958" is +442079460958); then 8 to 15 digits, the first not 0.
    Digits of any script (Arabic-Indic, full-width) count as digits.
    """
    text = unicodedata.normalize("NFKC", typed or "")
    text = "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)
    text = text.strip()
    if text.startswith("+"):
        rest = text[1:]
    elif text.startswith("00"):
        rest = text[2:]
    else:
        return None
    rest = TRUNK_ZERO.sub("", rest, count=1)
    if not PHONE_REST.fullmatch(rest):
        return None
    number = "+" + "".join(ch for ch in rest if ch.isdigit())
    return number if E164.fullmatch(number) else None


# --- checks for the admin's form (None: nothing wrong) ------------------------------------


def _template_error(template: str, content_type: str) -> tuple[str, str] | None:
    for match in LOOKS_LIKE_PLACEHOLDER.finditer(template):
        if not PLACEHOLDER.fullmatch(match.group()):
            return "unknown", match.group()
    if "{to}" not in template or "{body}" not in template:
        return "missing", ""
    if content_type == "json":
        try:
            json.loads(_fill(template, _escape_json, SAMPLE))
        except ValueError:
            return "json", ""
    elif "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
        return "stray", ""
    return None


def template_problem(template: str, content_type: str = DEFAULT_CONTENT_TYPE) -> str | None:
    """What is wrong with the HTTP body template, or None. It needs {to} and {body}, may
    have {from}, and nothing else in braces: for form no other brace at all, for json it
    must be valid JSON once filled in (each placeholder inside a string)."""
    error = _template_error(template, content_type)
    if error is None:
        return None
    kind, found = error
    if kind == "unknown":
        return gettext(
            "Unknown placeholder %(placeholder)s: use only {to}, {body} and {from}.",
            placeholder=found,
        )
    if kind == "missing":
        return gettext("The template needs {to} and {body}.")
    if kind == "json":
        return gettext(
            "The template is not valid JSON once filled in: put each placeholder inside "
            'quotes, e.g. "{to}".'
        )
    return gettext("A { or } that is not part of {to}, {body} or {from}: remove it.")


def _address_error(template: str) -> str | None:
    if template.count("{number}") != 1 or not ADDRESS.fullmatch(
        template.replace("{number}", "15550000000")
    ):
        return "address"
    return None


def address_problem(template: str) -> str | None:
    """What is wrong with the e-mail gateway's address template, or None: one {number} and
    otherwise a plain address."""
    if _address_error(template) is None:
        return None
    return gettext(
        "Write the address with {number} where the number goes, e.g. {number}@sms.example.net."
    )


def _url_error(url: str) -> str | None:
    if not url or "{" in url or "}" in url or any(ch.isspace() or ch < " " for ch in url):
        return "url"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return "url"
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        return "url"
    if "@" in parts.netloc:
        return "credentials"
    return None


def url_problem(url: str) -> str | None:
    """What is wrong with the HTTP gateway's address, or None."""
    error = _url_error(url)
    if error is None:
        return None
    if error == "credentials":
        return gettext("Put the sign-in in the header line, not in the address.")
    return gettext("Enter the gateway's full address, starting with https:// or http://.")


def _auth_error(line: str) -> tuple[str, str] | None:
    if not line.strip():
        return None  # the header line is optional
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name or not value or not (value.isascii() and value.isprintable()):
        return "format", ""
    if not HEADER_NAME.fullmatch(name):
        return "name", ""
    if name.lower() in RESERVED_HEADERS:
        return "reserved", name
    return None


def auth_problem(line: str) -> str | None:
    """What is wrong with the header line ("Name: value", optional), or None. The texts
    never repeat what was typed but a reserved header's name: it may hold the secret."""
    error = _auth_error(line)
    if error is None:
        return None
    kind, name = error
    if kind == "format":
        return gettext("Write the header as one line, Name: value, e.g. Authorization: Basic QUM…")
    if kind == "name":
        return gettext(
            "The header name may have only letters, digits and dashes, e.g. Authorization."
        )
    return gettext(
        "%(name)s is set by the app itself: use this line for the gateway's sign-in.", name=name
    )


# --- sending ------------------------------------------------------------------------------


def _escape_form(value: str) -> str:
    return urllib.parse.quote_plus(value)


def _escape_json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


ESCAPES: dict[str, Callable[[str], str]] = {"form": _escape_form, "json": _escape_json}


def _fill(template: str, escape: Callable[[str], str], values: Mapping[str, str]) -> str:
    """{to}, {body} and {from} replaced by their escaped values in one pass (a value that
    holds "{body}" stays as it is), everything else left as written."""
    return PLACEHOLDER.sub(lambda match: escape(values[match.group(1)]), template)


def render_body(template: str, content_type: str, *, to: str, body: str, sender: str = "") -> bytes:
    """The request body: the template with its placeholders filled in, escaped for the
    content type ("form" or "json"), in UTF-8."""
    values = {"to": to, "body": body, "from": sender}
    return _fill(template, ESCAPES[content_type], values).encode("utf-8")


def email_recipient(gateway: Gateway, number: str) -> str:
    """The e-mail gateway's address for an E.164 number: its digits, without the plus, in
    place of {number}. Raises TextError (permanent) when the e-mail gateway is not set up
    or the number is not in E.164."""
    _check(gateway, "email", number)
    return gateway.email_address.replace("{number}", number[1:])


def send_http(gateway: Gateway, to_e164: str, body: str, *, timeout: float = TIMEOUT) -> str:
    """POST one message to the HTTP gateway; its status line (e.g. "201 Created"), never
    what it answered in the body. Raises TextError with the reason when it is not taken."""
    _check(gateway, "http", to_e164)
    try:
        return _post(_request(gateway, to_e164, body), timeout)
    except Exception as error:  # every way a gateway can fail is reported, none crashes
        if isinstance(error, urllib.error.HTTPError):
            error.close()  # its unread answer
        text = problem(gateway, error, timeout, hide=_secrets(gateway, to_e164, body))
        raise TextError(text, permanent=_permanent(error)) from None


def _check(gateway: Gateway, mode: str, number: str) -> None:
    if gateway.mode != mode or not gateway.configured:
        raise TextError(gettext("Text messages are not set up."), permanent=True)
    if not E164.fullmatch(number or ""):
        raise TextError(gettext("The phone number is not in international format."), permanent=True)


def _request(gateway: Gateway, to: str, body: str) -> urllib.request.Request:
    headers = {"Content-Type": CONTENT_TYPES[gateway.content_type], "User-Agent": USER_AGENT}
    if gateway.auth:
        name, _colon, value = gateway.auth.partition(":")
        headers[name.strip()] = value.strip()
    data = render_body(gateway.body, gateway.content_type, to=to, body=body, sender=gateway.sender)
    # The URL's scheme is http or https (checked by Gateway.configured).
    return urllib.request.Request(gateway.url, data=data, headers=headers, method="POST")  # noqa: S310


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx comes back as an HTTPError instead of being followed (urllib would turn the
    POST into a GET, or repeat it at another host)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _post(request: urllib.request.Request, timeout: float) -> str:
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(request, timeout=timeout) as response:
        return status_line(response.status)


def status_line(code: int) -> str:
    """The code and its standard phrase, e.g. "201 Created" (not the gateway's own words,
    which could be anything)."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _permanent(error: BaseException) -> bool:
    """A 4xx will be the same next time, but for 408 (timeout) and 429 (too many)."""
    return (
        isinstance(error, urllib.error.HTTPError)
        and 400 <= error.code < 500
        and error.code not in (408, 429)
    )


def _secrets(gateway: Gateway, to: str, body: str) -> list[str]:
    """Every spelling of the number, the message and the header's value that could come
    back in an error's own text."""
    plain = [to, to[1:], body, gateway.auth.partition(":")[2].strip(), gateway.auth]
    return plain + [escape(value) for value in plain for escape in ESCAPES.values()]


def _hide(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def problem(
    gateway: Gateway, error: BaseException, timeout: float = TIMEOUT, *, hide: Iterable[str] = ()
) -> str:
    """What went wrong, in the current language: the gateway's host and the HTTP status,
    or the network's reason (with ``hide`` blanked out of it)."""
    where = gateway.host
    if isinstance(error, urllib.error.HTTPError):
        code, status = error.code, status_line(error.code)
        if 300 <= code < 400:
            return gettext(
                "The gateway %(gateway)s answered %(status)s, a redirect, which is not "
                "followed: enter the address it points to.",
                gateway=where,
                status=status,
            )
        if code in (401, 403):
            return gettext(
                "The gateway %(gateway)s refused the sign-in: %(status)s. Check the header line.",
                gateway=where,
                status=status,
            )
        if code in (408, 429):
            return gettext(
                "The gateway %(gateway)s is busy: %(status)s.", gateway=where, status=status
            )
        if 400 <= code < 500:
            return gettext(
                "The gateway %(gateway)s refused the message: %(status)s. Check the number "
                "and the settings.",
                gateway=where,
                status=status,
            )
        return gettext("The gateway %(gateway)s answered %(status)s.", gateway=where, status=status)
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason  # what urllib wrapped: refused, not found, timed out, TLS
    reached = mail.network_problem(error, where, gateway.hostname, timeout, _hide(str(error), hide))
    if reached:
        return reached
    detail = str(error)
    answer = _hide(f"{type(error).__name__}: {detail}" if detail else type(error).__name__, hide)
    return gettext("Sending through %(relay)s failed: %(answer)s", relay=where, answer=answer)
