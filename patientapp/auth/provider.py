"""Staff sign-in with the clinic's OpenID Provider (OpenID Connect, authorization code).

Authlib's Flask client does the protocol: the state and nonce kept in the signed session
cookie, PKCE with S256, the code exchanged with the client secret, and the ID token
checked (its signature against the provider's published keys, fetched again once when
the token names a key it does not know; the issuer, the audience, the expiry and the
nonce). Here, around it:

- the provider's discovery document must name the configured issuer, and the
  authorization response's `iss` (RFC 9207) must be that issuer too, so a response from
  another provider is never taken for this one's (a mix-up attack);
- the provider only proves who someone is: `Identity` is its issuer and subject, which
  the sign-in route looks up among the identities bound to our accounts;
- every failure is a `SignInFailed` with a short reason for the audit log, never a token.

The connection is configured in the environment (config.py, OIDC_*), where a clinic's IT
puts it; the policies (who may still use a password, linking by e-mail, trusting the
provider's second factor) are Settings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App
from authlib.integrations.flask_client.integration import FlaskIntegration
from flask import current_app, request
from joserfc.errors import JoseError

# Authlib logs the PKCE verifier at DEBUG: nothing secret ever reaches a log.
logging.getLogger("authlib").setLevel(logging.INFO)
log = logging.getLogger(__name__)

LINK_DAYS = 7  # how long an admin's link to bind someone's identity works
NAME = "clinic"  # Authlib's name for the client: the session keys are _state_clinic_<state>
SCOPES = "openid email profile"
EXTENSION = "patientapp_provider"


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    name: str
    timeout: float
    mfa_acr_values: frozenset[str]


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: never anything the user typed here."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    amr: tuple[str, ...]
    acr: str
    # The ID token itself, kept with the session only to be sent back as id_token_hint
    # when signing out at the provider (which some providers require); empty when the
    # provider has no end-session endpoint. Never shown, logged or compared.
    id_token: str = field(default="", repr=False, compare=False)


class SignInFailed(Exception):
    """A sign-in with the provider that did not prove anyone: `reason` goes into the
    audit log (short, fixed words and the provider's error code, never a token);
    `unreachable` when the provider could not be reached at all."""

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


def settings() -> Settings | None:
    """The provider this server signs staff in with, or None when none is configured."""
    cfg = current_app.config
    issuer = (cfg.get("OIDC_ISSUER") or "").strip()
    client_id = (cfg.get("OIDC_CLIENT_ID") or "").strip()
    if not issuer or not client_id:
        return None
    return Settings(
        # Exactly as configured: an issuer may end in "/" (Auth0's does), and the
        # discovery document and the response's `iss` must name it exactly.
        issuer=issuer,
        client_id=client_id,
        name=(cfg.get("OIDC_NAME") or "").strip() or _host(issuer),
        timeout=float(cfg.get("OIDC_TIMEOUT_SECONDS") or 5),
        mfa_acr_values=frozenset((cfg.get("OIDC_MFA_ACR_VALUES") or "").split()),
    )


def read_secret(cfg, key: str) -> str:
    """A client secret from `<key>_FILE` when given, else from `<key>`. A file that
    cannot be read leaves it empty (the provider then refuses the client, and that is
    audited): the sign-in page, and the admins' password on it, keep working."""
    if cfg.get(f"{key}_FILE"):
        try:
            return Path(cfg[f"{key}_FILE"]).read_text(encoding="utf-8").strip()
        except OSError as error:
            log.error("%s_FILE cannot be read (%s)", key, error.strerror)
            return ""
    return cfg.get(key) or ""


def origin() -> str | None:
    """The provider's origin (scheme, host and port), for the pages' form-action."""
    if not current_app.config.get("OIDC_CLIENT_ID"):
        return None
    match = re.match(r"^(https?://[^/?#\s'\";]+)", current_app.config.get("OIDC_ISSUER") or "")
    return match.group(1) if match else None


def _host(issuer: str) -> str:
    match = re.match(r"^https?://([^/:?#]+)", issuer)
    return match.group(1) if match else issuer


def oauth_app(
    name: str, metadata_url: str, client_id: str, secret: str, scope: str, timeout: float
) -> FlaskOAuth2App:
    """One Authlib client per server and client for the life of the process, so the
    server's metadata and keys are fetched once (the keys again on an unknown key id).
    `name` keys its state in the session (_state_<name>_<state>)."""
    clients = current_app.extensions.setdefault(EXTENSION, {})
    key = (name, metadata_url, client_id, secret)
    if key not in clients:
        clients[key] = FlaskOAuth2App(
            FlaskIntegration(name),
            name=name,
            client_id=client_id,
            client_secret=secret,
            server_metadata_url=metadata_url,
            client_kwargs={
                "scope": scope,
                "code_challenge_method": "S256",
                "default_timeout": timeout,
            },
        )
    return clients[key]


def _client(found: Settings) -> FlaskOAuth2App:
    """The client for the configured provider; its secret is read here, where it is used,
    not for every page that asks whether sign-in with the provider is on."""
    return oauth_app(
        NAME,
        f"{found.issuer.rstrip('/')}/.well-known/openid-configuration",
        found.client_id,
        read_secret(current_app.config, "OIDC_CLIENT_SECRET"),
        SCOPES,
        found.timeout,
    )


def _metadata(found: Settings, client: FlaskOAuth2App) -> dict:
    """The provider's discovery document, which must name the configured issuer."""
    try:
        metadata = client.load_server_metadata()
    except (requests.RequestException, ValueError, TypeError) as error:
        # Down, or not answering with a JSON object: the next try asks again.
        client.server_metadata.clear()
        raise SignInFailed("provider unreachable", unreachable=True) from error
    if metadata.get("issuer") != found.issuer:
        client.server_metadata.clear()
        raise SignInFailed("wrong issuer in the provider's discovery document")
    return metadata


def authorize_redirect(redirect_uri: str, fresh: bool = False):
    """The redirect to the provider's sign-in page (state, nonce and PKCE kept in the
    session cookie by Authlib). `fresh`: the person must sign in at the provider again
    (prompt=login), whatever session the browser has there: an admin's link binds the
    identity of whoever signs in, never of whoever last used this computer."""
    found = settings()
    client = _client(found)
    _metadata(found, client)
    try:
        return client.authorize_redirect(redirect_uri, **({"prompt": "login"} if fresh else {}))
    except RuntimeError as error:  # no authorization endpoint in its metadata
        raise SignInFailed("no authorization endpoint in the provider's metadata") from error


def error_code(text: str | None) -> str:
    """A provider's error code as the audit log keeps it: OAuth error codes are short
    ASCII words; anything else is cut down to such a word."""
    return re.sub(r"[^a-z0-9_.-]", "", (text or "").lower())[:40] or "unknown"


def finish() -> Identity:
    """Check the provider's answer at the callback and return who signed in."""
    found = settings()
    client = _client(found)
    metadata = _metadata(found, client)
    # RFC 9207: the response says which provider sent it; a provider that announces the
    # parameter must send it, and whoever sends it must be the one we asked.
    iss = request.args.get("iss")
    if iss is not None and iss != found.issuer:
        raise SignInFailed("wrong issuer in the response")
    if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
        raise SignInFailed("no issuer in the response")
    if "error" in request.args:
        raise SignInFailed(f"provider answered {error_code(request.args['error'])}")
    token = exchange_code(client, "provider", "sign-in")
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        raise SignInFailed("no ID token")
    claims = dict(claims)
    if "email" not in claims and metadata.get("userinfo_endpoint"):
        # Many providers put the e-mail at the UserInfo endpoint, not in the ID token.
        claims.update(_userinfo(client, token, claims["sub"]))
    amr = claims.get("amr") or ()
    return Identity(
        issuer=found.issuer,
        subject=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        email_verified=claims.get("email_verified") is True,
        amr=tuple(str(method) for method in amr) if isinstance(amr, list) else (),
        acr=str(claims.get("acr") or ""),
        id_token=str(token.get("id_token") or "") if metadata.get("end_session_endpoint") else "",
    )


def exchange_code(client: FlaskOAuth2App, server: str, flow: str) -> dict:
    """The token for the code at this callback (state, PKCE and, with an ID token, its
    checks: Authlib), or SignInFailed saying why in the audit log's words: `server` names
    who answered ("provider", "EHR"), `flow` what this browser started ("sign-in")."""
    try:
        return client.authorize_access_token()
    except MismatchingStateError as error:
        raise SignInFailed(f"state does not match this browser's {flow}") from error
    except OAuthError as error:
        raise SignInFailed(f"token refused: {error_code(error.error)}") from error
    except JoseError as error:
        raise SignInFailed(f"ID token refused: {error_code(error.error)}") from error
    except requests.RequestException as error:
        raise SignInFailed(f"{server} unreachable", unreachable=True) from error
    except (ValueError, TypeError, KeyError, RuntimeError) as error:
        # A token response that is not a JSON object, keys that are not a key set, no
        # jwks_uri: the server said nothing that proves anyone.
        raise SignInFailed(f"{server}'s answer unreadable: {type(error).__name__}") from error


def _userinfo(client: FlaskOAuth2App, token: dict, subject: str) -> dict:
    """The e-mail claims from the UserInfo endpoint, which must describe the same subject
    as the ID token (OpenID Connect Core 5.3.2); nothing when it cannot be read."""
    try:
        found = client.userinfo(token=token)
    except (requests.RequestException, OAuthError, ValueError, TypeError):
        return {}
    if not isinstance(found, dict) or found.get("sub") != subject:
        return {}
    return {key: found[key] for key in ("email", "email_verified") if key in found}


def used_second_factor(identity: Identity) -> bool:
    """Whether the provider says this sign-in used a second factor: its `amr` holds "mfa"
    (RFC 8176), or its `acr` is one the clinic named (OIDC_MFA_ACR_VALUES)."""
    found = settings()
    return "mfa" in identity.amr or (
        bool(identity.acr) and found is not None and identity.acr in found.mfa_acr_values
    )


def logout_url(post_logout_redirect_uri: str, id_token_hint: str | None = None) -> str | None:
    """The provider's end-session address (RP-initiated logout), or None when it has none
    or cannot be reached: signing out here never waits on the provider. `id_token_hint`:
    the ID token the session was signed in with: Okta refuses a sign-out without it, and
    Duende IdentityServer sends the browser back only with it."""
    found = settings()
    if found is None:
        return None
    client = _client(found)
    try:
        metadata = _metadata(found, client)
    except SignInFailed:
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    return client.create_logout_url(
        post_logout_redirect_uri=post_logout_redirect_uri,
        id_token_hint=id_token_hint,
        client_id=found.client_id,
    )["url"]
