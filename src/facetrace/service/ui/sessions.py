"""Dashboard sign-in: server-side sessions over the API's access keys, CSRF tokens, the purpose of a session.

- A session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure when the request came over TLS,
  ``Max-Age`` = the session's lifetime); the store keeps only its SHA-256 (``store/ui_records.py``). Every
  request re-reads the session *and* the key, so signing out, expiry and deleting the key end it at once, and
  a key's permission or collection limits changed meanwhile apply at once.
- Every form carries the session's CSRF token (``csrf`` field); a POST without the right one is refused (403)
  before anything else is read. The sign-in form, having no session yet, uses a double-submit cookie.
- A session has a purpose (case reference, ``audit.check_purpose``) asked before any search; it goes into
  every audit record the session makes, with the key id (``Caller``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from facetrace.audit import Caller
from facetrace.service.keys import AccessKey, KeyStore
from facetrace.store.ui_records import SessionRecord, SessionRepository

__all__ = ["COOKIE", "PRE_COOKIE", "Session", "SessionManager"]

COOKIE = "ft_session"
PRE_COOKIE = "ft_signin"  # the sign-in form's double-submit CSRF token
SESSION_SECONDS = 8 * 3600.0
"""A working shift; after it the operator signs in again."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator for one request: the session row and the key as it is *now*."""

    token_hash: str
    key: AccessKey
    csrf: str
    purpose: str | None
    expires_at: float

    @property
    def caller(self) -> Caller:
        return Caller(self.key.access_key_id, self.purpose)


class SessionManager:
    def __init__(self, repository: SessionRepository, keys: KeyStore, lifetime: float = SESSION_SECONDS) -> None:
        self.repository = repository
        self.keys = keys
        self.lifetime = lifetime

    def sign_in(self, access_key_id: str, secret: str) -> tuple[str, AccessKey] | None:
        """A new session token for a key whose secret matches, or None (compared in constant time)."""
        key = self.keys.get(access_key_id.strip()) if access_key_id.strip() else None
        expected = key.secret if key is not None else "x" * 40
        if not hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8")) or key is None:
            return None
        now = time.time()
        self.repository.sweep(now)
        token = secrets.token_urlsafe(32)
        record = SessionRecord(
            _hash(token), key.access_key_id, secrets.token_urlsafe(24), None, now, now + self.lifetime
        )
        self.repository.add(record)
        return token, key

    def current(self, request: Request) -> Session | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 128:
            return None
        record = self.repository.get(_hash(token), time.time())
        if record is None:
            return None
        key = self.keys.get(record.access_key_id)
        if key is None:  # deleted: the session ends with it (SQLite's trigger did so already)
            self.repository.delete(record.token_hash)
            return None
        return Session(record.token_hash, key, record.csrf, record.purpose, record.expires_at)

    def set_purpose(self, session: Session, purpose: str) -> None:
        self.repository.set_purpose(session.token_hash, purpose)

    def sign_out(self, session: Session) -> None:
        self.repository.delete(session.token_hash)

    def end_key(self, access_key_id: str) -> None:
        self.repository.delete_key(access_key_id)

    def set_cookie(self, response: Response, request: Request, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.lifetime),
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def clear_cookie(response: Response, request: Request) -> None:
        response.delete_cookie(
            COOKIE, path="/ui", httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )


def csrf_ok(expected: str | None, given: object) -> bool:
    """Whether a form's ``csrf`` field is the expected token (constant time)."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
