# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""The review queue and unknown people as SQL, once for both backends (``ReviewRepository``,
``UnknownRepository``).

SQLite and PostgreSQL differ here only in how a connection is borrowed, the parameter marker and a table
lock, so the statements are written once with ``?`` and a backend (``sql_dialect.SqlBackend``) lends
connections and names its ``Dialect``: two twins of every query could only drift apart. The tables are created
by each backend's migration list (``sqlite_db.MIGRATIONS``, ``postgres_db.MIGRATIONS``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from facetrace.store.records import (
    ReviewCandidate,
    ReviewDecision,
    ReviewItem,
    ReviewQuery,
    Sighting,
    UnknownFace,
    UnknownPerson,
)
from facetrace.store.sql_dialect import SqlBackend
from facetrace.store.sql_sightings import upsert_sighting
from facetrace.types import BoundingBox

__all__ = ["SqlBackend", "SqlReviews", "SqlUnknowns"]


_ITEM_COLUMNS = (
    "item_id, collection_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms, "
    "box_left, box_top, box_width, box_height, candidates, review_threshold, match_threshold, template_quality, "
    "vector, vector_quality, vector_confidence, created_at, expires_at, status, decided_at, decided_by, "
    "confirmed_person, sighting_id, enrolled_face_id"
)
_MARKS = ", ".join(["?"] * 28)


def _candidates_json(candidates: Sequence[ReviewCandidate]) -> str:
    return json.dumps(
        [
            {"face_id": c.face_id, "user_id": c.user_id, "external_image_id": c.external_image_id,
             "similarity": c.similarity, "person": c.person, "rejected_by": c.rejected_by}
            for c in candidates
        ]
    )  # fmt: skip


def _candidates(text: str) -> tuple[ReviewCandidate, ...]:
    return tuple(
        ReviewCandidate(
            face_id=str(c["face_id"]), user_id=c.get("user_id"), external_image_id=c.get("external_image_id"),
            similarity=float(c["similarity"]), person=str(c["person"]), rejected_by=c.get("rejected_by"),
        )
        for c in json.loads(text)
    )  # fmt: skip


def _item_values(i: ReviewItem) -> tuple[object, ...]:
    box = i.bounding_box
    return (
        i.item_id, i.collection_id, i.source, i.camera, i.track_id, i.started_at, i.ended_at, i.start_stream_ms,
        i.end_stream_ms, box.left if box else None, box.top if box else None, box.width if box else None,
        box.height if box else None, _candidates_json(i.candidates), i.review_threshold, i.match_threshold,
        i.template_quality, i.vector, i.vector_quality, i.vector_confidence, i.created_at, i.expires_at, i.status,
        i.decided_at, i.decided_by, i.confirmed_person, i.sighting_id, i.enrolled_face_id,
    )  # fmt: skip


def _item(row: Sequence[Any], thumbnails: tuple[bytes, ...] = ()) -> ReviewItem:
    box = None if row[9] is None else BoundingBox(left=row[9], top=row[10], width=row[11], height=row[12])
    return ReviewItem(
        item_id=row[0], collection_id=row[1], source=row[2], camera=row[3], track_id=int(row[4]),
        started_at=float(row[5]), ended_at=float(row[6]), start_stream_ms=int(row[7]), end_stream_ms=int(row[8]),
        bounding_box=box, candidates=_candidates(row[13]), review_threshold=float(row[14]),
        match_threshold=float(row[15]), template_quality=row[16], vector=None if row[17] is None else bytes(row[17]),
        vector_quality=row[18], vector_confidence=row[19], created_at=float(row[20]), expires_at=float(row[21]),
        status=row[22], decided_at=row[23], decided_by=row[24], confirmed_person=row[25], sighting_id=row[26],
        enrolled_face_id=row[27], thumbnails=thumbnails,
    )  # fmt: skip


class SqlReviews:
    """``ReviewRepository`` over the ``review_items``, ``review_thumbnails`` and ``review_decisions`` tables."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def add(self, item: ReviewItem) -> None:
        b = self._b
        with b.write("saving a review item") as conn:
            conn.execute(
                b.dialect.sql(f"INSERT INTO review_items ({_ITEM_COLUMNS}) VALUES ({_MARKS})"), _item_values(item)
            )
            for rank, jpeg in enumerate(item.thumbnails):
                conn.execute(
                    b.dialect.sql("INSERT INTO review_thumbnails (item_id, rank, jpeg) VALUES (?, ?, ?)"),
                    (item.item_id, rank, jpeg),
                )

    def get(self, item_id: str, *, thumbnails: bool = False) -> ReviewItem | None:
        b = self._b
        with b.read("reading a review item") as conn:
            row = conn.execute(
                b.dialect.sql(f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE item_id = ?"),
                (item_id,),
            ).fetchone()
            if row is None:
                return None
            jpegs: tuple[bytes, ...] = ()
            if thumbnails:
                rows = conn.execute(
                    b.dialect.sql("SELECT jpeg FROM review_thumbnails WHERE item_id = ? ORDER BY rank"), (item_id,)
                ).fetchall()
                jpegs = tuple(bytes(r[0]) for r in rows)
        return _item(row, jpegs)

    def find(self, query: ReviewQuery, now: float) -> list[ReviewItem]:
        clauses, values = ["expires_at > ?"], [now]
        if query.status is not None:
            clauses.append("status = ?")
            values.append(query.status)  # type: ignore[arg-type]
        if query.source is not None:
            clauses.append("source = ?")
            values.append(query.source)  # type: ignore[arg-type]
        if query.collection_ids is not None:
            if not query.collection_ids:
                return []
            clauses.append("collection_id IN (" + ", ".join("?" * len(query.collection_ids)) + ")")
            values.extend(query.collection_ids)  # type: ignore[arg-type]
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM review_items WHERE {' AND '.join(clauses)}"
            " ORDER BY created_at DESC, item_id LIMIT ? OFFSET ?"
        )
        with self._b.read("listing review items") as conn:
            rows = conn.execute(self._b.dialect.sql(sql), (*values, query.limit, query.offset)).fetchall()
        return [_item(row) for row in rows]

    def decide(
        self, item: ReviewItem, decisions: Sequence[ReviewDecision], sighting: Sighting | None = None
    ) -> bool:
        b = self._b
        with b.write("saving a review decision") as conn:
            row = conn.execute(
                b.dialect.sql("SELECT status FROM review_items WHERE item_id = ?"), (item.item_id,)
            ).fetchone()
            if row is None or row[0] != "PENDING":
                return False
            conn.execute(
                b.dialect.sql(
                    "UPDATE review_items SET candidates = ?, status = ?, decided_at = ?, decided_by = ?,"
                    " confirmed_person = ?, sighting_id = ?, enrolled_face_id = ? WHERE item_id = ?"
                ),
                (
                    _candidates_json(item.candidates), item.status, item.decided_at, item.decided_by,
                    item.confirmed_person, item.sighting_id, item.enrolled_face_id, item.item_id,
                ),
            )  # fmt: skip
            for decision in decisions:
                conn.execute(
                    b.dialect.sql(
                        "INSERT INTO review_decisions (item_id, source, track_id, action, person, reviewer, reason,"
                        " decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        decision.item_id, item.source, item.track_id, decision.action, decision.person,
                        decision.reviewer, decision.reason, decision.decided_at,
                    ),
                )  # fmt: skip
            if sighting is not None:
                upsert_sighting(b.dialect, conn, sighting)
        return True

    def rejected(self, source: str, track_id: int) -> set[str]:
        b = self._b
        with b.read("reading review decisions") as conn:
            rows = conn.execute(
                b.dialect.sql(
                    "SELECT person FROM review_decisions WHERE source = ? AND track_id = ? AND action = 'REJECT'"
                ),
                (source, track_id),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def decisions(self, item_id: str) -> list[ReviewDecision]:
        b = self._b
        with b.read("reading review decisions") as conn:
            rows = conn.execute(
                b.dialect.sql(
                    "SELECT item_id, action, person, reviewer, reason, decided_at FROM review_decisions"
                    " WHERE item_id = ? ORDER BY decided_at"
                ),
                (item_id,),
            ).fetchall()
        return [ReviewDecision(r[0], r[1], r[2], r[3], r[4], float(r[5])) for r in rows]

    def sweep(self, now: float) -> int:
        b = self._b
        with b.write("sweeping review items") as conn:
            conn.execute(
                b.dialect.sql(
                    "DELETE FROM review_thumbnails WHERE item_id IN"
                    " (SELECT item_id FROM review_items WHERE expires_at <= ?)"
                ),
                (now,),
            )
            return int(
                conn.execute(b.dialect.sql("DELETE FROM review_items WHERE expires_at <= ?"), (now,)).rowcount
            )


_PERSON_COLUMNS = "unknown_id, number, collection_id, first_seen, last_seen, seen, cameras, expires_at, named_user"
_FACE_COLUMNS = (
    "face_id, unknown_id, collection_id, source, camera, track_id, seen_at, vector, quality, weight, {thumbnail}, "
    "expires_at"
)


def _person(r: Sequence[Any]) -> UnknownPerson:
    return UnknownPerson(
        unknown_id=r[0], number=int(r[1]), collection_id=r[2], first_seen=float(r[3]), last_seen=float(r[4]),
        seen=int(r[5]), cameras=tuple(json.loads(r[6])), expires_at=float(r[7]), named_user=r[8],
    )  # fmt: skip


def _face(r: Sequence[Any]) -> UnknownFace:
    return UnknownFace(
        face_id=r[0], unknown_id=r[1], collection_id=r[2], source=r[3], camera=r[4], track_id=int(r[5]),
        seen_at=float(r[6]), vector=bytes(r[7]), quality=r[8], weight=float(r[9]),
        thumbnail=None if r[10] is None else bytes(r[10]), expires_at=float(r[11]),
    )  # fmt: skip


class SqlUnknowns:
    """``UnknownRepository`` over the ``unknown_people`` and ``unknown_faces`` tables."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def groups(self, collection_id: str, now: float) -> list[tuple[UnknownPerson, list[UnknownFace]]]:
        b = self._b
        with b.read("reading unknown people") as conn:
            people = [
                _person(r)
                for r in conn.execute(
                    b.dialect.sql(
                        f"SELECT {_PERSON_COLUMNS} FROM unknown_people"
                        " WHERE collection_id = ? AND expires_at > ? AND named_user IS NULL"
                    ),
                    (collection_id, now),
                ).fetchall()
            ]
            faces: dict[str, list[UnknownFace]] = {p.unknown_id: [] for p in people}
            rows = conn.execute(
                b.dialect.sql(
                    f"SELECT {_FACE_COLUMNS.format(thumbnail='NULL')} FROM unknown_faces"
                    " WHERE collection_id = ? AND expires_at > ?"
                ),
                (collection_id, now),
            ).fetchall()
        for row in rows:
            face = _face(row)
            if face.unknown_id in faces:
                faces[face.unknown_id].append(face)
        return [(p, faces[p.unknown_id]) for p in people if faces[p.unknown_id]]

    def add_face(self, face: UnknownFace, person: UnknownPerson | None) -> UnknownPerson:
        b = self._b
        with b.write("saving an unknown face") as conn:
            if person is None:
                b.dialect.lock(
                    conn, "unknown_people"
                )  # two servers numbering new groups at once: one after the other
                row = conn.execute(
                    b.dialect.sql("SELECT COALESCE(MAX(number), 0) + 1 FROM unknown_people")
                ).fetchone()
                person = UnknownPerson(
                    unknown_id=face.unknown_id, number=int(row[0]), collection_id=face.collection_id,
                    first_seen=face.seen_at, last_seen=face.seen_at, seen=1, cameras=(face.camera,),
                    expires_at=face.expires_at,
                )  # fmt: skip
                conn.execute(
                    b.dialect.sql(f"INSERT INTO unknown_people ({_PERSON_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    (
                        person.unknown_id, person.number, person.collection_id, person.first_seen, person.last_seen,
                        person.seen, json.dumps(list(person.cameras)), person.expires_at, None,
                    ),
                )  # fmt: skip
            else:
                row = conn.execute(
                    b.dialect.sql(f"SELECT {_PERSON_COLUMNS} FROM unknown_people WHERE unknown_id = ?"),
                    (person.unknown_id,),
                ).fetchone()
                stored = _person(row) if row is not None else person
                cameras = tuple(sorted({*stored.cameras, face.camera}))
                person = UnknownPerson(
                    unknown_id=stored.unknown_id, number=stored.number, collection_id=stored.collection_id,
                    first_seen=min(stored.first_seen, face.seen_at), last_seen=max(stored.last_seen, face.seen_at),
                    seen=stored.seen + 1, cameras=cameras, expires_at=max(stored.expires_at, face.expires_at),
                    named_user=stored.named_user,
                )  # fmt: skip
                conn.execute(
                    b.dialect.sql(
                        "UPDATE unknown_people SET first_seen = ?, last_seen = ?, seen = ?, cameras = ?,"
                        " expires_at = ? WHERE unknown_id = ?"
                    ),
                    (
                        person.first_seen, person.last_seen, person.seen, json.dumps(list(cameras)),
                        person.expires_at, person.unknown_id,
                    ),
                )  # fmt: skip
            conn.execute(
                b.dialect.sql(f"INSERT INTO unknown_faces ({_FACE_COLUMNS.format(thumbnail='thumbnail')})"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (
                    face.face_id, person.unknown_id, face.collection_id, face.source, face.camera, face.track_id,
                    face.seen_at, face.vector, face.quality, face.weight, face.thumbnail, face.expires_at,
                ),
            )  # fmt: skip
        return person

    def find(
        self, collection_ids: tuple[str, ...] | None, now: float, limit: int, offset: int
    ) -> list[UnknownPerson]:
        clauses, values = ["expires_at > ?"], [now]
        if collection_ids is not None:
            if not collection_ids:
                return []
            clauses.append("collection_id IN (" + ", ".join("?" * len(collection_ids)) + ")")
            values.extend(collection_ids)  # type: ignore[arg-type]
        sql = (
            f"SELECT {_PERSON_COLUMNS} FROM unknown_people WHERE {' AND '.join(clauses)}"
            " ORDER BY last_seen DESC, unknown_id LIMIT ? OFFSET ?"
        )
        with self._b.read("listing unknown people") as conn:
            rows = conn.execute(self._b.dialect.sql(sql), (*values, limit, offset)).fetchall()
        return [_person(r) for r in rows]

    def get(self, unknown_id: str) -> UnknownPerson | None:
        b = self._b
        with b.read("reading an unknown person") as conn:
            row = conn.execute(
                b.dialect.sql(f"SELECT {_PERSON_COLUMNS} FROM unknown_people WHERE unknown_id = ?"),
                (unknown_id,),
            ).fetchone()
        return None if row is None else _person(row)

    def faces(self, unknown_id: str, *, thumbnails: bool = False) -> list[UnknownFace]:
        b = self._b
        columns = _FACE_COLUMNS.format(thumbnail="thumbnail" if thumbnails else "NULL")
        with b.read("reading unknown faces") as conn:
            rows = conn.execute(
                b.dialect.sql(f"SELECT {columns} FROM unknown_faces WHERE unknown_id = ? ORDER BY seen_at"),
                (unknown_id,),
            ).fetchall()
        return [_face(r) for r in rows]

    def mark_named(self, unknown_id: str, user_id: str) -> None:
        b = self._b
        with b.write("naming an unknown person") as conn:
            conn.execute(
                b.dialect.sql("UPDATE unknown_people SET named_user = ? WHERE unknown_id = ?"),
                (user_id, unknown_id),
            )

    def sweep(self, now: float) -> int:
        b = self._b
        with b.write("sweeping unknown people") as conn:
            conn.execute(b.dialect.sql("DELETE FROM unknown_faces WHERE expires_at <= ?"), (now,))
            return int(
                conn.execute(b.dialect.sql("DELETE FROM unknown_people WHERE expires_at <= ?"), (now,)).rowcount
            )
