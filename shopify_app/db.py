"""PostgreSQL access: one psycopg_pool per process, and the migration runner.

Queries live next to the code that uses them; this module only hands out connections."""
from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_lock = threading.Lock()
_pools: dict[str, tuple[int, ConnectionPool]] = {}


def _pool(url: str) -> ConnectionPool:
    # RQ forks a work horse per job and gunicorn forks workers: a pool (and its sockets)
    # must never cross a fork, so pools are kept per process id.
    pid = os.getpid()
    with _lock:
        entry = _pools.get(url)
        if entry is None or entry[0] != pid:
            pool = ConnectionPool(
                url, min_size=1, max_size=int(os.environ.get("DB_POOL_SIZE", "10")),
                kwargs={"row_factory": dict_row, "autocommit": False},
                open=True, name="skilvis",
            )
            _pools[url] = (pid, pool)
        return _pools[url][1]


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    return url


@contextmanager
def transaction(url: str | None = None):
    """A connection inside one transaction: committed on success, rolled back on error."""
    with _pool(url or database_url()).connection() as conn:
        yield conn


@contextmanager
def joined(conn=None):
    """The caller's connection, inside the caller's transaction, when one is given; else a
    transaction of our own."""
    if conn is not None:
        yield conn
    else:
        with transaction() as own:
            yield own


def close_pools() -> None:
    with _lock:
        for pid, pool in _pools.values():
            if pid == os.getpid():
                pool.close()
        _pools.clear()


def migrate(url: str | None = None) -> list[str]:
    """Apply the SQL files in migrations/ in name order, each once, each in its own transaction.

    Safe to run twice and from two processes at once: an advisory lock serialises runners."""
    applied = []
    with psycopg.connect(url or database_url(), autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_lock(728341)")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                if path.stem in done:
                    continue
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
                conn.commit()
                applied.append(path.stem)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(728341)")
            conn.commit()
    return applied


@contextmanager
def advisory_lock(name: str):
    """A session-level advisory lock on a connection of its own, yielding whether we got it.

    Not from the pool: if the process dies, its connection closes and the lock goes with it."""
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    conn = psycopg.connect(database_url(), autocommit=True)
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        try:
            yield got
        finally:
            if got:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()
