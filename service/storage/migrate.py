"""Apply Alembic migrations at start-up, on the connection the store opened, once across
replicas: on PostgreSQL under a transaction-scoped advisory lock (the other servers wait,
then find nothing to do); on SQLite under the writer's BEGIN IMMEDIATE. A database whose
schema is newer than this code is refused."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of schema migrations (any constant; "jobcontrol" in ASCII hex)
MIGRATION_LOCK = 0x6A6F62636F6E74


class SchemaTooNew(SystemExit):
    """The database was migrated by a newer jobcontrol: refuse to start rather than
    write rows this code does not understand."""


def config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our scripts (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this code knows (what a database it serves must be at)."""
    return str(ScriptDirectory.from_config(config()).get_current_head())


def upgrade(connection: Connection) -> None:
    """Bring the schema to the newest revision, inside the caller's transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    cfg = config(connection)
    known = ScriptDirectory.from_config(cfg)
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [rev for rev in current if rev not in {r.revision for r in known.walk_revisions()}]
    if unknown:
        raise SchemaTooNew(
            f"the database schema is at revision {', '.join(unknown)}, newer than this "
            f"jobcontrol knows (head {known.get_current_head()}); run a newer jobcontrol "
            "or restore the database"
        )
    command.upgrade(cfg, "head")
