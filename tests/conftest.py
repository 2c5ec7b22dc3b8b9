"""Real PostgreSQL and Redis for every test: the embedded servers (under .data/test/) unless
TEST_DATABASE_URL / TEST_REDIS_URL name others. Each test starts from empty tables and an
empty Redis database."""
from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

pytest_plugins = [f"tests.plugins.{p.stem}" for p in sorted((Path(__file__).parent / "plugins").glob("*.py"))
                  if p.stem != "__init__"]

DATA_DIR = Path(__file__).resolve().parent.parent / ".data" / "test"
API_KEY = "test-client-id"
API_SECRET = "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"
OLD_API_SECRET = "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"
SESSION_SECRET = "test-session-secret-0123456789abcdef0123456789"
HEALTHZ_TOKEN = "test-healthz-token-5f2a9c"
TEST_DB = "skilvis_test"


@pytest.fixture(scope="session")
def servers():
    from shopify_app import db, localservers
    from shopify_app.sandbox.system import fresh_database

    handles = []
    db_url = os.environ.get("TEST_DATABASE_URL")
    if db_url:
        with psycopg.connect(db_url, autocommit=True) as conn:  # a given database: start it empty
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    else:
        handle, admin_url = localservers.start_postgres(DATA_DIR)
        handles.append(handle)
        db_url = fresh_database(admin_url, TEST_DB)
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        handle, redis_url = localservers.start_redis(DATA_DIR)
        handles.append(handle)
    db.migrate(db_url)
    os.environ.update(
        DATABASE_URL=db_url, REDIS_URL=redis_url, ENCRYPTION_KEY=Fernet.generate_key().decode(),
        SHOPIFY_API_KEY=API_KEY, SHOPIFY_API_SECRET=API_SECRET, SHOPIFY_API_SECRET_OLD=OLD_API_SECRET,
        SESSION_SECRET=SESSION_SECRET, HEALTHZ_TOKEN=HEALTHZ_TOKEN, SKILVIS_ENV="test",
        # Nothing in the tests may reach the real Shopify or Payday: by default their addresses
        # refuse connections at once; the stand-in fixtures point them at the stand-ins.
        SHOPIFY_SHOP_URL_TEMPLATE="http://127.0.0.1:9/shops/{shop}", PAYDAY_BASE_URL="http://127.0.0.1:9",
    )
    yield {"database_url": db_url, "redis_url": redis_url}
    db.close_pools()
    localservers.stop(handles)


@pytest.fixture(autouse=True)
def clean_state(request):
    """Empty tables and Redis after every test that touched the servers."""
    yield
    if "servers" not in request.fixturenames:
        return
    from shopify_app import db, jobqueue

    with db.transaction() as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    jobqueue.redis_connection().flushdb()


@pytest.fixture
def redis(servers):
    from shopify_app import jobqueue

    return jobqueue.redis_connection()


@pytest.fixture
def settings(servers, request, monkeypatch):
    """The app's settings, pointing at the stand-ins a test uses; set in the environment too,
    because jobs (in forked workers as well) read their settings from it."""
    from shopify_app import config

    if "shopify" in request.fixturenames or "shopify_standin" in request.fixturenames:
        monkeypatch.setenv("SHOPIFY_SHOP_URL_TEMPLATE", request.getfixturevalue("shopify_url_template"))
    if "payday" in request.fixturenames or "payday_standin" in request.fixturenames:
        monkeypatch.setenv("PAYDAY_BASE_URL", request.getfixturevalue("payday_standin").url)
    monkeypatch.setenv("SHOPIFY_APP_URL", "https://skilvis.test")
    return config.load()


@pytest.fixture
def app(settings):
    from shopify_app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_app(app):
    """The app served over real HTTP on 127.0.0.1, as Shopify's webhook deliveries need."""
    from shopify_app.sandbox.system import LiveServer

    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def system(shopify, payday, live_app, settings):
    """The whole system for the scenario player: the app over HTTP, the stand-ins, and the
    environment that forked workers read (set by `settings`)."""
    from shopify_app.sandbox.player import System

    return System(app_url=live_app.url, shopify=shopify, payday=payday)


@pytest.fixture
def run_jobs(redis):
    """Run the work Postgres holds to completion in this process, as the worker does it (the
    dispatcher hands it out, RQ's SimpleWorker runs the jobs)."""
    from shopify_app import dispatch

    return lambda: dispatch.run_until_idle(redis)
