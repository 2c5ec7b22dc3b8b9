"""Privacy and security (issue 8): tokens, logs, OAuth parsing, health, keys and secrets."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jwt
import psutil
import pytest
import requests
from cryptography.fernet import Fernet
from flask import Flask

from shopify_app import config, crypto, db, home, shop_settings, shops
from shopify_app.accounting.payday import api as payday
from tests.conftest import API_KEY, API_SECRET, HEALTHZ_TOKEN, SESSION_SECRET
from tests.helpers import SHOP, body_of, webhook_headers
from tests.sandbox_process import SandboxProcess
from tests.test_processes import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def id_token(shop=SHOP, *, drop=(), **overrides):
    now = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": API_KEY, "sub": "42",
              "exp": now + 60, "nbf": now - 1, "iat": now - 1, "jti": str(uuid.uuid4()), "sid": "s1"}
    claims.update(overrides)
    for name in drop:
        claims.pop(name)
    return jwt.encode(claims, API_SECRET, algorithm="HS256")


def signed(params: dict, secret=API_SECRET) -> dict:
    params = {"timestamp": str(int(time.time())), **params}
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


@pytest.fixture
def installed(servers):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_x", scope="read_orders,read_returns"))
    return SHOP


# --- ID tokens ----------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", [("exp",), ("nbf",), ("exp", "nbf")])
def test_an_id_token_without_exp_or_nbf_is_refused(client, installed, missing):
    token = id_token(drop=missing)
    resp = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    page = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": token})
    assert page.status_code == 302 and "/auth/session-token" in page.headers["Location"]


def raw_token(**overrides) -> str:
    """A correctly signed token whose claims PyJWT would refuse to encode."""
    def part(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = jwt.decode(id_token(), options={"verify_signature": False})
    claims.update(overrides)
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(API_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


@pytest.mark.parametrize("claims", [{"dest": 12}, {"iss": ["x"]}, {"exp": "soon"}, {"nbf": None}, {"dest": None}])
def test_an_id_token_with_claims_of_the_wrong_type_is_a_401_not_a_500(client, installed, claims):
    resp = client.get("/api/me", headers={"Authorization": f"Bearer {raw_token(**claims)}"})
    assert resp.status_code == 401


@pytest.mark.parametrize("path,body", [
    ("/api/settings", {"auto_process": True, "client_id": "attacker"}),
    ("/api/orders/find", {"name": "#1001"}),
    ("/api/cases/1/retry", {}),
    ("/api/documents/1/retry", {}),
    ("/api/orders/1/read-again", {}),
])
def test_a_post_authenticated_by_a_query_string_token_is_refused(client, installed, path, body):
    resp = client.post(path, query_string={"id_token": id_token(), "shop": SHOP}, json=body)
    assert resp.status_code == 401
    assert resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"
    assert shop_settings.load(shops.get(SHOP)["id"]).payday_client_id is None


def test_the_same_post_with_the_token_as_a_bearer_header_is_taken(client, installed):
    resp = client.post("/api/settings", headers={"Authorization": f"Bearer {id_token()}"}, json={"client_id": "mine"})
    assert resp.status_code == 200
    assert shop_settings.load(shops.get(SHOP)["id"]).payday_client_id == "mine"


def test_a_page_load_still_authenticates_by_the_query_string_token(client, installed):
    assert client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token()}).status_code == 200
    assert client.head("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token()}).status_code == 200


# --- logs ---------------------------------------------------------------------------------------

def test_no_access_log_line_carries_a_token_or_secret(servers, tmp_path):
    """gunicorn as the Procfile runs it (gunicorn.conf.py), its access log read back."""
    port = free_port()
    log_file = tmp_path / "access.log"
    env = {**os.environ, "SHOPIFY_APP_URL": "https://skilvis.test"}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py",
                             "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", str(log_file),
                             "shopify_app.wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    token = id_token()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=30)
        requests.get(f"{base}/", params={"embedded": "1", "shop": SHOP, "id_token": token, "hmac": "a1b2c3d4e5",
                                         "session": "sess-9f8e7d", "state": "st-77aa", "code": "cd-55bb"},
                     headers={"Referer": f"https://admin.shopify.com/?id_token={token}"}, timeout=10,
                     allow_redirects=False)
        requests.get(f"{base}/auth/callback?code=cd-55bb&hmac=a1b2c3d4e5&shop={SHOP}&state=st-77aa&timestamp=1",
                     timeout=10, allow_redirects=False)
        requests.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        # An accepted webhook is its stored row, not a log line; a refused one is logged.
        body = body_of({"id": 1, "order_id": 2, "status": "closed"})
        assert requests.post(f"{base}/webhooks", data=body, headers=webhook_headers(body, API_SECRET),
                             timeout=10).status_code == 200
        assert requests.post(f"{base}/webhooks/compliance", data=body, headers=webhook_headers(body, "wrong"),
                             timeout=10).status_code == 401
        wait_for(lambda: log_file.exists() and log_file.read_text().count("\n") >= 5, timeout=10)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    logged = log_file.read_text() + output
    assert "GET / HTTP/1.1" in logged and "GET /auth/callback HTTP/1.1" in logged
    assert "POST /webhooks/compliance HTTP/1.1\" 401" in logged and "POST /webhooks HTTP" not in logged
    for secret in (token, token.split(".")[1], "a1b2c3d4e5", "sess-9f8e7d", "st-77aa", "cd-55bb", API_SECRET,
                   SESSION_SECRET):
        assert secret not in logged


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def test_the_apps_own_logs_mask_tokens_and_secrets(app, installed, caplog, monkeypatch):
    """Even a log line or a traceback that quotes the URL, a header or a secret shows none of them."""
    token = id_token()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    log = logging.getLogger("shopify_app.test")

    def careless():
        from flask import g, request

        log.warning("loading %s with %s for %s", request.url, request.headers.get("Authorization"), g.shop)
        raise RuntimeError(f"failed at {request.url} using shpat_{'a1' * 16} and "
                           "postgresql://skilvis:hunter2-password@db.example.com/skilvis")

    monkeypatch.setattr(home, "current_shop", careless)
    with caplog.at_level(logging.INFO):
        client = app.test_client()
        assert client.get("/api/cases", headers={"Authorization": f"Bearer {token}"}).status_code == 500
        client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": token, "hmac": "a1b2c3d4e5"})
    text = caplog.text + "\n".join(r.exc_text or "" for r in caplog.records)
    assert "loading" in text and "RuntimeError" in text
    for secret in (token, token.split(".")[2], "a1b2c3d4e5", "a1" * 16, "hunter2-password"):
        assert secret not in text


def test_a_settings_object_never_shows_a_secret_in_its_repr(settings):
    shown = repr(settings)
    shown += repr(shop_settings.ShopSettings(1, payday_client_id="cid", payday_client_secret="pd-s3cret"))
    shown += repr(shops.Tokens(access_token="shpat_abcdef123456", refresh_token="shprt_abcdef123456"))
    for secret in (API_SECRET, SESSION_SECRET, HEALTHZ_TOKEN, os.environ["ENCRYPTION_KEY"], settings.database_url,
                   settings.redis_url, "pd-s3cret", "shpat_abcdef123456", "shprt_abcdef123456"):
        assert secret not in shown
    assert "cid" in shown and API_KEY in shown


# --- OAuth and signed queries -------------------------------------------------------------------

def _begin(client) -> str:
    resp = client.get(f"/auth?shop={SHOP}")
    return dict(p.split("=", 1) for p in resp.headers["Location"].split("?", 1)[1].split("&"))["state"]


@pytest.mark.parametrize("name,query", [
    ("non-ascii state", lambda s: {**signed({"shop": SHOP, "code": "c"}), "state": "ástand-ð"}),
    ("non-numeric timestamp", lambda s: {**signed({"shop": SHOP, "code": "c", "state": s}), "timestamp": "soon"}),
    ("float timestamp", lambda s: {**signed({"shop": SHOP, "code": "c", "state": s}), "timestamp": "1e12"}),
    ("missing code", lambda s: signed({"shop": SHOP, "state": s})),
    ("missing state", lambda s: signed({"shop": SHOP, "code": "c"})),
    ("missing hmac", lambda s: {k: v for k, v in signed({"shop": SHOP, "code": "c", "state": s}).items()
                                if k != "hmac"}),
    ("missing timestamp", lambda s: {k: v for k, v in signed({"shop": SHOP, "code": "c", "state": s}).items()
                                     if k != "timestamp"}),
    ("duplicated shop", lambda s: list(signed({"shop": SHOP, "code": "c", "state": s}).items())
     + [("shop", "other.myshopify.com")]),
    ("duplicated code", lambda s: list(signed({"shop": SHOP, "code": "c", "state": s}).items()) + [("code", "d")]),
    ("non-ascii hmac", lambda s: {**signed({"shop": SHOP, "code": "c", "state": s}), "hmac": "ð" * 64}),
    ("nothing", lambda s: {}),
])
def test_a_malformed_oauth_callback_is_a_400_not_a_500(client, servers, name, query):
    state = _begin(client)
    resp = client.get("/auth/callback", query_string=query(state))
    assert resp.status_code == 400, name


@pytest.mark.parametrize("query", [
    lambda: {**signed({"shop": SHOP}), "timestamp": "yesterday"},
    lambda: {**signed({"shop": SHOP}), "hmac": "ð"},
    lambda: [*signed({"shop": SHOP}).items(), ("shop", "other.myshopify.com")],
    lambda: {"shop": SHOP, "timestamp": "1"},
])
def test_a_malformed_signed_install_link_is_a_400_not_a_500(client, servers, query):
    assert client.get("/", query_string=query()).status_code == 400


def test_an_overlong_state_is_a_400(client, servers):
    _begin(client)
    resp = client.get("/auth/callback", query_string=signed({"shop": SHOP, "code": "c", "state": "x" * 300}))
    assert resp.status_code == 400


# --- sessions -----------------------------------------------------------------------------------

def test_the_session_cookie_is_signed_with_its_own_secret_not_the_shopify_secret(app, client, shopify):
    assert app.secret_key == SESSION_SECRET != API_SECRET
    # A cookie forged with the Shopify secret (which signs much else) does not start a flow.
    forger = Flask("forger")
    forger.secret_key = API_SECRET
    forged = forger.session_interface.get_signing_serializer(forger).dumps(
        {"oauth_state": "forged-state", "oauth_shop": SHOP})
    client.set_cookie("session", forged, domain="localhost")
    params = signed({"shop": SHOP, "code": shopify.authorization_code(SHOP), "state": "forged-state"})
    assert client.get("/auth/callback", query_string=params).status_code == 403
    assert not shops.is_installed(shops.get(SHOP))


@pytest.mark.parametrize("env,missing", [
    ({"SKILVIS_ENV": "development", "SHOPIFY_API_KEY": "k"}, ["SHOPIFY_API_SECRET", "SESSION_SECRET"]),
    ({"SKILVIS_ENV": "test", "SHOPIFY_API_SECRET": "s"}, ["SESSION_SECRET"]),
    ({}, ["SHOPIFY_API_SECRET", "SESSION_SECRET"]),
    ({"SKILVIS_ENV": "production", "SHOPIFY_API_KEY": "k", "SHOPIFY_API_SECRET": "s", "SHOPIFY_APP_URL": "https://a",
      "DATABASE_URL": "postgresql://x", "REDIS_URL": "redis://x", "ENCRYPTION_KEY": "k"}, ["SESSION_SECRET"]),
])
def test_a_missing_secret_outside_the_sandbox_stops_start_up(env, missing):
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    for name in missing:
        assert name in str(err.value)


def test_only_the_sandbox_has_development_secrets():
    settings = config.load({"SKILVIS_SANDBOX": "1"})
    assert settings.sandbox and settings.api_secret and settings.session_secret
    assert settings.session_secret != settings.api_secret
    with pytest.raises(config.ConfigError):   # never in production, SKILVIS_SANDBOX or not
        config.load({"SKILVIS_ENV": "production", "SKILVIS_SANDBOX": "1"})


def test_the_session_secret_must_not_be_the_shopify_secret():
    with pytest.raises(config.ConfigError, match="SESSION_SECRET"):
        config.load({"SHOPIFY_API_SECRET": "same", "SESSION_SECRET": "same"})


# --- health -------------------------------------------------------------------------------------

def test_healthz_tells_the_public_only_whether_it_is_ok(client, redis):
    public = client.get("/healthz")
    assert public.status_code == 200 and public.json == {"ok": True}
    for header in ("Bearer wrong-token", "Basic abc", f"Bearer {HEALTHZ_TOKEN}x", ""):
        refused = client.get("/healthz", headers={"Authorization": header})
        assert refused.status_code == 401 and "postgres" not in refused.get_data(as_text=True)
    detailed = client.get("/healthz", headers={"Authorization": f"Bearer {HEALTHZ_TOKEN}"})
    assert detailed.status_code == 200 and detailed.json["postgres"]["status"] == "ok"
    assert {"redis", "worker"} <= set(detailed.json)


def test_healthz_says_only_not_ok_to_the_public_when_redis_is_down(client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json == {"ok": False}


def test_healthz_shows_no_details_without_a_configured_token(settings, servers):
    import dataclasses

    from shopify_app import create_app

    client = create_app(dataclasses.replace(settings, healthz_token=None)).test_client()
    assert client.get("/healthz", headers={"Authorization": "Bearer "}).status_code == 401
    assert client.get("/healthz").json == {"ok": True}


# --- keys ---------------------------------------------------------------------------------------

def _flask(*args, env=None):
    return subprocess.run([sys.executable, "-m", "flask", "--app", "shopify_app", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120)


def _store_secrets(count=3) -> list[int]:
    ids = []
    for i in range(count):
        domain = f"rotate-{i}.myshopify.com"
        shops.save_tokens(domain, shops.Tokens(access_token=f"shpat_rot{i}", scope="read_orders",
                                               refresh_token=f"shprt_rot{i}" if i % 2 == 0 else None))
        shop_id = shops.get(domain)["id"]
        shop_settings.save(shop_id, payday_client_id=f"cid{i}", payday_client_secret=f"pd-secret-{i}")
        payday.PostgresTokenStore(shop_id).put(f"key{i}", f"pd-token-{i}",
                                               datetime.now(timezone.utc) + timedelta(hours=1))
        ids.append(shop_id)
    return ids


def _read_secrets(ids) -> list:
    found = []
    for i, shop_id in enumerate(ids):
        row = shops.get(f"rotate-{i}.myshopify.com")
        found.append((crypto.decrypt(row["access_token_enc"]), crypto.decrypt(row["refresh_token_enc"]),
                      shop_settings.load(shop_id).payday_client_secret,
                      payday.PostgresTokenStore(shop_id).get(f"key{i}")[0]))
    return found


def test_rotate_keys_re_encrypts_everything_so_the_old_key_can_be_removed(servers, monkeypatch):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEY", old)
    ids = _store_secrets()
    expected = _read_secrets(ids)

    monkeypatch.setenv("ENCRYPTION_KEY", f"{new},{old}")
    first = _flask("rotate-keys", "--batch-size", "2")
    assert first.returncode == 0, first.stderr
    for line in ("shops.access_token_enc: 3 re-encrypted", "shops.refresh_token_enc: 2 re-encrypted",
                 "shop_settings.payday_client_secret_enc: 3 re-encrypted",
                 "payday_tokens.access_token_enc: 3 re-encrypted"):
        assert line in first.stdout
    again = _flask("rotate-keys")   # idempotent: nothing left to do
    assert again.returncode == 0 and "3 already under the newest key" in again.stdout
    assert " 1 re-encrypted" not in again.stdout and " 2 re-encrypted" not in again.stdout

    monkeypatch.setenv("ENCRYPTION_KEY", new)   # the old key is gone
    assert _read_secrets(ids) == expected


def test_rotate_keys_finds_every_encrypted_column(servers):
    with db.transaction() as conn:
        found = {f"{table}.{column}" for table, (_, columns) in crypto.encrypted_columns(conn).items()
                 for column in columns}
    assert {"shops.access_token_enc", "shops.refresh_token_enc", "shop_settings.payday_client_secret_enc",
            "payday_tokens.access_token_enc"} <= found
    # Every bytea column of the schema that holds a secret is named *_enc.
    with db.transaction() as conn:
        bytea = {f"{r['table_name']}.{r['column_name']}" for r in conn.execute(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = current_schema() AND data_type = 'bytea'""")}
    assert bytea - found <= {"webhook_events.raw_body"}


def test_rotate_keys_fails_loudly_on_a_value_no_key_can_read(servers, monkeypatch):
    stray, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("ENCRYPTION_KEY", stray)
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_stray"))
    result = _flask("rotate-keys", env={"ENCRYPTION_KEY": new})
    assert result.returncode != 0
    assert "1 readable with none of the keys" in result.stdout and "keep the key" in result.stderr


# --- the sandbox --------------------------------------------------------------------------------

def test_the_sandbox_listens_on_the_loopback_only(servers):
    sandbox = SandboxProcess(free_port())
    try:
        sandbox.wait_ready()
        family = [psutil.Process(sandbox.proc.pid)] + psutil.Process(sandbox.proc.pid).children(recursive=True)
        listening = []
        for process in family:
            try:
                listening += [c.laddr for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            except psutil.NoSuchProcess:
                pass
        ports = {addr.port for addr in listening}
        assert sandbox.port in ports and len(ports) >= 3   # the app, the Shopify and Payday stand-ins
        assert {addr.ip for addr in listening} == {"127.0.0.1"}
        assert sandbox.ctrl_c() == 0
    finally:
        sandbox.kill()
