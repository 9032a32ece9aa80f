"""Text messages (patientapp/domain/textmsg.py): numbers as the front desk types them,
the body template filled in and escaped for form and JSON, the admin's settings checked,
and one POST to a real HTTP server on loopback standing in for the gateway (what it
receives, and each way it can answer or fail), with no error text ever holding the
number, the message or the header's secret."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask_babel import force_locale

from patientapp.domain import textmsg
from patientapp.domain.textmsg import Gateway, TextError

NUMBER = "+15551234567"
SENDER = "+15017122661"
# &, =, quotes, a newline, an emoji and Arabic: everything that needs escaping somewhere.
BODY = 'Tom & Jerry = "friends"\nSee you at 10:30 🙂 مرحبا بك'
AUTH_VALUE = "Basic QUN0ZXN0OlplVGEtdG9rZW4tOWY0MQ=="
AUTH = f"Authorization: {AUTH_VALUE}"
PATH = "/2010-04-01/Accounts/ACXXXX/Messages.json"
FORM_TEMPLATE = "To={to}&From={from}&Body={body}"
JSON_TEMPLATE = '{"to": "{to}", "from": "{from}", "message": {"text": "{body}"}}'


@pytest.fixture
def ctx(app):
    """flask_babel's gettext as the server's loops have it: an app context and the clinic's
    language, no request (without force_locale the app's locale selector needs one)."""
    with app.app_context(), force_locale("en"):
        yield


def discreet(text: str) -> bool:
    """Nothing of the number, the message or the header's value."""
    secrets = [NUMBER, NUMBER[1:], "5551234567", BODY, "Jerry", "مرحبا", "🙂"]
    secrets += [AUTH_VALUE, "QUN0ZXN0", urllib.parse.quote_plus(NUMBER)]
    return not any(secret in text for secret in secrets)


def http_gateway(url: str, **settings: str) -> Gateway:
    return Gateway.from_settings(
        {
            "sms_mode": "http",
            "sms_http_url": url,
            "sms_http_auth": AUTH,
            "sms_http_content_type": "form",
            "sms_http_body": FORM_TEMPLATE,
            "sms_from": SENDER,
            **settings,
        }
    )


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+1 (555) 123-4567", "+15551234567"),
        ("0044 20 7946 0958", "+442079460958"),
        ("00 44 20 7946 0958", "+442079460958"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+49.30.1234567", "+49301234567"),
        ("  +1-555-123-4567\t", "+15551234567"),
        ("+1\u00a0555\u00a0123\u00a04567", "+15551234567"),  # no-break spaces, pasted
        ("+44 (0)20 7946 0958", "+442079460958"),  # the trunk 0 is not dialled from abroad
        ("+٩٧١ ٥٠ ١٢٣ ٤٥٦٧", "+971501234567"),  # noqa: RUF001 - Arabic-Indic digits
        ("＋８６ １３８ ００１３ ８０００", "+8613800138000"),  # noqa: RUF001 - full-width
        ("+1 555 1234", "+15551234"),  # 8 digits: the fewest
        ("+123 456 789 012 345", "+123456789012345"),  # 15 digits: the most
    ],
)
def test_normalise_phone_accepts_numbers_with_their_country_code(typed, e164):
    assert textmsg.normalise_phone(typed) == e164


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "555 123 4567",  # no country code
        "(555) 123-4567",
        "1-555-123-4567",
        "0 044 20 7946 0958",
        "+1 555 123",  # 7 digits
        "+1234 5678 9012 3456",  # 16 digits
        "+0 555 123 4567",  # no country code starts with 0
        "000 44 20 7946 0958",
        "++1 555 123 4567",
        "00+44 20 7946 0958",
        "+1 555 CALL NOW",
        "+1 555 123 4567 ext 2",
        "+1 555 123 4567#",
        "+1/555/123/4567",
        "tel:+15551234567",
        "+",
    ],
)
def test_normalise_phone_refuses_anything_else(typed):
    assert textmsg.normalise_phone(typed) is None


def test_the_phone_format_error_reads_as_written(ctx):
    assert str(textmsg.PHONE_FORMAT_ERROR) == (
        "Please enter the number with its country code, like +1 555 123 4567."
    )


# --- the body template --------------------------------------------------------------------


def test_a_form_body_is_url_encoded_and_parses_back():
    data = textmsg.render_body(FORM_TEMPLATE, "form", to=NUMBER, body=BODY, sender=SENDER)
    assert data.isascii()
    assert b"To=%2B15551234567&" in data  # the plus is encoded, not a space
    assert urllib.parse.parse_qs(data.decode(), strict_parsing=True) == {
        "To": [NUMBER],
        "From": [SENDER],
        "Body": [BODY],
    }


def test_a_json_body_is_escaped_and_parses_back():
    data = textmsg.render_body(JSON_TEMPLATE, "json", to=NUMBER, body=BODY, sender=SENDER)
    assert "🙂 مرحبا".encode() in data  # UTF-8 as it is, not \u escapes
    assert json.loads(data.decode("utf-8")) == {
        "to": NUMBER,
        "from": SENDER,
        "message": {"text": BODY},
    }


@pytest.mark.parametrize("content_type", ["form", "json"])
def test_values_are_filled_in_once_and_an_empty_sender_is_empty(content_type):
    """A message that holds "{to}" keeps it: values are never filled in again."""
    template = FORM_TEMPLATE if content_type == "form" else JSON_TEMPLATE
    data = textmsg.render_body(template, content_type, to=NUMBER, body="{to} {from} {x}")
    if content_type == "form":
        parsed = urllib.parse.parse_qs(data.decode(), keep_blank_values=True)
        assert parsed["Body"] == ["{to} {from} {x}"]
        assert parsed["From"] == [""]
    else:
        parsed = json.loads(data)
        assert parsed["message"]["text"] == "{to} {from} {x}"
        assert parsed["from"] == ""


@pytest.mark.parametrize(
    ("template", "content_type", "problem"),
    [
        (FORM_TEMPLATE, "form", None),
        ("to={to}&text={body}", "form", None),  # {from} is optional
        ("Body={body}&To={to}&To2={to}", "form", None),
        (JSON_TEMPLATE, "json", None),
        ('{"to": ["{to}"], "text": "{body}", "flash": false}', "json", None),
        ('{"to": "{to}", "text": "Clinic: {body}"}', "json", None),
        ("To={to}&Body={text}", "form", "Unknown placeholder {text}: use only {to}, {body}"),
        ("To={To}&Body={body}", "form", "Unknown placeholder {To}:"),
        ("To={ to }&Body={body}", "form", "Unknown placeholder { to }:"),
        ('{"to": "{to}", "text": "{message}"}', "json", "Unknown placeholder {message}:"),
        ("", "form", "The template needs {to} and {body}."),
        ("To={to}&Body=hello", "form", "The template needs {to} and {body}."),
        ('{"text": "{body}"}', "json", "The template needs {to} and {body}."),
        ("To={to}&Body={body}}", "form", "A { or } that is not part of {to}, {body} or {from}"),
        ("To={{to}}&Body={body}", "form", "A { or } that is not part of"),
        ("To={to}&Body={body}&X={", "form", "A { or } that is not part of"),
        (JSON_TEMPLATE, "form", "A { or } that is not part of"),  # JSON sent as a form
        ('{"to": {to}, "text": "{body}"}', "json", "not valid JSON once filled in"),
        ('{"to": "{to}", "text": {body}}', "json", "not valid JSON once filled in"),
        ('{"to": "{to}", "text": "{body}"', "json", "not valid JSON once filled in"),
        ('{"to": "{to}", "text": "{body}"}}', "json", "not valid JSON once filled in"),
        (FORM_TEMPLATE, "json", "not valid JSON once filled in"),
    ],
)
def test_template_problem(ctx, template, content_type, problem):
    found = textmsg.template_problem(template, content_type)
    if problem is None:
        assert found is None
    else:
        assert problem in found


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", None),  # optional
        (AUTH, None),
        ("  Authorization :  Bearer abc.def  ", None),
        ("X-API-Key: part1:part2", None),  # split at the first colon only
        ("Authorization Basic QUN0ZXN0", "Write the header as one line, Name: value"),
        ("Authorization:", "Write the header as one line"),
        (": Basic QUN0ZXN0", "Write the header as one line"),
        ("Authorization: Basic QUN0\r\nX-Evil: 1", "Write the header as one line"),
        ("Authorization: Basic clé", "Write the header as one line"),
        ("Auth orization: Basic QUN0ZXN0", "The header name may have only letters, digits"),
        ("Authorization Bearer s3cr3t-t0ken:x", "The header name may have only letters"),
        ("X_Key: 1", "The header name may have only letters"),
        ("Content-Type: text/plain", "Content-Type is set by the app itself"),
        ("host: evil.example", "host is set by the app itself"),
    ],
)
def test_auth_problem(ctx, line, problem):
    found = textmsg.auth_problem(line)
    if problem is None:
        assert found is None
    else:
        assert problem in found
        assert "QUN0" not in found
        assert "s3cr3t" not in found


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.twilio.com/2010-04-01/Accounts/ACXXXX/Messages.json", None),
        ("http://10.0.0.5:8080/sms?account=7", None),
        ("HTTPS://[2001:db8::1]:8443/send", None),
        ("", "Enter the gateway's full address"),
        ("api.twilio.com/send", "Enter the gateway's full address"),
        ("ftp://gateway.example/send", "Enter the gateway's full address"),
        ("file:///etc/passwd", "Enter the gateway's full address"),
        ("https://", "Enter the gateway's full address"),
        ("https://gateway.example:99999/", "Enter the gateway's full address"),
        ("https://gateway.example/send/{to}", "Enter the gateway's full address"),
        ("https://gateway.example/a b", "Enter the gateway's full address"),
        ("https://user:secret@gateway.example/", "Put the sign-in in the header line"),
    ],
)
def test_url_problem(ctx, url, problem):
    found = textmsg.url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert problem in found
        assert "secret" not in found


@pytest.mark.parametrize(
    ("template", "good"),
    [
        ("{number}@sms.example.net", True),
        ("sms+{number}@gateway.example.org", True),
        ("sms.example.net", False),
        ("{number}@{number}.example.net", False),
        ("{number}", False),
        ("{number}@localhost", False),
        ("{num}@sms.example.net", False),
        ("{number} @sms.example.net", False),
        ("{number}@sms.example.net, boss@clinic.example", False),
        ("{number}@sms.example.net\nBcc: x@y.example", False),
    ],
)
def test_address_problem(ctx, template, good):
    found = textmsg.address_problem(template)
    if good:
        assert found is None
    else:
        assert found == (
            "Write the address with {number} where the number goes, e.g. {number}@sms.example.net."
        )


# --- settings -----------------------------------------------------------------------------


def test_nothing_is_set_up_by_default():
    gateway = Gateway.from_settings({})
    assert gateway.mode == "none"
    assert not gateway.configured
    assert not Gateway.from_settings({"sms_mode": "pigeon"}).configured
    assert Gateway.from_settings({"sms_mode": "pigeon"}).mode == "none"


def test_the_twilio_example_is_configured_and_keeps_its_secret_out_of_repr():
    gateway = http_gateway("https://api.twilio.com" + PATH)
    assert gateway.configured
    assert gateway.mode == "http"
    assert gateway.host == "api.twilio.com"
    assert AUTH_VALUE not in repr(gateway)


def test_from_settings_reads_every_key_and_falls_back_to_form():
    settings = dict.fromkeys(textmsg.SMS_SETTINGS, "")
    settings |= {
        "sms_mode": "http",
        "sms_http_url": " https://gateway.example/send ",
        "sms_http_auth": f" {AUTH} ",
        "sms_http_content_type": "xml",
        "sms_http_body": FORM_TEMPLATE,
        "sms_from": " Clinic ",
        "sms_email_address": "{number}@sms.example.net",
    }
    gateway = Gateway.from_settings(settings)
    assert (gateway.url, gateway.auth, gateway.sender) == (
        "https://gateway.example/send",
        AUTH,
        "Clinic",
    )
    assert gateway.content_type == "form"
    assert gateway.configured


@pytest.mark.parametrize(
    "change",
    [
        {"sms_http_url": ""},
        {"sms_http_url": "ftp://gateway.example/"},
        {"sms_http_auth": "no colon here"},
        {"sms_http_body": "To={to}"},
        {"sms_http_content_type": "json"},  # the form template is not JSON
    ],
)
def test_an_http_gateway_with_a_wrong_setting_is_not_configured(change):
    assert not http_gateway("https://gateway.example/send", **change).configured


def test_an_http_gateway_without_a_header_line_is_configured():
    assert http_gateway("https://gateway.example/send", sms_http_auth="").configured


@pytest.mark.parametrize(
    ("url", "host", "hostname"),
    [
        ("https://gateway.example/send?key=k3y", "gateway.example", "gateway.example"),
        ("http://10.0.0.5:8080/sms", "10.0.0.5:8080", "10.0.0.5"),
        ("https://[2001:db8::1]:8443/send", "[2001:db8::1]:8443", "2001:db8::1"),
        ("https://gateway.example:99999/", "", "gateway.example"),
        ("https://[2001:db8::1/", "", ""),
    ],
)
def test_messages_name_the_host_never_the_path_or_query(url, host, hostname):
    gateway = Gateway(mode="http", url=url)
    assert (gateway.host, gateway.hostname) == (host, hostname)


def test_the_email_gateway_puts_the_digits_without_the_plus(ctx):
    gateway = Gateway.from_settings(
        {"sms_mode": "email", "sms_email_address": "{number}@sms.example.net"}
    )
    assert gateway.configured
    assert textmsg.email_recipient(gateway, NUMBER) == "15551234567@sms.example.net"
    with pytest.raises(TextError) as raised:
        textmsg.email_recipient(gateway, "5551234567")
    assert raised.value.permanent
    assert str(raised.value) == "The phone number is not in international format."
    with pytest.raises(TextError, match=r"^Text messages are not set up\.$") as raised:
        textmsg.email_recipient(http_gateway("https://gateway.example/"), NUMBER)
    assert raised.value.permanent


def test_text_error_is_not_permanent_unless_said():
    assert not TextError("x").permanent
    assert TextError("x", permanent=True).permanent
    assert str(TextError("why")) == "why"


def test_status_line():
    assert textmsg.status_line(201) == "201 Created"
    assert textmsg.status_line(429) == "429 Too Many Requests"
    assert textmsg.status_line(299) == "299"


# --- a real HTTP server as the gateway ----------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class GatewayHandler(BaseHTTPRequestHandler):
    """Keeps every request and answers with the server's status; its answer echoes the
    number and the message, which must never come back from send_http."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(
            Received(self.command, self.path, headers, self.rfile.read(length))
        )
        answer = json.dumps({"to": NUMBER, "body": BODY, "status": "queued"}).encode()
        self.send_response(self.server.status)
        if 300 <= self.server.status < 400:
            self.send_header("Location", "/followed")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST  # a followed redirect would show up as a second request

    def log_message(self, format, *args):  # quiet
        pass


class FakeGateway(ThreadingHTTPServer):
    received: list[Received]
    status: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{PATH}"

    @property
    def where(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server():
    httpd = FakeGateway(("127.0.0.1", 0), GatewayHandler)
    httpd.received, httpd.status = [], 201
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_form_message_reaches_the_gateway(ctx, server, caplog):
    caplog.set_level(logging.DEBUG)
    answer = textmsg.send_http(http_gateway(server.url), NUMBER, BODY)
    assert answer == "201 Created"
    [got] = server.received
    assert (got.method, got.path) == ("POST", PATH)
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert got.headers["authorization"] == AUTH_VALUE
    assert got.headers["user-agent"] == "patientapp"
    assert urllib.parse.parse_qs(got.body.decode("ascii"), strict_parsing=True) == {
        "To": [NUMBER],
        "From": [SENDER],
        "Body": [BODY],
    }
    assert all(discreet(record.getMessage()) for record in caplog.records)


def test_a_json_message_reaches_the_gateway(ctx, server):
    gateway = http_gateway(
        server.url,
        sms_http_content_type="json",
        sms_http_body=JSON_TEMPLATE,
        sms_http_auth="X-API-Key: key:with:colons",
    )
    assert textmsg.send_http(gateway, NUMBER, BODY) == "201 Created"
    [got] = server.received
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-api-key"] == "key:with:colons"
    assert "authorization" not in got.headers
    assert json.loads(got.body.decode("utf-8")) == {
        "to": NUMBER,
        "from": SENDER,
        "message": {"text": BODY},
    }


def test_without_a_header_line_no_authorization_is_sent(ctx, server):
    assert textmsg.send_http(http_gateway(server.url, sms_http_auth=""), NUMBER, BODY)
    [got] = server.received
    assert "authorization" not in got.headers


@pytest.mark.parametrize(("status", "line"), [(200, "200 OK"), (202, "202 Accepted"), (299, "299")])
def test_every_2xx_is_taken_with_its_status_line_only(ctx, server, status, line):
    server.status = status
    assert textmsg.send_http(http_gateway(server.url), NUMBER, BODY) == line


@pytest.mark.parametrize(
    ("status", "permanent", "words"),
    [
        (400, True, "refused the message: 400 Bad Request. Check the number"),
        (404, True, "refused the message: 404 Not Found"),
        (422, True, "refused the message: 422 Unprocessable"),
        (401, True, "refused the sign-in: 401 Unauthorized. Check the header line."),
        (403, True, "refused the sign-in: 403 Forbidden"),
        (408, False, "is busy: 408 Request Timeout."),
        (429, False, "is busy: 429 Too Many Requests."),
        (500, False, "answered 500 Internal Server Error."),
        (503, False, "answered 503 Service Unavailable."),
        (301, False, "answered 301 Moved Permanently, a redirect, which is not followed"),
        (302, False, "answered 302 Found, a redirect"),
        (303, False, "answered 303 See Other, a redirect"),
        (307, False, "answered 307 Temporary Redirect, a redirect"),
        (308, False, "answered 308 Permanent Redirect, a redirect"),
    ],
)
def test_a_refusal_says_why_and_whether_to_try_again(ctx, server, status, permanent, words):
    server.status = status
    with pytest.raises(TextError) as raised:
        textmsg.send_http(http_gateway(server.url), NUMBER, BODY)
    text = str(raised.value)
    assert text.startswith(f"The gateway {server.where} ")
    assert words in text
    assert raised.value.permanent is permanent
    assert discreet(text)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert [got.method for got in server.received] == ["POST"]  # no redirect followed


@pytest.fixture
def silent_gateway():
    """A socket that accepts the connection, then says nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)
    done = threading.Event()

    def hold():
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        with connection:
            done.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    listener.close()


def test_a_gateway_that_never_answers_times_out_for_now(ctx, silent_gateway):
    gateway = http_gateway(f"http://127.0.0.1:{silent_gateway}/send")
    started = time.monotonic()
    with pytest.raises(TextError) as raised:
        textmsg.send_http(gateway, NUMBER, BODY, timeout=0.5)
    assert time.monotonic() - started < 5
    assert str(raised.value) == f"No answer from 127.0.0.1:{silent_gateway} within 0.5 seconds."
    assert not raised.value.permanent


def test_a_closed_port_is_refused_for_now(ctx):
    port = free_port()
    with pytest.raises(TextError) as raised:
        textmsg.send_http(http_gateway(f"http://127.0.0.1:{port}/send"), NUMBER, BODY)
    assert str(raised.value).startswith(f"Connection refused by 127.0.0.1:{port}: nothing is")
    assert not raised.value.permanent


def test_an_unknown_host_is_not_found_for_now(ctx, monkeypatch):
    def not_found(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", not_found)
    with pytest.raises(TextError) as raised:
        textmsg.send_http(http_gateway("https://gateway.invalid:8443/send"), NUMBER, BODY)
    assert str(raised.value) == "The host name gateway.invalid was not found."
    assert not raised.value.permanent


def test_tls_to_a_plain_http_server_fails_for_now(ctx, server):
    url = server.url.replace("http://", "https://")
    with pytest.raises(TextError) as raised:
        textmsg.send_http(http_gateway(url), NUMBER, BODY)
    assert str(raised.value).startswith(f"The secure connection to {server.where} failed: ")
    assert not raised.value.permanent
    assert discreet(str(raised.value))
    assert server.received == []


@pytest.fixture
def hang_up_gateway():
    """A socket that accepts the connection and closes it without a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def hang_up():
        try:
            connection, _address = listener.accept()
        except OSError:
            return
        connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    thread.join()
    listener.close()


def test_a_gateway_that_hangs_up_fails_for_now(ctx, hang_up_gateway):
    gateway = http_gateway(f"http://127.0.0.1:{hang_up_gateway}/send")
    with pytest.raises(TextError) as raised:
        textmsg.send_http(gateway, NUMBER, BODY, timeout=5)
    assert str(raised.value).startswith(f"Sending through 127.0.0.1:{hang_up_gateway} failed: ")
    assert not raised.value.permanent


@pytest.mark.parametrize("content_type", ["form", "json"])
def test_an_error_that_repeats_the_request_has_it_blanked_out(ctx, monkeypatch, content_type):
    """Whatever a failure's own text holds (here the whole request), the number, the
    message and the header's value never reach the page or the audit log."""

    def echo(request, timeout):
        raise ValueError(f"{request.data.decode()} {request.headers}")

    monkeypatch.setattr(textmsg, "_post", echo)
    template = FORM_TEMPLATE if content_type == "form" else JSON_TEMPLATE
    gateway = http_gateway(
        "https://gateway.example/send", sms_http_content_type=content_type, sms_http_body=template
    )
    with pytest.raises(TextError) as raised:
        textmsg.send_http(gateway, NUMBER, BODY)
    text = str(raised.value)
    assert text.startswith("Sending through gateway.example failed: ValueError: ")
    assert "********" in text
    assert discreet(text)
    assert not raised.value.permanent


def test_nothing_is_sent_without_a_gateway_or_with_a_wrong_number(ctx, server):
    email = Gateway.from_settings({"sms_mode": "email", "sms_email_address": "{number}@x.example"})
    for gateway in (Gateway(), email, http_gateway("")):
        with pytest.raises(TextError, match=r"^Text messages are not set up\.$") as raised:
            textmsg.send_http(gateway, NUMBER, BODY)
        assert raised.value.permanent
    for wrong in ("15551234567", "+1 555 123 4567", ""):
        with pytest.raises(TextError) as raised:
            textmsg.send_http(http_gateway(server.url), wrong, BODY)
        assert str(raised.value) == "The phone number is not in international format."
        assert raised.value.permanent
    assert server.received == []


def test_the_texts_shared_with_mail_are_translated(ctx):
    port = free_port()
    with force_locale("fr"), pytest.raises(TextError) as raised:
        textmsg.send_http(http_gateway(f"http://127.0.0.1:{port}/send"), NUMBER, BODY)
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert not str(raised.value).startswith("Connection refused")
