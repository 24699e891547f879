"""AWS Signature Version 4, verified: pure functions over the request's parts, no HTTP framework.

The server recomputes the signature the client must have made (canonical request → string to sign → HMAC
with the key derived from the secret, date, region and service) and compares in constant time. The payload
hash is always computed from the body the server actually received, so a body changed in transit fails the
signature; an ``X-Amz-Content-Sha256`` header, when sent, must match it too.

Failures raise ``AuthenticationError`` with AWS's code: ``MissingAuthenticationTokenException`` (no
signature), ``IncompleteSignatureException`` (malformed), ``UnrecognizedClientException`` (unknown key),
``InvalidSignatureException`` (wrong signature, tampered body, date more than ``max_skew`` off). ``X-Amz-Target``
and ``X-Facetrace-Purpose``, when sent, must be among the signed headers (``MUST_SIGN_WHEN_SENT``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from facetrace.errors import AuthenticationError

__all__ = ["ALGORITHM", "MUST_SIGN_WHEN_SENT", "Credential", "signing_key", "verify"]

ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
MUST_SIGN_WHEN_SENT = ("x-amz-target", "x-facetrace-purpose")
"""Headers that choose what a request does or why: signed whenever they are sent (botocore signs every header
it sends, so unmodified clients already do)."""
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})\s*"
)


@dataclass(frozen=True, slots=True)
class Credential:
    """The credential scope a request was signed for."""

    access_key_id: str
    date: str  # YYYYMMDD
    region: str
    service: str


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _incomplete(message: str) -> AuthenticationError:
    return AuthenticationError(message, "IncompleteSignatureException")


def _invalid(message: str) -> AuthenticationError:
    return AuthenticationError(message, "InvalidSignatureException")


def _parse_credential(text: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise _incomplete(f"Credential must have the form KEY/DATE/REGION/SERVICE/aws4_request, not {text[:80]!r}")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def _request_time(headers: Mapping[str, str]) -> tuple[str, datetime]:
    stamp = headers.get("x-amz-date")
    if stamp is None:
        raise _incomplete("Authorization header requires existence of either a 'X-Amz-Date' header")
    try:
        return stamp, datetime.strptime(stamp, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise _incomplete(f"X-Amz-Date must be YYYYMMDD'T'HHMMSS'Z', not {stamp[:40]!r}") from None


def _check_skew(stamp: str, when: datetime, now: float, max_skew: float) -> None:
    server = datetime.fromtimestamp(now, UTC)
    offset = (when - server).total_seconds()
    minutes = int(max_skew // 60)
    if offset < -max_skew:
        earliest = datetime.fromtimestamp(now - max_skew, UTC).strftime(_AMZ_DATE)
        raise _invalid(
            f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({server.strftime(_AMZ_DATE)} - {minutes} min.)"
        )
    if offset > max_skew:
        latest = datetime.fromtimestamp(now + max_skew, UTC).strftime(_AMZ_DATE)
        raise _invalid(
            f"Signature not yet current: {stamp} is still later than {latest} "
            f"({server.strftime(_AMZ_DATE)} + {minutes} min.)"
        )


def canonical_request(
    method: str, raw_path: str, query_string: str, headers: Mapping[str, str], signed: list[str], payload_hash: str
) -> str:
    path = quote(raw_path or "/", safe="/~")
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in parse_qsl(query_string, keep_blank_values=True)
    )
    query = "&".join(f"{k}={v}" for k, v in pairs)
    lines = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed)
    return "\n".join((method.upper(), path, query, lines, ";".join(signed), payload_hash))


def verify(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup_secret: Callable[[str], str | None],
    now: float,
    service: str = "rekognition",
    max_skew: float = 900.0,
) -> Credential:
    """Check the request's SigV4 ``Authorization`` header; return the verified credential.

    ``headers`` maps lower-case names to values (repeated headers joined with ``,``).
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise AuthenticationError("Missing Authentication Token", "MissingAuthenticationTokenException")
    match = _AUTH.fullmatch(authorization)
    if match is None:
        if not authorization.startswith(ALGORITHM):
            raise _incomplete(f"Only {ALGORITHM} signatures are supported")
        raise _incomplete("Authorization header must contain Credential, SignedHeaders and Signature")
    credential = _parse_credential(match["credential"])
    signed = match["signed"].split(";")
    if signed != sorted(signed) or "host" not in signed or any(name != name.lower() for name in signed):
        raise _incomplete("SignedHeaders must be sorted, lower-case, and include host")
    stamp, when = _request_time(headers)
    if "x-amz-date" not in signed:
        raise _incomplete("SignedHeaders must include x-amz-date")
    for name in MUST_SIGN_WHEN_SENT:  # else a signature could be replayed as another operation or purpose
        if name in headers and name not in signed:
            raise _incomplete(f"SignedHeaders must include {name}")
    if credential.date != stamp[:8]:
        raise _invalid(f"Credential should be scoped to a valid date: {stamp[:8]}, not {credential.date[:8]}")
    if credential.service != service:
        raise _invalid(f"Credential should be scoped to correct service: '{service}'.")
    _check_skew(stamp, when, now, max_skew)
    secret = lookup_secret(credential.access_key_id)
    if secret is None:
        raise AuthenticationError(
            "The security token included in the request is invalid.", "UnrecognizedClientException"
        )
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared != payload_hash:
        raise _invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
    request = canonical_request(method, raw_path, query_string, headers, signed, payload_hash)
    scope = f"{credential.date}/{credential.region}/{credential.service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = signing_key(secret, credential.date, credential.region, credential.service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise _invalid(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return credential
