"""A real OpenID Provider on loopback (tests/oidc_provider/server.mjs: panva's
oidc-provider, pinned in its package-lock.json, run by Debian's node), and a person
signing in on its own login page over HTTP, as their browser would.

What the provider stands in for is said in server.mjs: any password works for a listed
account, and an account's "amr" is what its second factor would have given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

SERVER = Path(__file__).resolve().parents[1] / "oidc_provider" / "server.mjs"
CLIENT_ID = "patientapp-staff"
CLIENT_SECRET = "a client secret the provider and the app share"
CALLBACK = "/staff/login/provider/callback"
SIGNED_OUT = "/staff/signed-out"
# The app's client at the stand-in EHR, and where the EHR sends the browser back.
SMART_CLIENT_ID = "patientapp-one-page"
SMART_CLIENT_SECRET = "the app's secret at the EHR"
SMART_CALLBACK = "/staff/smart/callback"
CALLBACKS = (CALLBACK, SMART_CALLBACK)

ACCOUNTS = {
    "ada": {"email": "ada@example.org", "email_verified": True, "name": "Dr. Ada Lee"},
    "bo": {"email": "bo@example.org", "email_verified": False, "name": "Bo Desk"},
    "cy": {
        "email": "cy@example.org",
        "email_verified": True,
        "name": "Cy Admin",
        "amr": ["pwd", "otp", "mfa"],
    },
}


# The clinic's chart-number system in the stand-in EHR's Patient identifiers.
MRN = "urn:oid:2.16.840.1.113883.19.5"


def one_patient_ehr(launch: str, chart: str) -> dict:
    """The stand-in EHR's side of one launch: a patient whose chart number is `chart`,
    with no encounter (so today's visits are searched)."""
    return {
        "launches": {launch: {"patient": "p1"}},
        "resources": {
            "Patient/p1": {
                "resourceType": "Patient",
                "id": "p1",
                "identifier": [{"system": MRN, "value": chart}],
            }
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def available() -> None:
    """Skip (fail in CI, where PATIENTAPP_REQUIRE_BROWSER=1) without node or the package."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed (apt-get install nodejs)"
    elif not (SERVER.parent / "node_modules" / "oidc-provider").is_dir():
        missing = "run: npm ci --prefix tests/oidc_provider"
    if missing:
        if os.environ.get("PATIENTAPP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the OpenID Provider tests need it: {missing}")
        pytest.skip(missing)


class OpenIDProvider:
    """oidc-provider in a subprocess, started on a free port, stopped by its PID. Each
    start makes a new signing key: `restart()` is a key rotation."""

    def __init__(
        self,
        folder: Path,
        app_url: str,
        accounts=None,
        port: int | None = None,
        smart=None,
        trailing_slash: bool = False,
        logout_needs_id_token_hint: bool = False,
    ):
        """`smart`: the stand-in EHR's launches and FHIR resources (see server.mjs);
        `trailing_slash`: an issuer ending in "/", as Auth0's does;
        `logout_needs_id_token_hint`: signing out there needs the ID token, as at Okta."""
        self.folder = folder
        self.smart = smart
        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.issuer = self.origin + ("/" if trailing_slash else "")
        self.app_url = app_url.rstrip("/")
        self.accounts = ACCOUNTS if accounts is None else accounts
        self.logout_needs_id_token_hint = logout_needs_id_token_hint
        self.process: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def fhir_base(self) -> str:
        return f"{self.origin}/fhir"

    def config(self) -> dict:
        found = {
            "issuer": self.issuer,
            "port": self.port,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [self.app_url + CALLBACK],
                    "post_logout_redirect_uris": [self.app_url + SIGNED_OUT],
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                },
                {
                    "client_id": SMART_CLIENT_ID,
                    "client_secret": SMART_CLIENT_SECRET,
                    "redirect_uris": [self.app_url + SMART_CALLBACK],
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                },
            ],
            "accounts": self.accounts,
            "logout_needs_id_token_hint": self.logout_needs_id_token_hint,
        }
        if self.smart is not None:
            found["smart"] = {
                "fhir_base": self.fhir_base,
                # A second base the EHR also answers discovery on, but is not its own
                # `aud` (a launch naming it is refused at authorization).
                "bases": ["fhir", "fhir2"],
                "scopes": "launch patient/Patient.rs patient/Encounter.rs",
                **self.smart,
            }
        return found

    def start(self) -> OpenIDProvider:
        path = self.folder / "oidc-provider.json"
        path.write_text(json.dumps(self.config()), encoding="utf-8")
        self.output = []  # this start's own
        # Its warnings and notices go to a file of their own; stdout says "ready".
        self.log = self.folder / "oidc-provider.log"
        self.log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            ["node", str(SERVER), str(path)],
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                if line.strip() == "ready":
                    ready.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 30
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                self.stop()  # reads its output to the end first
                output = "".join(self.output) + self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"the OpenID Provider did not start (exit {code}, port {self.port}):\n{output}"
                )
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - node ends on SIGTERM
            self.process.kill()
            self.process.wait()
        self.reader.join(5)  # it reads to the end of the output, then the pipe is closed
        self.process.stdout.close()
        self.log_file.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def app_config(self) -> dict:
        """What a clinic's IT gives the app (PATIENTAPP_OIDC_*), as config keys."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_NAME": "Clinic ID",
        }

    def smart_config(self) -> dict:
        """What a clinic's IT gives the app for launches from this EHR (PATIENTAPP_SMART_*)."""
        return {
            "SMART_ISSUERS": f"{self.fhir_base} {self.origin}/fhir2",
            "SMART_CLIENT_ID": SMART_CLIENT_ID,
            "SMART_CLIENT_SECRET": SMART_CLIENT_SECRET,
        }

    def app_env(self) -> dict:
        config = self.app_config() | (self.smart_config() if self.smart is not None else {})
        return {f"PATIENTAPP_{key}": value for key, value in config.items()}


FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def sign_in_at_provider(authorize_url: str, login: str, person=None) -> str:
    """Follow the app's redirect to the provider as a browser would, sign in on its
    login page as `login`, and return the address it sends the browser back to (the
    app's callback, with its code, state and iss), without following it."""
    person = person or requests.Session()
    response = person.get(authorize_url, allow_redirects=False, timeout=10)
    while response.status_code in (302, 303):
        location = urljoin(response.url, response.headers["Location"])
        if urlsplit(location).path in CALLBACKS:  # refused before any login page
            return location
        response = person.get(location, allow_redirects=False, timeout=10)
    response.raise_for_status()
    action = FORM_ACTION.search(response.text)
    assert action, response.text[:500]
    target = urljoin(response.url, unescape(action.group(1)))
    response = person.post(
        target,
        data={"prompt": "login", "login": login, "password": "any password"},
        allow_redirects=False,
        timeout=10,
    )
    while True:
        if response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            if urlsplit(location).path in CALLBACKS:
                return location
            response = person.get(location, allow_redirects=False, timeout=10)
        elif "document.forms[0].submit()" in response.text:
            # A page that posts itself at once (the provider ending the session of who was
            # signed in before, when someone else signs in): a browser runs its script.
            target = urljoin(response.url, unescape(FORM_ACTION.search(response.text).group(1)))
            fields = dict(HIDDEN.findall(response.text))
            response = person.post(target, data=fields, allow_redirects=False, timeout=10)
        else:
            raise AssertionError(
                f"the provider did not send the browser back: {response.status_code}"
            )
