"""A real nginx in front of a real `flask serve`, configured as README shows: the
sign-in limits count each real client, a forged X-Forwarded-For counts for nothing, and
links never carry a forged Host."""

from __future__ import annotations

import contextlib
import datetime
import gzip
import http.client
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.ops.test_server import ROOT, free_port, running, serving

FLASK = [sys.executable, "-m", "flask", "--app", "app"]
BASE_URL = "https://reflect.clinic.example"
# The proxy part of README's nginx example, word for word (test_readme_shows_it checks).
PROXY_BLOCK = """\
    location / {
        gzip off;
        proxy_pass http://127.0.0.1:8000;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
    }
"""
# README's whole server block, as a clinic copies it: HTTPS on 443 (here a loopback port
# and a certificate made for the test). Found on a walk: the block did not load on
# Debian 12's nginx (1.22 has no `http2 on;`), and behind it no form could be sent.
SERVER_BLOCK = (
    """\
# A patient's link (/v/...), the first admin's (/staff/setup/...) and an account's link
# to the sign-in service (/staff/link/...) are secrets in the path: the access log keeps
# the path without them, and never a query string.
map $uri $patientapp_logged_path {
    ~^/v/            /v/-;
    ~^/staff/setup/  /staff/setup/-;
    ~^/staff/link/   /staff/link/-;
    default          $uri;
}
log_format patientapp '$remote_addr [$time_local] "$request_method $patientapp_logged_path" $status $body_bytes_sent $request_time';

server {
    listen 443 ssl http2;
    server_name reflect.clinic.example;
    ssl_certificate     /etc/letsencrypt/live/reflect.clinic.example/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/reflect.clinic.example/privkey.pem;
    access_log /var/log/nginx/patientapp.access.log patientapp;
    client_max_body_size 128k;
    add_header Strict-Transport-Security "max-age=31536000" always;
    add_header Permissions-Policy "camera=(), microphone=(), geolocation=(), interest-cohort=()" always;

"""  # noqa: E501 (README's line)
    + PROXY_BLOCK
    + "}\n"
)
CONFIG = """\
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    gzip on;  # as Debian's packaged nginx.conf has it; the block turns it off
    gzip_proxied any;
    gzip_types text/css application/javascript application/json;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{server}}}
"""
# A client that takes the test's own certificate (made just now, for this nginx only).
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        reason = "nginx is not installed (Debian: apt-get install nginx)"
        if os.environ.get("PATIENTAPP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; PATIENTAPP_REQUIRE_BROWSER=1 makes that a failure")
        pytest.skip(reason)
    return found


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    made = ("-subj", "/CN=reflect.clinic.example", "-keyout", str(key), "-out", str(cert))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *made],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.contextmanager
def _nginx_in_front(tmp_path: Path, app_port: int):
    port = free_port()
    cert, key = _certificate(tmp_path)
    server = (
        SERVER_BLOCK.replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")
        .replace("listen 443 ", f"listen 127.0.0.1:{port} ")
        .replace("/etc/letsencrypt/live/reflect.clinic.example/fullchain.pem", str(cert))
        .replace("/etc/letsencrypt/live/reflect.clinic.example/privkey.pem", str(key))
        .replace("/var/log/nginx/patientapp.access.log", str(tmp_path / "access.log"))
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(CONFIG.format(tmp=tmp_path, server=server))
    directives = f"daemon off; master_process off; pid {tmp_path}/nginx.pid; "
    directives += f"error_log {tmp_path}/nginx-error.log;"
    command = [_nginx(), "-p", str(tmp_path), "-c", str(conf), "-g", directives]
    with running(command, port, tmp_path / "nginx.log"):
        yield port


class Browser:
    """One client at its own loopback address, keeping its cookie."""

    def __init__(self, port: int, source: str, headers: dict | None = None):
        self.port, self.source, self.headers = port, source, headers or {}
        self.cookies: dict[str, str] = {}  # by name: a sign-in sets two (session, device)

    def request(self, method: str, path: str, form: dict | None = None):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=10, source_address=(self.source, 0), context=TLS
        )
        # As a browser sends it: the host it opened, and for a form, as the app's
        # Referrer-Policy (no-referrer) makes Chromium send it, no Referer and Origin null.
        headers = {"Host": "reflect.clinic.example", **self.headers}
        if method == "POST":
            headers["Origin"] = "null"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for cookie in response.headers.get_all("Set-Cookie") or ():
                name, _, value = cookie.split(";", 1)[0].partition("=")
                self.cookies[name.strip()] = value
            return response.status, response.getheader("Location"), response.read().decode()
        finally:
            connection.close()

    def post_form(self, path: str, form: dict):
        page = self.request("GET", path)[2]
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        return self.request("POST", path, {"csrf_token": token, **form})

    def sign_in(self, password: str, email: str = "desk@example.org") -> int:
        form = {"email": email, "password": password}
        return self.post_form("/staff/login", form)[0]


@pytest.fixture
def behind_nginx(tmp_path):
    env = {"PATIENTAPP_TRUSTED_PROXY": "127.0.0.1", "PATIENTAPP_BASE_URL": BASE_URL}
    environ = {**os.environ, "PATIENTAPP_INSTANCE": str(tmp_path / "instance")}
    subprocess.run(
        [*FLASK, "create-user", "--role", "frontdesk", "desk@example.org"],
        input="correct horse battery\n",
        text=True,
        cwd=ROOT,
        env=environ,
        check=True,
        capture_output=True,
    )
    with serving(tmp_path, env) as app_port, _nginx_in_front(tmp_path, app_port) as port:
        yield port


def test_sign_in_limits_count_the_real_client_not_a_forged_header(behind_nginx):
    stranger = Browser(behind_nginx, "127.0.0.2", {"X-Forwarded-For": "127.0.0.3"})
    for n in range(20):  # guesses at many accounts: only the per-client limit applies
        assert stranger.sign_in("a wrong guess", f"guess{n}@example.org") == 401
    assert stranger.sign_in("correct horse battery") == 401  # this client is locked
    # The address the stranger forged, and every other client, still signs in.
    assert Browser(behind_nginx, "127.0.0.3").sign_in("correct horse battery") == 302
    assert Browser(behind_nginx, "127.0.0.4").sign_in("correct horse battery") == 302


def test_links_never_carry_a_forged_host(behind_nginx):
    desk = Browser(behind_nginx, "127.0.0.5", {"Host": "evil.example"})
    assert desk.sign_in("correct horse battery") == 302
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    form = {"patient_ref": "RB-9", "day": tomorrow, "time": "14:30"}
    form.update(psychiatrist="0", language="")
    status, location, _ = desk.post_form("/staff/invitations/new", form)
    assert status == 302
    html = desk.request("GET", urllib.parse.urlsplit(location).path)[2]
    assert f'href="{BASE_URL}/v/' in html
    assert "evil.example" not in html


def test_the_log_map_hides_every_route_with_a_secret_in_its_path(app):
    """Found on a second reading: the map missed /staff/link/<token>. Every route that
    takes a token in its path must have its prefix masked."""
    prefixes = {
        rule.rule.split("<token:", 1)[0]
        for rule in app.url_map.iter_rules()
        if "<token:" in rule.rule
    }
    assert prefixes >= {"/v/", "/staff/setup/", "/staff/link/"}
    for prefix in prefixes:
        assert f"~^{prefix} " in SERVER_BLOCK and f" {prefix}-;" in SERVER_BLOCK, prefix


def test_readme_shows_the_tested_proxy_block():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert PROXY_BLOCK in readme and SERVER_BLOCK in readme


def test_a_patient_starts_and_staff_sign_in_over_https_behind_the_proxy(behind_nginx, tmp_path):
    """Found on a walk: over README's HTTPS proxy, Start on the welcome page said "This
    page was open too long" and every sign-in "This form expired": the form check wanted a
    Referer, which the app's Referrer-Policy tells browsers never to send."""
    desk = Browser(behind_nginx, "127.0.0.6")
    assert desk.sign_in("correct horse battery") == 302
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    form = {"patient_ref": "RB-10", "day": tomorrow, "time": "09:30"}
    form.update(psychiatrist="0", language="")
    # Without the check on the Referer, the form's token still stops a forged form: one
    # without a token, or with another person's, is refused over HTTPS too.
    assert desk.request("POST", "/staff/invitations/new", form)[0] == 400
    stranger = Browser(behind_nginx, "127.0.0.8")
    page = stranger.request("GET", "/staff/login")[2]
    theirs = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert desk.request("POST", "/staff/invitations/new", {**form, "csrf_token": theirs})[0] == 400
    status, location, _ = desk.post_form("/staff/invitations/new", form)
    assert status == 302
    html = desk.request("GET", urllib.parse.urlsplit(location).path)[2]
    link = re.search(r'href="' + re.escape(BASE_URL) + r'(/v/[^"]+)"', html).group(1)

    patient = Browser(behind_nginx, "127.0.0.7")
    status, location, _ = patient.request("GET", link)
    assert status == 302 and urllib.parse.urlsplit(location).path == "/welcome"
    status, location, _ = patient.post_form("/welcome", {})
    assert status == 302 and urllib.parse.urlsplit(location).path == "/step/1"
    assert "How are you feeling" in patient.request("GET", "/step/1")[2]

    # Found on an IT walk: nginx's default log kept every patient's link. README's block
    # logs each request without it.
    token = link.removeprefix("/v/")
    log = (tmp_path / "access.log").read_text(encoding="utf-8")
    assert '"GET /v/-" 302' in log and '"POST /welcome" 302' in log
    assert token not in log and token[:12] not in log


def _get(port: int, path: str, headers: dict):
    """(status, headers (any case), body)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=TLS)
    try:
        connection.request("GET", path, headers={"Host": "reflect.clinic.example", **headers})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_the_apps_gzip_passes_through_the_proxy(behind_nginx):
    """README's block needs no gzip setting: nginx hands the app's gzip on as it is (a
    page with its length, a stylesheet chunked), and identity to a client without gzip."""
    gzip_ok = {"Accept-Encoding": "gzip"}
    status, headers, body = _get(behind_nginx, "/start", gzip_ok)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    page = gzip.decompress(body).decode()
    assert page.startswith("<!doctype html>")
    status, headers, plain = _get(behind_nginx, "/start", {})
    assert status == 200 and "Content-Encoding" not in headers
    assert plain.startswith(b"<!doctype html>") and len(body) < len(plain) / 2
    css = re.search(r'href="(/static/app\.css\?v=[^"]+)"', page).group(1)
    status, headers, body = _get(behind_nginx, css, gzip_ok)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "max-age=86400" in headers["Cache-Control"]
    assert b".review-section" in gzip.decompress(body)
    status, headers, _ = _get(behind_nginx, css, {**gzip_ok, "If-None-Match": headers["ETag"]})
    assert status == 304


def test_the_proxy_never_compresses_the_staff_side(behind_nginx):
    """The app leaves the staff pages uncompressed (SECURITY.md, BREACH); the block's
    `gzip off;` keeps a proxy with gzip on from undoing that."""
    status, headers, body = _get(behind_nginx, "/staff/login", {"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers
    assert body.startswith(b"<!doctype html>")
