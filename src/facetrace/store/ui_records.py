"""What the dashboard (``facetrace.service.ui``) keeps: sign-in sessions and a small thumbnail per indexed face.

Sessions live in the database, not in a signed cookie, so that signing out, an expiry or deleting the key ends
a session at once (SQLite: a trigger on ``access_keys`` deletes the key's sessions in the same transaction).
Only the SHA-256 of a session token is stored: a copy of the database does not let anyone sign in.

Face thumbnails (``facetrace.thumbnails.face_thumbnail``, ~5 KB each) are keyed like the face and deleted with
it (a trigger on ``faces``: deleting faces, or their collection, takes them along); a collection created
without thumbnails (``opt_out``) never gets one. The SQL is written once for SQLite and PostgreSQL
(``SqlSessions``, ``SqlThumbnails`` over a ``sql_dialect.SqlBackend``; ``postgres_ui`` lends PostgreSQL's
connections). A store without these tables (``MemoryStore``) keeps sessions in memory (``MemorySessions``: they
end when the server stops) and shows no thumbnails.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from facetrace.store.sql_dialect import SqlBackend
from facetrace.store.sqlite_db import Database
from facetrace.store.sqlite_records import SQLiteBackend

if TYPE_CHECKING:
    from facetrace.store.base import FaceStore

__all__ = [
    "MemorySessions",
    "SQLiteUiRecords",
    "SessionRecord",
    "SessionRepository",
    "SqlSessions",
    "SqlThumbnails",
    "ThumbnailRepository",
    "UiRecords",
    "ui_records_of",
]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token_hash: str
    access_key_id: str
    csrf: str
    purpose: str | None
    created_at: float
    expires_at: float

    def __repr__(self) -> str:
        return f"SessionRecord(access_key_id={self.access_key_id!r}, expires_at={self.expires_at})"


class SessionRepository(Protocol):
    def add(self, session: SessionRecord) -> None: ...
    def get(self, token_hash: str, now: float) -> SessionRecord | None:
        """The session unless it expired (or its key was deleted)."""

    def set_purpose(self, token_hash: str, purpose: str) -> None: ...
    def delete(self, token_hash: str) -> None: ...
    def delete_key(self, access_key_id: str) -> int:
        """End every session of a key (SQLite does it by trigger too; PostgreSQL and memory rely on this)."""

    def sweep(self, now: float) -> int: ...


class ThumbnailRepository(Protocol):
    def enabled(self, collection_id: str) -> bool: ...
    def opt_out(self, collection_id: str) -> None: ...
    def put(self, collection_id: str, thumbnails: Sequence[tuple[str, bytes]]) -> int:
        """Store (face id, JPEG) pairs for faces that exist in a collection that keeps thumbnails."""

    def get(self, collection_id: str, face_id: str) -> bytes | None: ...


class MemorySessions:
    """Sessions of one server process (stores without a sessions table)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, SessionRecord] = {}

    def add(self, session: SessionRecord) -> None:
        with self._lock:
            self._items[session.token_hash] = session

    def get(self, token_hash: str, now: float) -> SessionRecord | None:
        with self._lock:
            session = self._items.get(token_hash)
        return session if session is not None and session.expires_at > now else None

    def set_purpose(self, token_hash: str, purpose: str) -> None:
        with self._lock:
            if token_hash in self._items:
                self._items[token_hash] = replace(self._items[token_hash], purpose=purpose)

    def delete(self, token_hash: str) -> None:
        with self._lock:
            self._items.pop(token_hash, None)

    def delete_key(self, access_key_id: str) -> int:
        with self._lock:
            gone = [h for h, s in self._items.items() if s.access_key_id == access_key_id]
            for token_hash in gone:
                del self._items[token_hash]
        return len(gone)

    def sweep(self, now: float) -> int:
        with self._lock:
            gone = [h for h, s in self._items.items() if s.expires_at <= now]
            for token_hash in gone:
                del self._items[token_hash]
        return len(gone)


SESSION_COLUMNS = "token_hash, access_key_id, csrf, purpose, created_at, expires_at"
"""The ``ui_sessions`` columns in ``SessionRecord``'s order, on both backends (``session_from_row``)."""


def session_from_row(row: Sequence[object]) -> SessionRecord:
    """A ``SessionRecord`` from a row of ``SESSION_COLUMNS`` (SQLite or PostgreSQL)."""
    purpose = row[3]
    return SessionRecord(
        str(row[0]), str(row[1]), str(row[2]), None if purpose is None else str(purpose),
        float(row[4]), float(row[5]),  # type: ignore[arg-type]
    )  # fmt: skip


class SqlSessions:
    """``SessionRepository`` over the ``ui_sessions`` table, on either database (``sql_dialect``)."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def add(self, session: SessionRecord) -> None:
        with self._b.write("saving a dashboard session") as conn:
            conn.execute(
                self._b.dialect.sql(f"INSERT INTO ui_sessions({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),  # noqa: S608
                (session.token_hash, session.access_key_id, session.csrf, session.purpose, session.created_at,
                 session.expires_at),
            )  # fmt: skip

    def get(self, token_hash: str, now: float) -> SessionRecord | None:
        sql = f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE token_hash=? AND expires_at>?"  # noqa: S608
        with self._b.read("reading a dashboard session") as conn:
            row = conn.execute(self._b.dialect.sql(sql), (token_hash, now)).fetchone()
        return None if row is None else session_from_row(row)

    def set_purpose(self, token_hash: str, purpose: str) -> None:
        with self._b.write("saving a dashboard session") as conn:
            sql = self._b.dialect.sql("UPDATE ui_sessions SET purpose=? WHERE token_hash=?")
            conn.execute(sql, (purpose, token_hash))

    def delete(self, token_hash: str) -> None:
        with self._b.write("ending a dashboard session") as conn:
            conn.execute(self._b.dialect.sql("DELETE FROM ui_sessions WHERE token_hash=?"), (token_hash,))

    def delete_key(self, access_key_id: str) -> int:
        with self._b.write("ending dashboard sessions") as conn:
            sql = self._b.dialect.sql("DELETE FROM ui_sessions WHERE access_key_id=?")
            return int(conn.execute(sql, (access_key_id,)).rowcount)

    def sweep(self, now: float) -> int:
        with self._b.write("ending expired dashboard sessions") as conn:
            return int(
                conn.execute(self._b.dialect.sql("DELETE FROM ui_sessions WHERE expires_at<=?"), (now,)).rowcount
            )


class SqlThumbnails:
    """``ThumbnailRepository`` over the ``face_thumbnails`` and ``thumbnail_opt_out`` tables, on either
    database; a thumbnail is stored only for a face that exists, in a collection that keeps thumbnails."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def enabled(self, collection_id: str) -> bool:
        with self._b.read("reading a collection's options") as conn:
            row = conn.execute(
                self._b.dialect.sql(
                    "SELECT c.cid IN (SELECT cid FROM thumbnail_opt_out) FROM collections c WHERE c.name=?"
                ),
                (collection_id,),
            ).fetchone()
        return row is not None and not row[0]

    def opt_out(self, collection_id: str) -> None:
        with self._b.write("saving a collection's options") as conn:
            conn.execute(
                self._b.dialect.sql(
                    "INSERT INTO thumbnail_opt_out SELECT cid FROM collections WHERE name=? ON CONFLICT DO NOTHING"
                ),
                (collection_id,),
            )

    def put(self, collection_id: str, thumbnails: Sequence[tuple[str, bytes]]) -> int:
        if not thumbnails:
            return 0
        sql = self._b.dialect.sql(
            "INSERT INTO face_thumbnails(cid, face_id, jpeg) SELECT f.cid, f.face_id, ? "
            "FROM faces f JOIN collections c ON c.cid=f.cid WHERE c.name=? AND f.face_id=? "
            "AND f.cid NOT IN (SELECT cid FROM thumbnail_opt_out) "
            "ON CONFLICT (cid, face_id) DO UPDATE SET jpeg=excluded.jpeg"
        )
        stored = 0
        with self._b.write("saving face thumbnails") as conn:
            for face_id, jpeg in thumbnails:
                stored += int(conn.execute(sql, (jpeg, collection_id, face_id)).rowcount)
        return stored

    def get(self, collection_id: str, face_id: str) -> bytes | None:
        with self._b.read("reading a face thumbnail") as conn:
            row = conn.execute(
                self._b.dialect.sql(
                    "SELECT t.jpeg FROM face_thumbnails t JOIN collections c ON c.cid=t.cid "
                    "WHERE c.name=? AND t.face_id=?"
                ),
                (collection_id, face_id),
            ).fetchone()
        return None if row is None else bytes(row[0])


@dataclass(frozen=True, slots=True)
class UiRecords:
    """The dashboard's repositories in one store (``thumbnails`` None: this store keeps none)."""

    sessions: SessionRepository
    thumbnails: ThumbnailRepository | None


class SQLiteUiRecords:
    @staticmethod
    def of(db: Database) -> UiRecords:
        backend = SQLiteBackend(db)
        return UiRecords(SqlSessions(backend), SqlThumbnails(backend))


def ui_records_of(store: FaceStore) -> UiRecords | None:
    """The dashboard's repositories kept in ``store``'s database, or None (keep sessions in memory)."""
    records = getattr(store, "ui_records", None)
    return records if isinstance(records, UiRecords) else None
