"""Bulk seeding for benchmarks: copy one real job row many times, straight into SQLite.

The template job is made through the API (so it is valid for its profile); its copies get
their own id, uid and etag and are otherwise the same. Rows go in with `executemany` in
large transactions, about a million a minute or faster, while a server may be running
(SQLite WAL: readers see the rows once each transaction commits). Not a production path:
it bypasses the core, so use it only on collections made for benchmarks.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

from sqlalchemy import make_url

from jobcontrol.service.core.engine import new_etag
from jobcontrol.service.core.model import Profile
from jobcontrol.service.core.profiles import rules_for

CHUNK = 20_000


def sqlite_path(database_url: str) -> str:
    """The file of a SQLite URL; ValueError for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ValueError(f"bulk seeding needs a SQLite database file, not {database_url}")
    return url.database


def seed_jobs(
    database_url: str,
    collection_id: str,
    template_job_id: str,
    count: int,
    prefix: str = "j",
    start: int = 1,
) -> int:
    """Copy job `template_job_id` of `collection_id` as jobs f"{prefix}{i:08d}" for i in
    [start, start + count); ids that exist already are skipped. Returns the rows inserted."""
    connection = sqlite3.connect(sqlite_path(database_url), timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA busy_timeout=30000")
        cursor = connection.execute(
            "SELECT * FROM jobs WHERE collection_id = ? AND job_id = ?",
            (collection_id, template_job_id),
        )
        template = cursor.fetchone()
        if template is None:
            raise LookupError(f"no job {template_job_id} in collection {collection_id}")
        columns = [d[0] for d in cursor.description if d[0] != "pk"]
        row = dict(zip([d[0] for d in cursor.description], template, strict=True))
        sql = (
            f"INSERT OR IGNORE INTO jobs ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )
        case_insensitive = rules_for(Profile(row["profile"])).case_insensitive_ids
        inserted = 0
        for chunk in _chunks(range(start, start + count)):
            rows = []
            for i in chunk:
                job_id = f"{prefix}{i:08d}"
                uid = uuid.uuid4().hex
                row.update(
                    job_id=job_id,
                    job_key=job_id.lower() if case_insensitive else job_id,
                    uid=uid,
                    etag=new_etag(uid, row["version"]),
                )
                rows.append(tuple(row[c] for c in columns))
            connection.execute("BEGIN IMMEDIATE")
            before = connection.total_changes
            connection.executemany(sql, rows)
            inserted += connection.total_changes - before
            connection.execute("COMMIT")
        return inserted
    finally:
        connection.close()


def _chunks(ids: range) -> Iterator[range]:
    for first in range(ids.start, ids.stop, CHUNK):
        yield range(first, min(first + CHUNK, ids.stop))
