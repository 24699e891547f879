"""Access keys: who may call the server, with what permission, on which collections.

SigV4 is an HMAC, so the server needs each key's *secret* to check a signature; a hash would not do. The
secrets therefore live in the store's database (the ``access_keys`` table of ``<home>/facetrace.db``, a file
only its owner may read, 0600, or of the PostgreSQL database the servers share: a key created through any of
them works on all), and are shown once, when the key is created. Nothing logs them
(``AccessKey.__repr__`` and ``KeyRecord.__repr__`` hide the secret). A ``keys.json`` left by an older
facetrace is imported when the home is opened and then deleted (``store/legacy.py``).

Permissions are ordered: ``read`` (list, describe, detect, compare, search) < ``write`` (index, delete
faces, users) < ``admin`` (create and delete collections). A key may be limited to named collections: it can
neither see nor change any other, and ``ListCollections`` shows it only its own.

Every lookup reads the database, so keys created or deleted while the server runs take effect at once.
"""

from __future__ import annotations

import enum
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facetrace.errors import InvalidParameterError, NotFoundError, StoreError
from facetrace.store.records import KeyRecord, KeyRepository
from facetrace.validation import check_collection_id

if TYPE_CHECKING:
    from facetrace.store import FaceStore

__all__ = ["KEYS_FILE", "AccessKey", "KeyStore", "Permission"]

KEYS_FILE = "keys.json"
"""Where facetrace before schema 3 kept the keys (imported, then deleted, when the home is opened)."""
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


def _record(key: AccessKey) -> KeyRecord:
    return KeyRecord(
        key.access_key_id, key.secret, str(key.permission), key.collections, key.description, key.created_at
    )


def _key(record: KeyRecord) -> AccessKey:
    return AccessKey(
        access_key_id=record.access_key_id,
        secret=record.secret,
        permission=Permission.parse(record.permission),
        collections=record.collections,
        description=record.description,
        created_at=record.created_at,
    )


class KeyStore:
    """The access keys in a ``KeyRepository`` (given a path: the facetrace database at that path)."""

    def __init__(self, repository: KeyRepository | Path | str) -> None:
        self._owned: FaceStore | None = None
        if isinstance(repository, str | Path):
            from facetrace.store import SQLiteStore

            self._owned = SQLiteStore(Path(repository))
            repository = self._owned.records.keys
        self.repository: KeyRepository = repository

    @classmethod
    def in_home(cls, home: Path | None, *, url: str | None = None) -> KeyStore:
        """The keys in the PostgreSQL database at ``url`` (shared by every server on it), or without a URL in
        ``home``'s embedded database whatever ``$FACETRACE_DATABASE_URL`` says (an older home's keys.json is
        imported on the way). The CLI resolves the URL from ``--database-url`` and the environment."""
        from facetrace.store import open_home_store, open_store, records_of

        store = open_store(url=url, listen=False) if url is not None else open_home_store(home)
        records = records_of(store)
        if records is None:  # pragma: no cover - open_store gives SQLite or PostgreSQL, both keep keys
            store.close()
            raise StoreError("this store keeps no access keys")
        keys = cls(records.keys)
        keys._owned = store
        return keys

    def get(self, access_key_id: str) -> AccessKey | None:
        record = self.repository.get(access_key_id)
        return None if record is None else _key(record)

    def secret(self, access_key_id: str) -> str | None:
        key = self.get(access_key_id)
        return key.secret if key is not None else None

    def list(self) -> list[AccessKey]:
        return [_key(record) for record in self.repository.list()]

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
        self.repository.add(_record(key))
        return key

    def delete(self, access_key_id: str) -> None:
        if not self.repository.delete(access_key_id):
            raise NotFoundError(f"there is no access key {access_key_id!r}")

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
