"""gzip on the wire (Flask-Compress, set up in patientapp/__init__.py): static files stay
versioned, long-cached and conditional; the staff side, downloads, partial content and
error pages go out as they are (SECURITY.md, "Compression and BREACH"). Every patient
page's size on the wire is in test_page_weight.py."""

from __future__ import annotations

import gzip
import json

from flask import Response

import patientapp
from tests.conftest import create_user, finish_visit, login
from tests.web.api.test_integrations import bearer, new_token

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def fetch(client, path: str, headers: dict | None = None):
    response = client.get(path, headers=headers or {})
    body = response.get_data()
    response.close()
    return response, body


def stylesheet_url(client) -> str:
    html = client.get("/start").get_data(as_text=True)
    return next(part.split('"')[0] for part in html.split('href="') if "app.css" in part)


def test_a_static_file_is_gzipped_cached_and_answers_304_to_its_own_etag(app, client):
    css = stylesheet_url(client)
    assert "?v=" in css
    plain, plain_body = fetch(client, css)
    zipped, zipped_body = fetch(client, css, GZIP)
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped_body) == plain_body
    assert len(zipped_body) < len(plain_body) / 2
    for response in (plain, zipped):
        assert "max-age=86400" in response.headers["Cache-Control"]
        assert "Accept-Encoding" in response.headers["Vary"]
    # Each representation has its own strong validator, and each revalidates.
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    again, body = fetch(client, css, {**GZIP, "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304 and body == b""
    assert "max-age=86400" in again.headers["Cache-Control"]
    again, body = fetch(client, css, {"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and body == b""


def test_a_byte_range_is_served_from_the_identity_bytes(client):
    css = stylesheet_url(client)
    plain, whole = fetch(client, css)
    assert plain.headers["Accept-Ranges"] == "bytes"
    assert int(plain.headers["Content-Length"]) == len(whole)
    part, body = fetch(client, css, {**GZIP, "Range": "bytes=10-99"})
    assert part.status_code == 206 and "Content-Encoding" not in part.headers
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(whole)}"
    assert body == whole[10:100]
    zipped, _ = fetch(client, css, GZIP)  # ranges are offered on identity bytes only
    assert "Accept-Ranges" not in zipped.headers


def test_patient_pages_are_gzipped_and_never_cached(client):
    page, body = fetch(client, "/start", GZIP)
    assert page.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in page.headers["Vary"]
    assert page.headers["Cache-Control"] == "no-store"
    assert int(page.headers["Content-Length"]) == len(body)
    assert gzip.decompress(body).startswith(b"<!doctype html>")


def test_error_pages_go_out_uncompressed(client):
    page, body = fetch(client, "/no-such-page", GZIP)
    assert page.status_code == 404 and "Content-Encoding" not in page.headers
    assert body.startswith(b"<!doctype html>") and len(body) > 500


def test_staff_pages_and_their_json_are_never_compressed(app, client):
    page, body = fetch(client, "/staff/login", GZIP)
    assert page.status_code == 200 and len(body) > 1000
    assert "Content-Encoding" not in page.headers
    create_user(app, "desk@example.org", "frontdesk")
    assert login(client, "desk@example.org").status_code == 302
    for path in ("/staff/", "/staff/board.json"):
        response, _ = fetch(client, path, GZIP)
        assert response.status_code == 200, path
        assert "Content-Encoding" not in response.headers, path


def test_downloads_keep_their_bytes_and_length(app, psychiatrist):
    visit_id = finish_visit(app).visit_id
    for path in (f"/staff/visits/{visit_id}/summary.txt", f"/staff/visits/{visit_id}/fhir.json"):
        response, body = fetch(psychiatrist, path, GZIP)
        assert response.status_code == 200, path
        assert "Content-Encoding" not in response.headers, path
        assert int(response.headers["Content-Length"]) == len(body) > 500, path


def test_an_attachment_is_never_compressed_wherever_it_comes_from(app):
    with app.test_request_context("/anywhere", headers=GZIP):
        download = Response(
            "a" * 5000, mimetype="text/html", headers={"Content-Disposition": "attachment"}
        )
        assert "Content-Encoding" not in patientapp._compress_response(download).headers
        page = patientapp._compress_response(Response("a" * 5000, mimetype="text/html"))
        assert page.headers["Content-Encoding"] == "gzip"


def test_the_fhir_api_answers_gzipped_json(app, client):
    create_user(app, "admin@example.org", "admin")
    admin = app.test_client()
    assert login(admin, "admin@example.org").status_code == 302
    token = new_token(admin)
    path = "/api/fhir/Questionnaire/reflection"
    plain, plain_body = fetch(client, path, bearer(token))
    zipped, zipped_body = fetch(client, path, {**bearer(token), **GZIP})
    assert zipped.status_code == 200 and zipped.mimetype == "application/fhir+json"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert json.loads(gzip.decompress(zipped_body)) == json.loads(plain_body)
    assert "Content-Encoding" not in plain.headers
