"""Access keys: who may call the server, with what permission, on which collections.

SigV4 is an HMAC, so the server needs each key's *secret* to check a signature; a hash would not do. The
secrets therefore live in ``<home>/keys.json``, created with mode 0600 and rewritten atomically, and are
shown once, when the key is created. Nothing logs them (``AccessKey.__repr__`` hides the secret).

Permissions are ordered: ``read`` (list, describe, detect, compare, search) < ``write`` (index, delete
faces, users) < ``admin`` (create and delete collections). A key may be limited to named collections: it can
neither see nor change any other, and ``ListCollections`` shows it only its own.

The server re-reads the file when it changes, so keys created or deleted while it runs take effect at once.
"""

from __future__ import annotations

import enum
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facetrace.errors import InvalidParameterError, NotFoundError, StoreError
from facetrace.validation import check_collection_id

__all__ = ["KEYS_FILE", "AccessKey", "KeyStore", "Permission"]

KEYS_FILE = "keys.json"
_ID_ALPHABET = string.ascii_uppercase + string.digits


class Permission(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, value: str) -> Permission:
        try:
            return cls[value.upper()]
        except KeyError:
            raise InvalidParameterError(f"permission must be read, write or admin, not {value!r}") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AccessKey:
    access_key_id: str
    secret: str = field(repr=False)
    permission: Permission
    collections: tuple[str, ...] | None = None  # None: every collection
    description: str = ""
    created_at: float = 0.0

    def may(self, needed: Permission) -> bool:
        return self.permission >= needed

    def sees(self, collection_id: str) -> bool:
        return self.collections is None or collection_id in self.collections

    def public(self) -> dict[str, Any]:
        """Everything but the secret (for listings)."""
        return {
            "AccessKeyId": self.access_key_id,
            "Permission": str(self.permission),
            "Collections": list(self.collections) if self.collections is not None else None,
            "Description": self.description,
            "CreatedAt": self.created_at,
        }


def _to_json(key: AccessKey) -> dict[str, Any]:
    return {**key.public(), "SecretAccessKey": key.secret}


def _from_json(data: dict[str, Any]) -> AccessKey:
    collections = data.get("Collections")
    return AccessKey(
        access_key_id=str(data["AccessKeyId"]),
        secret=str(data["SecretAccessKey"]),
        permission=Permission.parse(str(data["Permission"])),
        collections=tuple(collections) if collections is not None else None,
        description=str(data.get("Description", "")),
        created_at=float(data.get("CreatedAt", 0.0)),
    )


class KeyStore:
    """The keys in one JSON file; reloaded when the file changes (mtime and size)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, AccessKey] = {}

    @classmethod
    def in_home(cls, home: Path) -> KeyStore:
        return cls(home / KEYS_FILE)

    def _refresh(self) -> dict[str, AccessKey]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return self._keys
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                self._keys = {key.access_key_id: key for key in map(_from_json, raw.get("keys", []))}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"cannot read the access keys in {self.path}: {exc}") from None
            self._stamp = stamp
        return self._keys

    def get(self, access_key_id: str) -> AccessKey | None:
        with self._lock:
            return self._refresh().get(access_key_id)

    def secret(self, access_key_id: str) -> str | None:
        key = self.get(access_key_id)
        return key.secret if key is not None else None

    def list(self) -> list[AccessKey]:
        with self._lock:
            return sorted(self._refresh().values(), key=lambda k: (k.created_at, k.access_key_id))

    def create(
        self,
        permission: Permission | str = Permission.READ,
        *,
        collections: Sequence[str] | None = None,
        description: str = "",
    ) -> AccessKey:
        """Make a new key; the returned object holds the secret, which is never shown again."""
        level = permission if isinstance(permission, Permission) else Permission.parse(permission)
        allowed = tuple(check_collection_id(c) for c in collections) if collections is not None else None
        if allowed is not None and not allowed:
            raise InvalidParameterError("a key limited to collections needs at least one collection")
        if len(description) > 256:
            raise InvalidParameterError("a key description is at most 256 characters")
        key = AccessKey(
            access_key_id="FT" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18)),
            secret=secrets.token_urlsafe(30),
            permission=level,
            collections=allowed,
            description=description,
            created_at=round(time.time(), 3),
        )
        with self._lock:
            keys = dict(self._refresh())
            keys[key.access_key_id] = key
            self._write(keys)
        return key

    def delete(self, access_key_id: str) -> None:
        with self._lock:
            keys = dict(self._refresh())
            if keys.pop(access_key_id, None) is None:
                raise NotFoundError(f"there is no access key {access_key_id!r}")
            self._write(keys)

    def _write(self, keys: dict[str, AccessKey]) -> None:
        """Replace the file atomically; the new file is 0600 from the moment it exists."""
        data = json.dumps({"keys": [_to_json(k) for k in keys.values()]}, indent=2) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StoreError(f"cannot write the access keys to {self.path}: {exc.strerror or exc}") from None
        self._stamp = None
        self._keys = keys
