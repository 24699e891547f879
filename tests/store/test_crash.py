"""An acknowledged write survives ``kill -9``: a real child process writes, is killed, and we reopen."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

import facetrace
from facetrace.store import SQLiteStore
from tests.store import crash_writer


def _write_until_killed(db: Path, start: int, acks_wanted: int) -> list[int]:
    """Run the writer from batch ``start``, SIGKILL it after ``acks_wanted`` acks; the batches it acked."""
    src = str(Path(facetrace.__file__).resolve().parents[1])  # importable even when not installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    child = subprocess.Popen(
        [sys.executable, crash_writer.__file__, str(db), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: list[int] = []
    assert child.stdout is not None
    try:
        for line in child.stdout:
            acked.append(int(line.split()[1]))
            if len(acked) >= acks_wanted:
                break
        child.send_signal(signal.SIGKILL)  # mid-write: the child never stops between acks
    finally:
        child.kill()
        _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    assert len(acked) == acks_wanted, err
    return acked


def _check_acked(db: Path, acked: list[int]) -> int:
    """Everything acknowledged is there, intact; the database is consistent. Returns the next batch number."""
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SQLiteStore(db)
    try:
        info = store.describe_collection("c")
        listed = []
        token = None
        while True:
            page = store.list_faces("c", limit=500, next_token=token)
            listed.extend(page.items)
            token = page.next_token
            if token is None:
                break
        assert info.face_count == len(listed)  # the counter moved in the same transactions as the rows
        assert info.face_count >= len(acked) * crash_writer.PER_BATCH
        for b in acked:
            faces = crash_writer.batch(b)
            stored = store.get_faces("c", [f.face_id for f, _ in faces])
            assert [f.face_id for f in stored] == [f.face_id for f, _ in faces]
            for record, vector in faces:
                np.testing.assert_array_equal(store.get_vector("c", record.face_id), vector)
            user = crash_writer.user_of(b)
            if user is not None:
                assert stored[0].user_id == user
                assert store.get_user("c", user).face_count == 1
        last_record, last_vector = crash_writer.batch(acked[-1])[-1]
        assert store.search("c", last_vector, limit=1, min_cosine=0.99)[0].face.face_id == last_record.face_id
        # Unacknowledged batches may or may not be there, but never half: faces come in whole batches.
        assert len(listed) % crash_writer.PER_BATCH == 0
        return len(listed) // crash_writer.PER_BATCH
    finally:
        store.close()


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "facetrace.db"
    acked = _write_until_killed(db, 0, 150)
    next_batch = _check_acked(db, acked)
    # Recovery leaves a database that takes writes again, and survives a second kill.
    acked_again = _write_until_killed(db, next_batch, 60)
    _check_acked(db, acked + acked_again)
