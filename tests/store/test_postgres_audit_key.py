"""The keyed chain and signed checkpoints on PostgreSQL (issue 9, item 11): the same rules as SQLite, the key
from ``$FACETRACE_AUDIT_KEY`` (one key for every server sharing the database)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from facetrace.audit import AUDIT_KEY_ENV, AuditEvent, Caller, env_audit_key, sign_checkpoint
from facetrace.store.postgres import PostgresStore

KEY = "0123456789abcdef" * 4


@pytest.fixture
def pg(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    monkeypatch.setenv(AUDIT_KEY_ENV, KEY)
    store = PostgresStore(pg_url, listen=False)
    yield store
    store.close()


def test_records_are_keyed_and_a_checkpoint_catches_truncation(
    pg: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):
        pg.audit.record(AuditEvent("SearchFaces", "test", detail={"n": n}))
    key = env_audit_key()
    assert key is not None
    checkpoint = sign_checkpoint(pg.audit, key, Caller("local:test"))
    result = pg.audit.verify(checkpoint=checkpoint)
    assert (result.ok, result.keyed_from, result.authenticated, result.checkpoint_seq) == (True, 1, True, 5)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_change")
        conn.execute("DELETE FROM audit WHERE seq >= 4")
    assert pg.audit.verify().ok  # the chain alone cannot tell
    truncated = pg.audit.verify(checkpoint=checkpoint)
    assert not truncated.ok
    assert "truncated" in (truncated.reason or "")
    monkeypatch.delenv(AUDIT_KEY_ENV)
    unkeyed = pg.audit.verify()
    assert (unkeyed.ok, unkeyed.authenticated) == (True, False)  # links checked, MACs not
