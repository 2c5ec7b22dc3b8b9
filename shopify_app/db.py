"""PostgreSQL access: one psycopg_pool per process, and the migration runner.

Queries live next to the code that uses them; this module only hands out connections."""
from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_lock = threading.Lock()
_pools: dict[str, tuple[int, ConnectionPool]] = {}

# Every statement has a time limit (Postgres's statement_timeout, set on each connection as it
# opens): a runaway query is cancelled instead of holding a connection and its locks. The web's
# requests get the shortest; the worker's jobs and the migrations may take longer.
STATEMENT_TIMEOUTS = {
    "web": ("DB_STATEMENT_TIMEOUT", "30s"),
    "worker": ("WORKER_DB_STATEMENT_TIMEOUT", "5min"),
    "migrate": ("MIGRATE_DB_STATEMENT_TIMEOUT", "30min"),
}
_DURATION = re.compile(r"[0-9]+(ms|s|min|h)?")
_role = "web"


def use_timeouts_of(role: str) -> None:
    """This process (and the processes it forks) opens its connections with `role`'s timeout;
    worker.py says "worker" before it opens any."""
    global _role
    if role not in STATEMENT_TIMEOUTS:
        raise ValueError(f"no statement timeout for {role!r}")
    _role = role


def statement_timeout(role: str | None = None) -> str:
    """The statement_timeout of `role` (default: this process's), as Postgres reads it ("30s")."""
    name, default = STATEMENT_TIMEOUTS[role or _role]
    value = (os.environ.get(name) or default).replace(" ", "")
    if not _DURATION.fullmatch(value):
        raise RuntimeError(f"{name} must be a duration such as 30s, 500ms or 5min, not {value!r}")
    return value


def connect_options(url: str, role: str | None = None) -> dict:
    """libpq's `options` for a new connection: the URL's own, then the statement timeout."""
    own = conninfo_to_dict(url).get("options") or ""
    return {"options": f"{own} -c statement_timeout={statement_timeout(role)}".strip()}


def _pool(url: str, autocommit: bool = False) -> ConnectionPool:
    # Gunicorn forks workers: a pool (and its sockets) must never cross a fork, so pools are kept
    # per process id.
    pid = os.getpid()
    key = f"{'autocommit:' if autocommit else ''}{url}"
    with _lock:
        entry = _pools.get(key)
        if entry is None or entry[0] != pid:
            pool = ConnectionPool(
                url, min_size=1, max_size=int(os.environ.get("DB_POOL_SIZE", "10")),
                kwargs={"row_factory": dict_row, "autocommit": autocommit, **connect_options(url)},
                open=True, name="skilvis",
            )
            _pools[key] = (pid, pool)
        return _pools[key][1]


def one_statement(sql: str, params=None) -> dict | None:
    """A single statement, committed on its own (autocommit: one round trip, no BEGIN/COMMIT);
    its first row, if any."""
    with _pool(database_url(), autocommit=True).connection() as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


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
    conn = getattr(_locks, "conn", None)
    if conn is not None and getattr(_locks, "pid", None) == os.getpid():
        conn.close()
    _locks.conn = None


def migrate(url: str | None = None) -> list[str]:
    """Apply the SQL files in migrations/ in name order, each once, each in its own transaction.

    Safe to run twice and from two processes at once: an advisory lock serialises runners."""
    applied = []
    url = url or database_url()
    with psycopg.connect(url, autocommit=False, **connect_options(url, "migrate")) as conn:
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


# The order locks' namespace (the first of the two-int advisory lock keys): pg_locks shows an
# order's lock as (classid ORDER_LOCKS, objid order id), so the dispatcher can see which orders
# a live worker holds (dispatch.py).
ORDER_LOCKS = 7340


def advisory_lock(name: str):
    """A session-level advisory lock, yielding whether we got it."""
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    return _session_lock("%s::bigint", (key,))


def order_lock(order_id: int):
    """The lock of one order's pass (pipeline, credit by hand)."""
    return _session_lock("%s::int, %s::int", (ORDER_LOCKS, order_id))


@contextmanager
def _session_lock(args: str, key: tuple):
    """Held on a connection of its own, kept per process and thread (not from the pool, and not
    opened per lock: a new connection costs more than the work it guards): if the process dies,
    its connection closes and its locks go with it."""
    conn = _lock_connection()
    try:
        got = conn.execute(f"SELECT pg_try_advisory_lock({args})", key).fetchone()[0]
    except psycopg.OperationalError:
        _locks.conn = None   # the connection broke: its locks are gone; a new one next time
        raise
    try:
        yield got
    finally:
        if got:
            try:
                conn.execute(f"SELECT pg_advisory_unlock({args})", key)
            except psycopg.OperationalError:
                _locks.conn = None


_locks = threading.local()


def _lock_connection():
    conn, pid = getattr(_locks, "conn", None), os.getpid()
    if conn is None or conn.closed or getattr(_locks, "pid", None) != pid:
        url = database_url()
        conn = psycopg.connect(url, autocommit=True, **connect_options(url))
        _locks.conn, _locks.pid = conn, pid
    return conn