"""The dashboard's records in PostgreSQL (``store/ui_records.py`` says what they are): sessions and face
thumbnails, with the deletions SQLite does by trigger done by foreign keys (``ON DELETE CASCADE``)."""

from __future__ import annotations

from collections.abc import Sequence

from facetrace.store.postgres_db import PgDatabase
from facetrace.store.ui_records import SESSION_COLUMNS, SessionRecord, UiRecords, session_from_row

__all__ = ["PostgresSessions", "PostgresThumbnails", "postgres_ui_records"]


class PostgresSessions:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def add(self, session: SessionRecord) -> None:
        with self._db.transaction("saving a dashboard session") as conn:
            conn.execute(
                f"INSERT INTO ui_sessions({SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
                (session.token_hash, session.access_key_id, session.csrf, session.purpose, session.created_at,
                 session.expires_at),
            )  # fmt: skip

    def get(self, token_hash: str, now: float) -> SessionRecord | None:
        with self._db.read("reading a dashboard session") as conn:
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM ui_sessions WHERE token_hash=%s AND expires_at>%s",  # noqa: S608
                (token_hash, now),
            ).fetchone()
        if row is None:
            return None
        return session_from_row(row)

    def set_purpose(self, token_hash: str, purpose: str) -> None:
        with self._db.transaction("saving a dashboard session") as conn:
            conn.execute("UPDATE ui_sessions SET purpose=%s WHERE token_hash=%s", (purpose, token_hash))

    def delete(self, token_hash: str) -> None:
        with self._db.transaction("ending a dashboard session") as conn:
            conn.execute("DELETE FROM ui_sessions WHERE token_hash=%s", (token_hash,))

    def delete_key(self, access_key_id: str) -> int:
        with self._db.transaction("ending dashboard sessions") as conn:
            return int(conn.execute("DELETE FROM ui_sessions WHERE access_key_id=%s", (access_key_id,)).rowcount)

    def sweep(self, now: float) -> int:
        with self._db.transaction("ending expired dashboard sessions") as conn:
            return int(conn.execute("DELETE FROM ui_sessions WHERE expires_at<=%s", (now,)).rowcount)


class PostgresThumbnails:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def enabled(self, collection_id: str) -> bool:
        with self._db.read("reading a collection's options") as conn:
            row = conn.execute(
                "SELECT c.cid IN (SELECT cid FROM thumbnail_opt_out) FROM collections c WHERE c.name=%s",
                (collection_id,),
            ).fetchone()
        return row is not None and not row[0]

    def opt_out(self, collection_id: str) -> None:
        with self._db.transaction("saving a collection's options") as conn:
            conn.execute(
                "INSERT INTO thumbnail_opt_out SELECT cid FROM collections WHERE name=%s ON CONFLICT DO NOTHING",
                (collection_id,),
            )

    def put(self, collection_id: str, thumbnails: Sequence[tuple[str, bytes]]) -> int:
        stored = 0
        if not thumbnails:
            return 0
        with self._db.transaction("saving face thumbnails") as conn:
            for face_id, jpeg in thumbnails:
                stored += conn.execute(
                    "INSERT INTO face_thumbnails(cid, face_id, jpeg) SELECT f.cid, f.face_id, %s "
                    "FROM faces f JOIN collections c ON c.cid=f.cid WHERE c.name=%s AND f.face_id=%s "
                    "AND f.cid NOT IN (SELECT cid FROM thumbnail_opt_out) "
                    "ON CONFLICT (cid, face_id) DO UPDATE SET jpeg=EXCLUDED.jpeg",
                    (jpeg, collection_id, face_id),
                ).rowcount
        return stored

    def get(self, collection_id: str, face_id: str) -> bytes | None:
        with self._db.read("reading a face thumbnail") as conn:
            row = conn.execute(
                "SELECT t.jpeg FROM face_thumbnails t JOIN collections c ON c.cid=t.cid "
                "WHERE c.name=%s AND t.face_id=%s",
                (collection_id, face_id),
            ).fetchone()
        return None if row is None else bytes(row[0])


def postgres_ui_records(db: PgDatabase) -> UiRecords:
    return UiRecords(PostgresSessions(db), PostgresThumbnails(db))
