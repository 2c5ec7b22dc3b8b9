"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium, never a
browser Playwright downloads) against the real system, started as `make run` starts it without
Shopify credentials: the sandbox (web, worker, Shopify and Payday stand-ins, the demo shop).

The tests skip, saying why, only where no Chromium can be had; .ci/run installs it with apt."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlparse

import psycopg
import pytest
import requests
from cryptography.fernet import Fernet
from psycopg.rows import dict_row

from shopify_app.sandbox import demo
from tests.sandbox_process import SandboxProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SKILVIS_CHROMIUM", "/usr/bin/chromium"))
# Under .data/ (git-ignored): every run writes them again.
SCREENSHOTS = ROOT / ".data" / "screenshots"
# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# network refuses; the rest are what a headless run as root needs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVERY_STATUS = {"open", "pending_settlement", "processing", "created", "none_needed", "failed"}
# A case in the home list: a table row on a desktop, a stacked item on a phone.
ROWS = "[data-case-id][data-status]"


def _chromium_or_skip() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser tests skipped: Playwright for Python is not installed (pip install -r requirements-dev.txt)")
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests skipped: no Chromium at {CHROMIUM}; install Debian's package "
                    "(apt-get install chromium), which .ci/run does where apt is available")


# Package scope: the browser and the sandbox stop once the browser tests are done, not at the
# end of the whole suite.
@pytest.fixture(scope="package")
def browser():
    _chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)   # the worker, not the browser, sets the pace
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Sandbox:
    url: str
    database_url: str
    process: SandboxProcess

    def rows(self, sql: str, *params) -> list[dict]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def id_token(self) -> str:
        return self.id_token_of(demo.SHOP)

    def id_token_of(self, shop: str) -> str:
        return requests.get(f"{self.url}/sandbox/id-token", params={"shop": shop}, timeout=10).json()["id_token"]

    def app_url(self, path: str = "/", locale: str = "en", shop: str = demo.SHOP, **params) -> str:
        """A page as Shopify opens it in admin: embedded, the shop, the locale, a fresh ID token."""
        query = {"embedded": "1", "shop": shop, "locale": locale, **params, "id_token": self.id_token_of(shop)}
        return f"{self.url}{path}?{urlencode(query)}"

    def order_id(self, name: str) -> int:
        [row] = self.rows("""SELECT o.id FROM orders o JOIN shops s ON s.id = o.shop_id
                             WHERE s.domain = %s AND o.name = %s""", demo.SHOP, name)
        return row["id"]

    def case_id(self, order_name: str) -> int:
        """The demo shop's first case of an order."""
        [row] = self.rows("""SELECT c.id FROM cases c JOIN orders o ON o.id = c.order_id JOIN shops s ON s.id = o.shop_id
                             WHERE s.domain = %s AND o.name = %s ORDER BY c.id LIMIT 1""", demo.SHOP, order_name)
        return row["id"]

    def install_empty_shop(self, shop: str) -> None:
        """A second shop, with no orders, in the Shopify stand-in, installed by its first embedded
        load as Shopify installs any shop: its home page is the empty state a new merchant sees."""
        shopify_url, _ = self.process.standin_urls()
        resp = requests.post(f"{shopify_url}/_control/shops", json={"shop": shop, "name": "Tóm búð"}, timeout=10)
        assert resp.status_code in (201, 400), resp.text   # 400: made by an earlier module of this run
        resp = requests.get(self.app_url("/", locale="is", shop=shop), timeout=30)
        assert resp.status_code == 200, resp.text[:500]


@pytest.fixture(scope="package")
def sandbox(browser, tmp_path_factory):
    """The sandbox, once for the browser tests, on the tests' PostgreSQL (a database of its own) and an
    embedded Redis of its own, so the other tests' cleaning never touches its demo shop."""
    from shopify_app import localservers
    from shopify_app.sandbox.system import fresh_database
    from tests.conftest import DATA_DIR
    from tests.test_processes import free_port

    handles = []
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        handle, base = localservers.start_postgres(DATA_DIR)
        handles.append(handle)
    # Named after the tests' own database: people sharing a PostgreSQL server each get theirs.
    database_url = fresh_database(base, f"{urlparse(base).path.lstrip('/') or 'skilvis'}_browser")
    redis_handle, redis_url = localservers.start_redis(tmp_path_factory.mktemp("redis"), name="browser-redis")
    handles.append(redis_handle)
    process = SandboxProcess(free_port(), DATABASE_URL=database_url, REDIS_URL=redis_url,
                             ENCRYPTION_KEY=Fernet.generate_key().decode(), SKILVIS_DATA_DIR=str(DATA_DIR))
    try:
        process.wait_ready()
        yield Sandbox(url=process.url, database_url=database_url, process=process)
        assert process.ctrl_c() == 0
    finally:
        process.kill()
        localservers.stop(handles)


@pytest.fixture
def page(browser, sandbox):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def row_of(page, order_name: str):
    """The home page's row(s) of an order, by the order name in its case link ("#1001", or a
    return of it, "#1001-R1")."""
    name = re.compile(rf"^\s*{re.escape(order_name)}(-R\d+)?\s*$")
    return page.locator(ROWS).filter(has=page.locator("[data-testid=case-link]", has_text=name))


def control(page, field_id: str):
    """The native control of a form field: the element itself, or the <input>/<select> inside a
    Polaris field (s-text-field, s-select, …), drawn by Polaris or by static/polaris-fallback.js."""
    return page.locator(", ".join(f"{tag}#{field_id}, #{field_id} {tag}" for tag in ("input", "select", "textarea"))).first
