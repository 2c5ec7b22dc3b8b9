"""Privacy and security (issue 8): what an attacker's request cannot do to the app's resources,
and the headers every response carries, errors included."""
from __future__ import annotations

import dataclasses
import io
import json
import socket
import time
import uuid
from urllib.parse import urlsplit

import jwt
import psycopg
import pytest

from shopify_app import create_app, db, shops
from shopify_app.auth import BOUNCE_CSP
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import SHOP, body_of, webhook_headers

MIB = 1024 * 1024
CLOSE = {"id": 123, "admin_graphql_api_id": "gid://shopify/Return/123", "order_id": 456, "status": "closed"}


def id_token(shop=SHOP, **overrides):
    now = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": API_KEY, "sub": "42",
              "exp": now + 60, "nbf": now - 1, "iat": now - 1, "jti": str(uuid.uuid4()), "sid": "s1"}
    claims.update(overrides)
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


def bearer(shop=SHOP) -> dict:
    return {"Authorization": f"Bearer {id_token(shop)}"}


@pytest.fixture
def installed(servers):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_x", scope="read_orders,read_returns"))
    return SHOP


def stored_events() -> int:
    with db.transaction() as conn:
        return conn.execute("SELECT count(*) AS n FROM webhook_events").fetchone()["n"]


class CountingStream(io.RawIOBase):
    """An endless request body that counts what the app reads of it."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), 64 * 1024)
        buffer[:n] = b"x" * n
        self.read_bytes += n
        return n


# --- limits -----------------------------------------------------------------------------------

def test_a_64_mib_unsigned_webhook_gets_413_before_its_body_is_read(live_app):
    # Over real HTTP: the headers promise 64 MiB and no byte of the body is ever sent. A server
    # that read the body before checking would wait for it; the app answers at once.
    host, port = urlsplit(live_app.url).hostname, urlsplit(live_app.url).port
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall((f"POST /webhooks HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                      f"X-Shopify-Hmac-Sha256: forged\r\nX-Shopify-Topic: returns/close\r\n"
                      f"X-Shopify-Shop-Domain: {SHOP}\r\nContent-Length: {64 * MIB}\r\n\r\n").encode())
        answer = conn.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert stored_events() == 0


def test_a_chunked_webhook_body_is_cut_off_at_the_limit_with_413(client, servers):
    # A chunked body has no Content-Length: the app stops reading at 2 MiB, not at the end.
    body = CountingStream()
    resp = client.post("/webhooks", headers={"Content-Type": "application/json", "X-Shopify-Hmac-Sha256": "forged"},
                       environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert resp.status_code == 413
    assert body.read_bytes <= 2 * MIB + 64 * 1024
    assert stored_events() == 0


def test_a_signed_webhook_under_the_limit_is_still_taken(client, redis):
    body = body_of({**CLOSE, "note": "x" * (MIB + MIB // 2)})
    resp = client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET))
    assert resp.status_code == 200


def test_a_json_api_body_over_256_kib_gets_413_before_authentication(client, installed):
    big = json.dumps({"client_id": "x", "padding": ["y" * 1000] * 300})
    assert client.post("/api/settings", data=big, content_type="application/json").status_code == 413
    resp = client.post("/api/settings", data=big, content_type="application/json", headers=bearer())
    assert resp.status_code == 413


def test_a_chunked_json_api_body_is_cut_off_at_256_kib(client, installed):
    body = CountingStream()
    resp = client.post("/api/settings", headers={"Content-Type": "application/json", **bearer()},
                       environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True})
    assert resp.status_code == 413
    assert body.read_bytes <= 256 * 1024 + 64 * 1024


@pytest.mark.parametrize("path", [
    "/api/cases?q=a%00b", "/api/cases?status=%00", "/api/settings/payday-customers?q=%00",
    "/api/cases?after=%00", "/api/me?x%00=1",
])
def test_a_nul_byte_in_the_query_is_a_400_not_a_500(client, installed, path):
    assert client.get(path, headers=bearer()).status_code == 400


def test_a_nul_byte_in_the_home_page_search_is_a_400_not_a_500(client, installed):
    resp = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token(), "q": "anna\x00"})
    assert resp.status_code == 400


def test_the_search_is_capped_to_100_characters_and_8_words(client, installed):
    words = [f"word{i}" for i in range(12)]
    resp = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token(),
                                         "q": " ".join(words) + "\x07" + "z" * 5000})
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert f'value="{" ".join(words[:8])}"' in page
    assert "word8" not in page and "zzzz" not in page
    long_word = client.get("/api/cases", query_string={"q": "k" * 5000}, headers=bearer())
    assert long_word.status_code == 200 and long_word.json["rows"] == []


@pytest.mark.parametrize("body", [
    '{"client_id": "a\\u0000b"}',                  # NUL: Postgres refuses it in text
    '{"payment_types": {"manual\\u0000": "1"}}',
    '{"client_id": "\\ud800"}',                    # a lone surrogate: valid JSON, not text
    '{"client_id": "' + "x" * 5000 + '"}',         # no field of the API is this long
    "[" * 100_000 + "]" * 100_000,                 # past the parser's recursion limit
    '{"a": ' * 50 + "1" + "}" * 50,
])
def test_a_hostile_json_body_is_a_400_not_a_500(client, installed, body):
    resp = client.post("/api/settings", data=body, content_type="application/json", headers=bearer())
    assert resp.status_code == 400


def test_every_database_statement_has_a_timeout(servers, monkeypatch):
    url = servers["database_url"]
    with db.transaction() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "30s"
    with db.advisory_lock("timeout-check"):
        pass
    with psycopg.connect(url, **db.connect_options(url, "worker")) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5min"
    with psycopg.connect(url, **db.connect_options(url, "migrate")) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30min"
    # A runaway statement is cancelled at the limit instead of holding its connection.
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "200ms")
    db.close_pools()
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            with db.transaction() as conn:
                conn.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
    finally:
        monkeypatch.delenv("DB_STATEMENT_TIMEOUT")
        db.close_pools()


def test_a_statement_timeout_that_is_not_a_duration_stops_the_process(servers, monkeypatch):
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT", "30s; DROP TABLE shops")
    with pytest.raises(RuntimeError, match="DB_STATEMENT_TIMEOUT"):
        db.connect_options(servers["database_url"])


# --- headers on every response ----------------------------------------------------------------

def _boom(*args, **kwargs):
    raise RuntimeError("boom")


@pytest.fixture
def unhandled(app):
    """Errors as production answers them: a 500 page, not the exception in the test."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.mark.parametrize("name,request_", [
    ("200", lambda c: c.get("/healthz")),
    ("404", lambda c: c.get("/no-such-page")),
    ("405", lambda c: c.get("/webhooks")),
    ("401 fetch", lambda c: c.get("/api/me", headers={"Authorization": "Bearer not.a.token"})),
    ("401 webhook", lambda c: c.post("/webhooks", data=b"{}", headers={"X-Shopify-Hmac-Sha256": "forged"})),
    ("400", lambda c: c.get("/auth?shop=evil.example.com")),
    ("413", lambda c: c.post("/webhooks", data=b"x" * (2 * MIB + 1))),
    ("302 bounce", lambda c: c.get(f"/?embedded=1&shop={SHOP}")),
])
def test_every_response_carries_nosniff_referrer_policy_and_a_csp_that_forbids_framing(unhandled, servers, name,
                                                                                       request_):
    resp = request_(unhandled.test_client())
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'none';"
    assert "Strict-Transport-Security" not in resp.headers   # HSTS: production only


def test_a_500_carries_the_headers_too(unhandled, installed, monkeypatch):
    from shopify_app import home

    monkeypatch.setattr(home, "list_cases", _boom)
    client = unhandled.test_client()
    resp = client.get("/api/cases", headers=bearer())
    assert resp.status_code == 500
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    # The token was verified before the error: the error may show in that shop's admin only.
    assert resp.headers["Content-Security-Policy"] == f"frame-ancestors https://{SHOP} https://admin.shopify.com;"
    monkeypatch.setattr(shops, "valid_shop_domain", _boom)
    resp = client.get("/auth?shop=x.myshopify.com")
    assert resp.status_code == 500
    assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'none';"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_an_embedded_page_with_a_verified_token_is_framed_only_by_that_shops_admin(client, installed):
    resp = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token()})
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"] == f"frame-ancestors https://{SHOP} https://admin.shopify.com;"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    missing = client.get("/cases/999999", query_string={"shop": SHOP, "id_token": id_token()})
    assert missing.status_code == 404
    assert missing.headers["Content-Security-Policy"] == f"frame-ancestors https://{SHOP} https://admin.shopify.com;"


def test_a_page_whose_token_fails_names_no_shop_in_its_csp(client, installed):
    forged = jwt.encode(jwt.decode(id_token(), options={"verify_signature": False}), "shpss_" + "e" * 32, "HS256")
    resp = client.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401 and resp.headers["Content-Security-Policy"] == "frame-ancestors 'none';"


def test_the_bounce_page_never_takes_its_csp_from_the_shop_parameter(client):
    attacker = "attacker-shop.myshopify.com"
    resp = client.get("/auth/session-token", query_string={"shop": attacker, "shopify-reload": "/"})
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"] == BOUNCE_CSP
    assert attacker not in resp.headers["Content-Security-Policy"]
    assert "https://*.myshopify.com https://admin.shopify.com" in BOUNCE_CSP


def test_production_responses_carry_hsts(settings, servers):
    app = create_app(dataclasses.replace(settings, env="production"))
    client = app.test_client()
    for resp in (client.get("/healthz"), client.get("/no-such-page"), client.get("/api/me")):
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_the_sandbox_panel_still_frames_the_app(settings, installed):
    app = create_app(dataclasses.replace(settings, sandbox=True))
    client = app.test_client()
    page = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token()})
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == \
        f"frame-ancestors 'self' https://{SHOP} https://admin.shopify.com;"
    bounce = client.get("/auth/session-token", query_string={"shop": SHOP, "shopify-reload": "/"})
    assert bounce.headers["Content-Security-Policy"].startswith("frame-ancestors 'self' https://*.myshopify.com")
    assert client.get("/healthz").headers["Content-Security-Policy"] == "frame-ancestors 'self';"
