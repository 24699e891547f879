"""One stream processor, one server: with several servers on one PostgreSQL database a processor runs where
its lease is held; a server that dies gives it up when its lease expires; a server cut off too long learns
that its processor was taken over and stops it (docs/deploy.md)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from facetrace.errors import AlreadyExistsError, ConflictError, NotFoundError
from facetrace.gallery import Gallery
from facetrace.store.postgres_db import PgDatabase
from facetrace.store.postgres_records import PostgresLeases, PostgresProcessors
from facetrace.video.processors import StreamProcessors
from tests.video.test_processors import definition
from tests.waiting import wait_for

TTL = 1.5  # where a lease must expire or be renewed within the test
HELD = 600.0  # where it must not: a heartbeat late on a busy machine cannot let it lapse
HOLDER_TTL = 4.0  # the doomed holder's: a sleeping process renews in time even at load 30, yet it expires soon


@pytest.fixture
def db(pg_url: str) -> Iterator[PgDatabase]:
    database = PgDatabase(pg_url)
    yield database
    database.close()


def _processors(gallery: Gallery, db: PgDatabase, owner: str) -> tuple[StreamProcessors, PostgresLeases]:
    leases = PostgresLeases(db, owner=owner, ttl=HELD)  # expiry, where tested, is forced or another's
    return StreamProcessors(gallery, repository=PostgresProcessors(db), leases=leases), leases


def _lease(db: PgDatabase, resource: str) -> tuple[str, float]:
    """(owner, expires_at) of a lease row, expired or not."""
    with db.read("reading a lease") as conn:
        row = conn.execute("SELECT owner, expires_at FROM leases WHERE resource=%s", (resource,)).fetchone()
    assert row is not None, f"no lease of {resource}"
    return str(row[0]), float(row[1])


def _expires_at(db: PgDatabase, resource: str) -> float:
    return _lease(db, resource)[1]


def _now(db: PgDatabase) -> float:
    """The database's clock: the one every lease is measured by."""
    with db.read("reading the clock") as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::double precision").fetchone()
    assert row is not None
    return float(row[0])


def test_leases_are_taken_renewed_released_and_expire(db: PgDatabase) -> None:
    a = PostgresLeases(db, owner="a", ttl=TTL)
    b = PostgresLeases(db, owner="b", ttl=TTL)
    try:
        assert a.acquire("processor:door")
        assert a.acquire("processor:door")  # ours already: kept
        assert not b.acquire("processor:door")
        assert b.holder("processor:door") == "a"
        assert b.holder("instance:a") == "a"  # a's heartbeat announces it
        first = _expires_at(db, "processor:door")
        assert wait_for(lambda: _expires_at(db, "processor:door") > first, 60), "never renewed"
        assert not b.acquire("processor:door")  # renewed by a's heartbeat
        a.release("processor:door")
        assert a.holder("processor:door") is None
        assert b.acquire("processor:door")
        assert not a.acquire("processor:door")
    finally:
        a.close()
        b.close()
    assert a.holder("processor:door") is None  # close gives every lease up
    with pytest.raises(ValueError, match="positive"):
        PostgresLeases(db, ttl=0)


def test_a_second_server_does_not_start_a_running_processor(gallery: Gallery, scene: Path, db: PgDatabase) -> None:
    a, a_leases = _processors(gallery, db, "server-a")
    b, _ = _processors(gallery, db, "server-b")
    try:
        a.create(definition("looping", scene))
        a.start("looping")
        with pytest.raises(ConflictError, match="another server"):
            b.start("looping")  # created and started through A: B knows it from the database
        assert b.resume() == []  # A runs it: B leaves it alone rather than marking it failed
        assert b.status("looping") == "RUNNING"  # as B reports it: running, on A
        with pytest.raises(ConflictError, match="another server"):
            b.delete("looping")
        a.stop("looping")  # gives the lease up at once
        assert b.status("looping") == "STOPPED"
        b.start("looping")
        assert wait_for(lambda: b.status("looping") in ("RUNNING", "STOPPED"))
        with pytest.raises(ConflictError):
            a.start("looping")
        assert a.status("looping") == "RUNNING"  # on B
        b.stop("looping")
        a.start("looping")
        # Stopped through B (behind a load balancer): A stops it at its next heartbeat, not as a failure.
        b.stop("looping")
        a_leases.renew()
        assert a.worker("looping") is None
        assert a.status("looping") == "STOPPED"
        assert b.status("looping") == "STOPPED"
        assert "StatusMessage" not in a.describe("looping")
    finally:
        a.close()
        b.close()


def test_a_dead_servers_processor_is_taken_over_after_its_lease_expires(
    gallery: Gallery, scene: Path, db: PgDatabase, pg_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from facetrace.store.postgres_db import PgDatabase\n"
            "from facetrace.store.postgres_records import PostgresLeases\n"
            f"leases = PostgresLeases(PgDatabase(sys.argv[1]), owner='doomed', ttl={HOLDER_TTL})\n"
            "assert leases.acquire('processor:looping')\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n"
        ), pg_url],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    b, _ = _processors(gallery, db, "server-b")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        b.create(definition("looping", scene))
        with pytest.raises(ConflictError):
            b.start("looping")
        # It should be running (it was, on the dead server): B's watch takes it over once the lease expired.
        repository = PostgresProcessors(db)
        stored = repository.get("looping")
        assert stored is not None
        repository.put(dataclasses.replace(stored, desired="RUNNING"))
        b.watch(0.2)
        time.sleep(HOLDER_TTL / 2)  # several rounds of B's watch
        assert b.worker("looping") is None  # not while the holder lives
        holder.kill()  # SIGKILL: no release, the heartbeat just stops
        holder.wait(30)
        owner, expiry = _lease(db, "processor:looping")  # the holder's last renewal, now final
        assert owner == "doomed"
        # Until that moment (by the database's clock, whatever the machine's load) B must leave it alone.
        while True:
            taken = b.worker("looping") is not None  # read before the clock: a takeover seen happened before it
            if _now(db) >= expiry:
                break
            assert not taken, "taken over before the dead server's lease expired"
            time.sleep(0.05)
        assert wait_for(lambda: b.worker("looping") is not None, 60), "never taken over"
        assert b.status("looping") in ("STARTING", "RUNNING", "STOPPED")  # a file source may end by itself
    finally:
        holder.kill()
        holder.wait(30)
        if holder.stdout is not None:
            holder.stdout.close()
        b.close()


def test_a_server_cut_off_too_long_stops_its_worker(
    gallery: Gallery, scene: Path, db: PgDatabase, pg_url: str
) -> None:
    a, a_leases = _processors(gallery, db, "server-a")
    b, _ = _processors(gallery, db, "server-b")
    try:
        a.create(definition("looping", scene))
        a.start("looping")
        # A's lease expires while it cannot reach the database (here: as if it had), and B takes over.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE leases SET expires_at = 0 WHERE resource = 'processor:looping'")
        b.start("looping")
        a_leases.renew()  # A's next heartbeat finds the lease taken
        assert a.status("looping") == "FAILED"
        assert a.describe("looping")["StatusMessage"] == "taken over by another server"
        assert a.worker("looping") is None
    finally:
        a.close()
        b.close()


def test_every_server_sees_processors_created_and_deleted_through_another(
    gallery: Gallery, scene: Path, db: PgDatabase
) -> None:
    a, _ = _processors(gallery, db, "server-a")
    b, _ = _processors(gallery, db, "server-b")  # started before the processor exists
    try:
        a.create(definition("door", scene))
        assert b.list()[0] == [{"Name": "door", "Status": "STOPPED"}]
        assert b.describe("door")["Input"]["Camera"] == "lobby"
        with pytest.raises(AlreadyExistsError):
            b.create(definition("door", scene))  # one name, one processor, whichever server is asked
        a.delete("door")
        with pytest.raises(NotFoundError):
            b.describe("door")
        assert b.list()[0] == []
    finally:
        a.close()
        b.close()
