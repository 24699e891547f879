"""Which video sources a request from the wire may name: the operator's allow-list, nothing else.

A stream processor's source (``Input.KinesisVideoStream.Arn``) is a URL or path chosen by whoever holds an
admin key. Left open, that key reads any file the server can (its faces arrive on ``/events``), makes the
server fetch from any address it can reach (SSRF: loopback admin ports, the cloud metadata service), and
learns from the status message which paths exist. So a source from the wire must match a pattern the operator
set with ``facetrace serve --camera-allow PATTERN`` (``ServiceConfig.camera_allow``); stored videos come only
through ``S3Object`` (a file inside a ``--bucket`` folder, ``service/images.py``). The CLI (``facetrace watch``,
``video search``) is not checked: its user is the local operator.

Patterns are matched against the source without its credentials: ``*`` is any run of characters except
``/``, ``**`` any run including ``/``, ``?`` one character except ``/``; e.g. ``rtsp://10.0.0.*/**``. Sources
with ``.`` or ``..`` path segments (also percent-encoded) are refused, so ``/srv/cams/**`` cannot climb out.

A source with a network host is resolved and *every* address checked: loopback, link-local (which holds the
metadata service 169.254.169.254), the unspecified address and the known metadata addresses are refused unless
the matching pattern names that host literally (no wildcard in its host part) — ``rtsp://*/**`` never reaches
127.0.0.1, ``rtsp://127.0.0.1:8554/**`` does. What this cannot stop, documented in ``docs/security.md``: a name
that resolves differently when FFmpeg connects a moment later (DNS rebinding) and HTTP redirects followed by
FFmpeg; allow-list addresses rather than names, and ``rtsp://`` rather than ``http://``, where that matters.

Every refusal is the same ``InvalidParameterError`` message, so the answer never tells whether a path exists,
a host resolves, or which pattern came close.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from facetrace.errors import InvalidParameterError

__all__ = ["REFUSED", "SourcePolicy", "check_pattern", "is_sensitive_address"]

REFUSED = "the video source is not allowed on this server (see `facetrace serve --camera-allow`)"
"""The one message of every refusal."""

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")

Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    try:
        return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]
    except (OSError, UnicodeError):
        return []


def is_sensitive_address(address: str) -> bool:
    """Whether ``address`` is loopback, link-local, unspecified or a cloud metadata address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True  # not an address we understand: treat as sensitive
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip in _METADATA


def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out), re.DOTALL)


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a usable allow-list entry; ``ValueError`` otherwise (config validation)."""
    if not pattern or len(pattern) > 1024 or not pattern.isprintable():
        raise ValueError("a --camera-allow pattern is 1-1024 printable characters")
    if _CREDENTIALS.search(pattern):
        raise ValueError("a --camera-allow pattern must not hold credentials (they are ignored when matching)")
    return pattern


def _host_of(text: str) -> str | None:
    """The host part of a URL-like text (None for paths and devices)."""
    if "://" not in text:
        return None
    try:
        return urlsplit(text).hostname
    except ValueError:
        return None


def _literal_host(pattern: str) -> str | None:
    host = _host_of(pattern)
    return None if host is None or any(c in host for c in "*?") else host


def _without_credentials(text: str) -> str | None:
    """``text`` without a URL's user and password; None when the authority is ambiguous (two ``@``, ``\\``)."""
    if "://" not in text:
        return text
    if "\\" in text:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if "@" in userinfo:
        return None
    start = text.index("://") + 3
    return text[:start] + hostport + text[start + len(parts.netloc) :] if at else text


def _has_dot_segments(text: str) -> bool:
    """Whether the path has ``.`` or ``..`` segments (also percent-encoded); True for a URL that does not parse."""
    try:
        path = urlsplit(text).path if "://" in text else text
    except ValueError:  # e.g. "x://[" (found by tests/fuzz)
        return True
    decoded = unquote(path)
    return any(segment in (".", "..") for segment in re.split(r"[/\\]", decoded))


@dataclass(frozen=True)
class SourcePolicy:
    """The operator's allow-list of video sources for requests from the wire."""

    patterns: Sequence[str] = ()
    resolver: Resolver = _resolve

    def check(self, source: str) -> str:
        """``source`` when the allow-list admits it; ``InvalidParameterError(REFUSED)`` otherwise."""
        if not self.patterns or not source.isprintable() or _has_dot_segments(source):
            raise InvalidParameterError(REFUSED)
        bare = _without_credentials(source)
        if bare is None:
            raise InvalidParameterError(REFUSED)
        host = _host_of(bare)
        if "://" in bare and not host and not bare.lower().startswith("file:"):
            raise InvalidParameterError(REFUSED)
        for pattern in self.patterns:
            if _regex(pattern).fullmatch(bare) is None:
                continue
            if host is None or self._host_allowed(host, pattern):
                return source
        raise InvalidParameterError(REFUSED)

    def _host_allowed(self, host: str, pattern: str) -> bool:
        addresses = list(self.resolver(host))
        if not addresses:
            return False  # a name that does not resolve now is not checked later either
        if not any(is_sensitive_address(a) for a in addresses):
            return True
        return _literal_host(pattern) == host.lower()
