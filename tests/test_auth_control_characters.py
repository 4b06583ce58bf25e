"""The account forms refuse control characters as the JSON API does (issue 15).

Real HTTP to the live server on this run's database (SQLite, or PostgreSQL
with ``TEST_DATABASE_URL``, which refused a NUL in a query with a 500). The
check is :func:`app.validation.plain_text`'s, as a WTForms validator
(:class:`app.validation.NoControlCharacters`): 422, the form again, the field's
error naming the character.
"""

from __future__ import annotations

from contextlib import closing
from html import unescape

import pytest

from tests.support.login import EMAIL, PASSWORD, browser, csrf_token
from tests.support.server import ServerFactory

CHARACTERS = ["\x00", "\x1b", "\x7f", "\x9b"]
"""NUL (PostgreSQL refuses it), ESC, DEL and a C1 control."""


@pytest.mark.parametrize("character", CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", ["email", "password"])
@pytest.mark.parametrize("form", ["register", "login"])
def test_a_control_character_in_an_account_form_is_a_422(
    live_server: ServerFactory, form: str, field: str, character: str
) -> None:
    server = live_server()
    with closing(browser(server)) as client:
        page = client.get(f"/auth/{form}")
        values = {"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD}
        values[field] = (
            f"ada{character}x@example.com" if field == "email" else f"pass{character}word"
        )
        if field == "password":
            values["confirm"] = values["password"]
        answer = client.post(f"/auth/{form}", data={**values, "csrf_token": csrf_token(page.text)})
        assert answer.status_code == 422, answer.text
        label = "Email" if field == "email" else "Password"
        assert f"{label}: Must not contain U+{ord(character):04X}" in unescape(answer.text)
        me = client.get("/api/me")
        assert me.status_code == 401  # neither registered nor logged in
