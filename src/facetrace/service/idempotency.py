"""ClientRequestToken, as Rekognition means it: the same token with the same parameters gets the same answer
(the operation runs once), the same token with other parameters is ``IdempotentParameterMismatchException``.

Tokens are kept per access key and operation in the store's database (``request_tokens``), so a retry after
a server restart still gets the first answer, for ``TOKEN_TTL`` seconds. Only successful answers are kept: a
request that failed may be retried with its token and runs again. Requests with the same token wait for each
other: in this process by a lock stripe, and across the servers sharing a PostgreSQL database by the token
repository's ``exclusive`` (an advisory lock held while the request runs and its answer is stored), so the
same token sent to two servers at once acts once and both get the same answer.

The one window left: the act and its answer are two commits. If the process dies after the act committed
and before the answer did, a retry with the token acts again (AWS's own contract says a token is honoured
"for a limited time" and a crash may break it too). Creating things is then refused as already existing,
which the caller sees; IndexFaces would index the image twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from facetrace.service.errors import ServiceError
from facetrace.store.records import TokenRecord, TokenRepository

__all__ = ["TOKEN_TTL", "Idempotency"]

TOKEN_TTL = 24 * 3600.0
"""How long an answer is kept for its token (seconds)."""

_STRIPES = 64
_SWEEP_EVERY = 256


def _fingerprint(params: dict[str, Any]) -> str:
    """SHA-256 of the request's parameters, token left out (blobs by their bytes)."""

    def default(value: object) -> str:
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(hashlib.sha256(value).digest()).decode("ascii")
        raise TypeError(f"cannot fingerprint {type(value).__name__}")

    rest = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Idempotency:
    """Runs token-bearing requests at most once per (access key, operation, token)."""

    def __init__(self, tokens: TokenRepository, *, ttl: float = TOKEN_TTL) -> None:
        self.tokens = tokens
        self.ttl = ttl
        self._locks = [threading.Lock() for _ in range(_STRIPES)]
        self._puts = 0

    def run(self, principal: str, operation: str, params: dict[str, Any], handler: Callable[[], bytes]) -> bytes:
        """The handler's encoded answer, or the stored answer of an earlier request with the same token."""
        token = params.get("ClientRequestToken")
        if not isinstance(token, str):
            return handler()
        fingerprint = _fingerprint(params)
        # A retry finds its answer without waiting for a lock; a first request takes the token's locks and
        # looks again (another request with the token may have answered meanwhile).
        earlier = self.tokens.get(principal, operation, token, newer_than=time.time() - self.ttl)
        if earlier is None:
            with (
                self._locks[hash((principal, operation, token)) % _STRIPES],
                self.tokens.exclusive(principal, operation, token),
            ):
                now = time.time()
                earlier = self.tokens.get(principal, operation, token, newer_than=now - self.ttl)
                if earlier is None:
                    answer = handler()
                    earlier = self.tokens.put(
                        TokenRecord(principal, operation, token, fingerprint, answer.decode("utf-8"), time.time())
                    )
                    self._sweep(now)
                    if earlier.fingerprint == fingerprint:
                        return answer
        if earlier.fingerprint != fingerprint:
            raise ServiceError(
                "IdempotentParameterMismatchException",
                f"ClientRequestToken {token} was already used with different parameters",
            )
        return earlier.response.encode("utf-8")

    def _sweep(self, now: float) -> None:
        self._puts += 1
        if self._puts % _SWEEP_EVERY == 1:
            self.tokens.sweep(now - self.ttl)
