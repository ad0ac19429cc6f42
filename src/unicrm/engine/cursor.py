"""Opaque list cursors (PRODUCT §3.5).

A cursor is base64url(JSON) of the provider's page state plus the account it belongs to and
a fingerprint of the query it continues, followed by an HMAC tag. A tampered cursor, one from
another account, or one reused with a different filter is refused with a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from unicrm.engine.errors import bad_request


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and verifies cursors with a server secret shared by every server process."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _tag(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest()[:16])

    def encode(self, account_id: str, fingerprint: str, state: dict[str, Any]) -> str:
        payload = orjson.dumps({"a": account_id, "f": fingerprint, "s": state})
        return f"{_b64(payload)}.{self._tag(payload)}"

    def decode(self, cursor: str, account_id: str, fingerprint: str) -> dict[str, Any]:
        """The provider page state of a cursor, or a 400 that says what is wrong with it."""
        fix = "Pass next_cursor exactly as a previous list response returned it, with the same filters."
        body, _, tag = cursor.partition(".")
        try:
            payload = _unb64(body)
        except (ValueError, TypeError):
            raise bad_request(f"next_cursor is not a valid cursor. {fix}") from None
        # Compared as bytes: compare_digest refuses str with non-ASCII characters (a 500 otherwise).
        if not tag or not hmac.compare_digest(tag.encode(), self._tag(payload).encode()):
            raise bad_request(f"next_cursor is not a valid cursor (it was altered or not issued here). {fix}")
        data = orjson.loads(payload)
        if data.get("a") != account_id:
            raise bad_request(f"next_cursor belongs to another integrated account. {fix}")
        if data.get("f") != fingerprint:
            raise bad_request(
                f"next_cursor was issued for different filters or limit, or for the other of a page and a stream "
                f"(a stream's cursor resumes only a stream). {fix}"
            )
        state = data.get("s")
        if not isinstance(state, dict):
            raise bad_request(f"next_cursor is not a valid cursor. {fix}")
        return state
