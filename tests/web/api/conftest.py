"""What the API tests share: an admin signed in (who makes the tokens)."""

from __future__ import annotations

import pytest

from tests.conftest import create_user, login


@pytest.fixture
def admin(app):
    create_user(app, "admin@example.org", "admin")
    client = app.test_client()
    assert login(client, "admin@example.org").status_code == 302
    return client
