"""What the API tests share: an admin signed in (who makes the tokens), and the Settings
form as that admin posts it."""

from __future__ import annotations

import pytest

from tests.conftest import create_user, csrf_from, login


@pytest.fixture
def admin(app):
    create_user(app, "admin@example.org", "admin")
    client = app.test_client()
    assert login(client, "admin@example.org").status_code == 302
    return client


def settings_form(admin, **changes):
    """Post the Settings page with its usual values and `changes`."""
    page = admin.get("/staff/admin/settings").get_data(as_text=True)
    data = {
        "csrf_token": csrf_from(page),
        "clinic_name": "",
        "languages": ["en"],
        "invite_extra_days": "0",
        "patient_idle_minutes": "15",
        "retention_days": "365",
        "escalate_after_minutes": "5",
        **changes,
    }
    return admin.post("/staff/admin/settings", data=data)
