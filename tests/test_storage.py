"""The store itself: group commit isolation, durability settings, migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.core.model import Collection, Profile
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.storage.database import SqliteStore, SqlStore
from jobcontrol.service.storage.schema import metadata


@pytest.fixture(params=[SqliteStore, SqlStore])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """Both stores: the SQLite one (the default) and the asyncio-engine one (PostgreSQL's,
    here over aiosqlite)."""
    s = request.param(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}", read_pool_size=2)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def _collection(cid: str) -> Collection:
    return Collection(collection_id=cid, profile=Profile.SCHEDULED, uid=cid, etag="e")


async def test_group_commit_one_failure_does_not_fail_its_neighbours(store: SqlStore) -> None:
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


async def test_storage_error_becomes_domain_error(store: SqlStore) -> None:
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


async def test_sqlite_runs_wal_with_full_sync_and_foreign_keys(store: SqlStore) -> None:
    """Durability settings: journal_mode=WAL, synchronous=FULL (2), foreign_keys on."""

    async def pragmas(tx: Tx) -> tuple[str, int, int]:
        conn = tx.conn  # type: ignore[attr-defined]
        mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
        fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
        return mode, sync, fks

    assert await store.write(pragmas) == ("wal", 2, 1)
    assert await store.read(pragmas) == ("wal", 2, 1)


async def test_migrations_match_the_schema(store: SqlStore) -> None:
    """Alembic: the migrated database equals schema.py (no missing migration)."""

    async def diff(tx: Tx) -> list[object]:
        conn = tx.conn  # type: ignore[attr-defined]
        return await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )

    assert await store.read(diff) == []
