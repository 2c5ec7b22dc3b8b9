"""The whole system on one machine, for the scenario player and the sandbox: real PostgreSQL
and Redis (embedded unless DATABASE_URL / REDIS_URL are set), the app served over real HTTP,
and the stand-ins in place of the real services: Shopify, Payday, and the Danish systems
e-conomic, Dinero and Billy (a scenario's `"shop": {"accounting": ...}` picks one)."""
from __future__ import annotations

import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import psycopg
from cryptography.fernet import Fernet
from werkzeug.serving import WSGIRequestHandler, make_server

from .. import config, db, jobqueue, localservers
from .accounting import danish
from .accounting.billy import BillyStandin
from .accounting.dinero import DineroStandin
from .accounting.economic import EconomicStandin
from .accounting.payday import PaydayStandin
from .shopify.standin import ShopifyStandin

SANDBOX_KEY = "skilvis-sandbox-client-id"
SANDBOX_SECRET = "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"


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class LiveServer:
    """A WSGI app served over real HTTP on 127.0.0.1, in a thread."""

    def __init__(self, app, port: int = 0):
        self.server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="skilvis-app")
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def fresh_database(url: str, name: str) -> str:
    """A new empty database beside the one `url` names (the player's own, never the app's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return urlparse(url)._replace(path=f"/{name}").geturl()


@contextmanager
def running_system(data_dir: Path = localservers.DEFAULT_DATA_DIR, database_name: str = "skilvis_sandbox"):
    """Start everything; yields (System, settings). The environment is set for forked workers."""
    from .. import create_app
    from .player import System

    handles = []
    base_db = os.environ.get("DATABASE_URL")
    if not base_db:
        handle, base_db = localservers.start_postgres(data_dir)
        handles.append(handle)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        handle, redis_url = localservers.start_redis(data_dir, name="sandbox-redis")
        handles.append(handle)
    database_url = fresh_database(base_db, database_name)
    db.migrate(database_url)
    shopify = ShopifyStandin(SANDBOX_KEY, SANDBOX_SECRET).start()
    payday = PaydayStandin(number_delay=0).start()
    books = {"economic": EconomicStandin().start(), "dinero": DineroStandin().start(), "billy": BillyStandin().start()}
    danish.point_env(books)
    os.environ.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, SKILVIS_ENV="development",
        ENCRYPTION_KEY=os.environ.get("ENCRYPTION_KEY") or Fernet.generate_key().decode(),
        SHOPIFY_API_KEY=SANDBOX_KEY, SHOPIFY_API_SECRET=SANDBOX_SECRET,
        SESSION_SECRET=os.environ.get("SESSION_SECRET") or secrets.token_urlsafe(32),
        SHOPIFY_SHOP_URL_TEMPLATE=shopify.shop_url_template, PAYDAY_BASE_URL=payday.url,
    )
    os.environ.pop("SHOPIFY_API_SECRET_OLD", None)
    jobqueue.queue().empty()
    settings = config.load()
    server = LiveServer(create_app(settings))
    try:
        yield System(app_url=server.url, shopify=shopify, payday=payday, **books), settings
    finally:
        server.stop()
        shopify.stop()
        payday.stop()
        for standin in books.values():
            standin.stop()
        db.close_pools()
        localservers.stop(handles)
