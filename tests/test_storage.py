"""The store itself: group commit isolation, durability settings, migrations."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from jobcontrol.service.core.engine import stamp
from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.core.model import Collection, HistoryEntry, Job, Profile, State, Task
from jobcontrol.service.core.ports import PurgePage, Tx
from jobcontrol.service.storage.database import PostgresStore, SqliteStore, open_store
from jobcontrol.service.storage.migrate import SchemaTooNew, config
from jobcontrol.service.storage.schema import metadata
from tests.conftest import database_url

pytestmark = pytest.mark.backends
Store = SqliteStore | PostgresStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The test's backend: `SqliteStore` on a file, or `PostgresStore` on a new database
    of the session's embedded PostgreSQL."""
    s = open_store(database_url(tmp_path), read_pool_size=2)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def _collection(cid: str) -> Collection:
    return Collection(collection_id=cid, profile=Profile.SCHEDULED, uid=cid, etag="e")


async def test_group_commit_one_failure_does_not_fail_its_neighbours(store: Store) -> None:
    """Writer: of 50 concurrent writes sharing transactions, the one that fails after
    writing is rolled back alone; the other 49 are committed and answered."""

    def insert(cid: str, fail: bool = False) -> Callable[[Tx], Awaitable[str]]:
        async def fn(tx: Tx) -> str:
            await tx.insert_collection(_collection(cid))
            if fail:
                raise DomainError(Reason.INVALID_FIELD, "refused after writing")
            return cid

        return fn

    writes = [store.write(insert(f"c{i}", fail=(i == 25))) for i in range(50)]
    results = await asyncio.gather(*writes, return_exceptions=True)
    failed = [r for r in results if isinstance(r, DomainError)]
    assert len(failed) == 1 and failed[0].reason is Reason.INVALID_FIELD
    assert sorted(r for r in results if isinstance(r, str)) == sorted(
        f"c{i}" for i in range(50) if i != 25
    )
    stored = await store.read(lambda tx: tx.list_collections(None, 100))
    assert {c.collection_id for c in stored} == {f"c{i}" for i in range(50) if i != 25}


async def test_storage_error_becomes_domain_error(store: Store) -> None:
    """Storage errors surface as domain errors (here a duplicate primary key), never as
    raw SQLAlchemy exceptions, and the neighbours are unaffected."""

    async def dup(tx: Tx) -> None:
        await tx.insert_collection(_collection("same"))
        await tx.insert_collection(_collection("same"))

    async def ok(tx: Tx) -> str:
        await tx.insert_collection(_collection("other"))
        return "other"

    results = await asyncio.gather(store.write(dup), store.write(ok), return_exceptions=True)
    assert isinstance(results[0], DomainError)
    assert results[0].reason in (Reason.INTERNAL_ERROR, Reason.STORAGE_UNAVAILABLE)
    assert results[1] == "other"


async def test_sqlite_runs_wal_with_full_sync_and_foreign_keys(store: Store, backend: str) -> None:
    """Durability settings: journal_mode=WAL, synchronous=FULL (2), foreign_keys on."""
    if backend != "sqlite":
        pytest.skip("SQLite's settings (PostgreSQL: test_postgres_commits_synchronously)")

    async def pragmas(tx: Tx) -> tuple[str, int, int]:
        conn = tx.conn  # type: ignore[attr-defined]
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
        fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
        return mode, sync, fks

    assert await store.write(pragmas) == ("wal", 2, 1)
    assert await store.read(pragmas) == ("wal", 2, 1)


async def test_migrations_match_the_schema(store: Store) -> None:
    """Alembic: the migrated database equals schema.py (no missing migration)."""

    async def diff(tx: Tx) -> list[object]:
        conn = tx.conn  # type: ignore[attr-defined]
        return await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )

    assert await store.read(diff) == []


async def test_postgres_commits_synchronously(store: Store, backend: str) -> None:
    """Durability on PostgreSQL: synchronous_commit on, READ COMMITTED, and writes inside
    an explicit transaction (txid stays one across a write's statements)."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's settings (SQLite: test_sqlite_runs_wal_...)")

    async def settings(tx: Tx) -> tuple[str, str, bool]:
        conn = tx.conn  # type: ignore[attr-defined]
        sync = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        level = (await conn.execute(text("SHOW transaction_isolation"))).scalar_one()
        first = (await conn.execute(text("SELECT txid_current()"))).scalar_one()
        second = (await conn.execute(text("SELECT txid_current()"))).scalar_one()
        return sync, level, first == second

    assert await store.write(settings) == ("on", "read committed", True)


def _job(cid: str, job_id: str) -> Job:
    return Job(collection_id=cid, job_id=job_id, profile=Profile.SCHEDULED, state=State.ENABLED,
               uid=job_id, etag="e0")  # fmt: skip


async def test_migrations_run_once_when_replicas_start_together(tmp_path: Path) -> None:
    """R5: Migrations: three stores opening one new database at once all start (PostgreSQL:
    under an advisory lock, the others wait), and the schema is at head exactly once."""
    url = database_url(tmp_path)
    stores = [open_store(url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:

        async def versions(tx: Tx) -> list[str]:
            conn = tx.conn  # type: ignore[attr-defined]
            return list(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )

        head = ScriptDirectory.from_config(config()).get_current_head()
        assert await stores[0].read(versions) == [head]
    finally:
        for s in stores:
            await s.close()


async def test_newer_schema_is_refused(store: Store, tmp_path: Path) -> None:
    """R5: Start-up against a schema newer than the code knows is refused with a message
    naming the revision, and the database is left as it was."""

    async def bump(tx: Tx) -> None:
        conn = tx.conn  # type: ignore[attr-defined]
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    await store.write(bump)
    later = open_store(store.url.render_as_string(hide_password=False), read_pool_size=1)
    with pytest.raises(SchemaTooNew, match="revision 9999, newer than this jobcontrol knows"):
        await later.open()
    await later.close()


async def test_update_of_a_row_another_writer_changed_runs_again(
    store: Store, backend: str
) -> None:
    """R1: Replicas: an update names the version it read (`WHERE pk = ? AND version = ?`); a
    row another writer changed meanwhile is not overwritten: the request runs again in a
    later transaction and decides on the winner's row (here it appends to its label)."""
    if backend != "postgres":
        pytest.skip("one SQLite writer per file: no other writer can interleave")
    other = open_store(store.url.render_as_string(hide_password=False), read_pool_size=1)
    await other.open()
    try:
        await store.write(lambda tx: tx.insert_collection(_collection("c")))
        await store.write(lambda tx: tx.insert_job(_job("c", "j"), "j", None))
        runs: list[str] = []

        async def append(tx: Tx, mark: str, race: bool) -> None:
            job = await tx.get_job("c", "j")
            assert job is not None
            runs.append(mark)
            if race and len(runs) == 1:  # another replica commits after this one read
                await other.write(lambda tx2: append(tx2, "B", race=False))
            job.labels["seq"] = job.labels.get("seq", "") + mark
            stamp(job, 1)
            await tx.update_job(job, None)

        await store.write(lambda tx: append(tx, "A", race=True))
        stored = await store.read(lambda tx: tx.get_job("c", "j"))
        assert stored is not None
        assert runs == ["A", "B", "A"] and stored.labels == {"seq": "BA"} and stored.version == 2
    finally:
        await other.close()


async def test_write_waiting_on_a_row_another_replica_holds_gives_up_unavailable(
    store: Store, backend: str
) -> None:
    """R2: Replicas: a write that waits on a row another replica's open batch holds waits at
    most the writer's lock_timeout per run (not deadlock_timeout), runs again, and after
    RETRIES runs fails STORAGE_UNAVAILABLE (retry) with nothing written; the holder's
    batch commits."""
    if backend != "postgres":
        pytest.skip("one SQLite writer per file: no other transaction can hold the row")
    other = open_store(store.url.render_as_string(hide_password=False), read_pool_size=1)
    await other.open()
    try:
        await store.write(lambda tx: tx.insert_collection(_collection("c")))
        await store.write(lambda tx: tx.insert_job(_job("c", "j"), "j", None))

        async def mark(tx: Tx, value: str) -> None:
            job = await tx.get_job("c", "j")
            assert job is not None
            job.labels["by"] = value
            stamp(job, 1)
            await tx.update_job(job, None)

        async def hold_then_race(tx: Tx) -> BaseException | None:
            await mark(tx, "holder")  # this batch now holds the row until it commits
            try:
                await asyncio.wait_for(other.write(lambda tx2: mark(tx2, "blocked")), 5)
            except DomainError as exc:
                return exc
            return None

        lost = await store.write(hold_then_race)
        assert isinstance(lost, DomainError) and lost.reason is Reason.STORAGE_UNAVAILABLE
        assert str(lost) == "too much contention on this resource; retry"
        stored = await other.read(lambda tx: tx.get_job("c", "j"))
        assert stored is not None and stored.labels == {"by": "holder"}
        assert stored.version == 1
    finally:
        await other.close()


async def test_lease_is_held_by_one_replica_until_it_expires(store: Store) -> None:
    """R4: Leases: one owner at a time; the same owner keeps its attempt; once expired (on
    the database's clock) another owner takes it with the next attempt, and the first
    owner's fenced renew and release then change nothing."""
    minute = 60_000_000
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "a", minute)) == 1
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "b", minute)) is None
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "a", minute)) == 1
    assert await store.write(lambda tx: tx.renew_lease("reap:x", "a", 1, -1)) is True  # expired
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "b", minute)) == 2
    assert await store.write(lambda tx: tx.renew_lease("reap:x", "a", 1, minute)) is False
    await store.write(lambda tx: tx.release_lease("reap:x", "a", 1))
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "a", minute)) is None
    await store.write(lambda tx: tx.release_lease("reap:x", "b", 2))
    assert await store.write(lambda tx: tx.claim_lease("reap:x", "a", minute)) == 1


async def test_lease_claim_skips_a_row_another_replica_is_claiming(
    store: Store, backend: str
) -> None:
    """R4: PostgreSQL: a lease row locked by another replica's open transaction is skipped
    (`FOR UPDATE SKIP LOCKED`): the claim returns None at once instead of waiting."""
    if backend != "postgres":
        pytest.skip("one SQLite writer per file: no other transaction can hold the row")
    other = open_store(store.url.render_as_string(hide_password=False), read_pool_size=1)
    await other.open()
    try:
        await store.write(lambda tx: tx.claim_lease("reap:y", "a", -1))  # expired, free

        async def claim_then_race(tx: Tx) -> tuple[int | None, int | None]:
            mine = await tx.claim_lease("reap:y", "a", 60_000_000)
            theirs = await asyncio.wait_for(
                other.write(lambda tx2: tx2.claim_lease("reap:y", "b", 60_000_000)), 5
            )
            return mine, theirs

        assert await store.write(claim_then_race) == (2, None)
    finally:
        await other.close()


class Notices:
    """Calls of an `on_work` callback, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[None] = asyncio.Queue()

    def __call__(self) -> None:
        self.queue.put_nowait(None)

    async def next(self, within: float = 5.0) -> bool:
        try:
            await asyncio.wait_for(self.queue.get(), within)
        except TimeoutError:
            return False
        return True


_announced = itertools.count()


async def _announce(tx: Tx, fail: bool = False) -> None:
    await tx.announce_work()
    await tx.insert_collection(_collection(f"n{next(_announced)}"))
    if fail:
        raise DomainError(Reason.INVALID_FIELD, "refused after announcing")


async def test_work_notice_reaches_every_replica_on_commit_only(store: Store, backend: str) -> None:
    """W14: PostgreSQL: a write that announces work notifies the `on_work` callbacks of
    every store on the database (its own and another replica's) once it commits; a
    request whose SAVEPOINT rolled back (beside a kept neighbour that announced nothing)
    sends nothing."""
    if backend != "postgres":
        pytest.skip("SQLite: one server per file, woken in-process")
    other = open_store(store.url.render_as_string(hide_password=False), read_pool_size=1)
    await other.open()
    mine, theirs = Notices(), Notices()
    try:
        store.on_work(mine)
        other.on_work(theirs)
        assert await mine.next() and await theirs.next()  # listening (a wake, harmless)
        results = await asyncio.gather(
            store.write(lambda tx: _announce(tx, fail=True)),
            store.write(lambda tx: tx.insert_collection(_collection("quiet"))),
            return_exceptions=True,
        )
        assert isinstance(results[0], DomainError) and results[1] is None
        assert not await mine.next(0.5) and not await theirs.next(0.1)
        await store.write(_announce)
        assert await mine.next() and await theirs.next()
        await asyncio.gather(*(other.write(_announce) for _ in range(20)))
        assert await mine.next() and await theirs.next()
    finally:
        await other.close()


async def test_work_listener_reconnects_after_its_connection_is_killed(
    store: Store, backend: str
) -> None:
    """W14: PostgreSQL: the listening connection terminated by the server is made again
    (waiters are woken then: a notice may have been missed), and notices arrive again;
    nothing fails meanwhile."""
    if backend != "postgres":
        pytest.skip("SQLite: no listening connection")
    notices = Notices()
    store.on_work(notices)
    assert await notices.next()
    killed = await store.read(
        lambda tx: tx.conn.execute(  # type: ignore[attr-defined]
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
        )
    )
    assert killed.scalar_one() == 1
    assert await notices.next()  # listening again
    await store.write(_announce)
    assert await notices.next()


async def test_update_writes_every_column_that_differs_from_the_stored_row(
    store: Store,
) -> None:
    """An update sets the columns it changed since its read (SQLite: only those, so that
    unchanged indexes are not rewritten), and every column once anything else wrote since
    that read: a value changed by another statement in between is put back, not kept."""
    await store.write(lambda tx: tx.insert_collection(_collection("c")))
    job = _job("c", "j")
    job.display_name = "original"
    await store.write(lambda tx: tx.insert_job(job, "j", None))

    async def rename(tx: Tx) -> None:
        read = await tx.get_job("c", "j")
        assert read is not None
        read.labels = {"k": "v"}
        stamp(read, 1)
        await tx.update_job(read, None)

    await store.write(rename)
    renamed = await store.read(lambda tx: tx.get_job("c", "j"))
    assert renamed is not None
    assert (renamed.labels, renamed.display_name, renamed.version) == ({"k": "v"}, "original", 1)

    async def interleaved(tx: Tx) -> None:
        read = await tx.get_job("c", "j")
        assert read is not None
        sql = text("UPDATE jobs SET display_name = 'other', state = 'DISABLED'")
        await tx.conn.execute(sql)  # type: ignore[attr-defined]  # SqlTx's connection
        read.labels = {}
        stamp(read, 2)
        await tx.update_job(read, None)

    await store.write(interleaved)
    stored = await store.read(lambda tx: tx.get_job("c", "j"))
    assert stored is not None
    assert (stored.labels, stored.display_name, stored.state) == ({}, "original", State.ENABLED)


async def test_purge_page_deletes_a_page_of_jobs_with_their_tasks_and_history_only(
    store: Store,
) -> None:
    """A bulk purge's chunk (`purge_page`) removes the first `limit` jobs after its key that
    meet its conditions (filter, states, types kept), with their tasks and history, and
    returns how many and the last key; it leaves every other job (other collections, other
    states, kept types) and its children."""
    await store.write(lambda tx: tx.insert_collection(_collection("c")))
    await store.write(lambda tx: tx.insert_collection(_collection("d")))
    kinds: dict[str, tuple[State, str | None]] = {
        "j0": (State.ENABLED, None),
        "j1": (State.ENABLED, None),
        "j2": (State.ENABLED, None),
        "j3": (State.DISABLED, None),
        "j4": (State.ENABLED, "NAS"),
        "j5": (State.ENABLED, "FILE"),
    }

    async def seed(tx: Tx) -> dict[tuple[str, str], int]:
        pks = {}
        for cid, (job_id, (state, job_type)) in itertools.product(("c", "d"), kinds.items()):
            job = _job(cid, job_id)
            job.state = state
            pk = await tx.insert_job(job, job_id, job_type)
            name = f"collections/{cid}/jobs/{job_id}"
            await tx.insert_task(Task(job_pk=pk, job_name=name, task_id="t"))
            await tx.insert_history(HistoryEntry(pk, name, "COMPLETED", state))
            pks[cid, job_id] = pk
        return pks

    pks = await store.write(seed)
    assert await store.write(lambda tx: tx.purge_page(PurgePage("c", None, None, 2))) == (2, "j1")
    live = frozenset({State.ENABLED})
    rest = PurgePage("c", None, "j1", 10, live, frozenset({"NAS"}))
    assert await store.write(lambda tx: tx.purge_page(rest)) == (2, "j5")
    assert await store.write(lambda tx: tx.purge_page(rest)) == (0, "")

    async def left(tx: Tx) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for (cid, job_id), pk in pks.items():
            job = await tx.get_job(cid, job_id)
            tasks = (await tx.count_tasks(pk)).active
            history = len(await tx.list_history(pk, "n", None, None, 10))
            assert (job is not None, job is not None) == (tasks == 1, history == 1), job_id
            if job is not None:
                found.setdefault(cid, []).append(job_id)
        return found

    assert await store.read(left) == {"c": ["j3", "j4"], "d": list(kinds)}
