"""Every embedded request is authenticated by its App Bridge ID token (session token)."""
from __future__ import annotations

import time
import uuid

import jwt
import pytest

from shopify_app import shops
from tests.conftest import API_KEY, API_SECRET, OLD_API_SECRET
from tests.helpers import SHOP

WRONG = "shpss_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"


def id_token(shop=SHOP, *, secret=API_SECRET, alg="HS256", **overrides):
    now = int(time.time())
    claims = {"iss": f"https://{shop}/admin", "dest": f"https://{shop}", "aud": API_KEY, "sub": "42",
              "exp": now + 60, "nbf": now - 1, "iat": now - 1, "jti": str(uuid.uuid4()), "sid": "s1"}
    claims.update(overrides)
    return jwt.encode(claims, secret if alg != "none" else None, algorithm=alg)


@pytest.fixture
def installed(servers):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_x", scope="read_orders"))
    return SHOP


def _fetch(client, token, header=None):
    return client.get("/api/me", headers={"Authorization": header or f"Bearer {token}"})


def test_valid_token_authenticates_the_fetch(client, installed):
    resp = _fetch(client, id_token())
    assert resp.status_code == 200
    assert resp.json == {"shop": SHOP, "user": "42"}
    assert resp.headers["Content-Security-Policy"] == f"frame-ancestors https://{SHOP} https://admin.shopify.com;"


def test_token_signed_with_the_old_secret_is_accepted_during_rotation(client, installed):
    assert _fetch(client, id_token(secret=OLD_API_SECRET)).status_code == 200


@pytest.mark.parametrize("name,token", [
    ("expired", lambda: id_token(exp=int(time.time()) - 60)),
    ("alg_none", lambda: id_token(alg="none")),
    ("wrong_secret", lambda: id_token(secret="shpss_ffffffffffffffffffffffffffffffff")),
    ("wrong_audience", lambda: id_token(aud="another-app")),
    ("issuer_destination_mismatch", lambda: id_token(dest="https://other-shop.myshopify.com")),
    ("issuer_not_a_shop", lambda: id_token(iss="https://evil.example.com/admin", dest="https://evil.example.com")),
    ("not_yet_valid", lambda: id_token(nbf=int(time.time()) + 600)),
    ("missing_claims", lambda: jwt.encode({"aud": API_KEY, "exp": int(time.time()) + 60}, API_SECRET, "HS256")),
    ("garbage", lambda: "not.a.jwt"),
])
def test_bad_token_gets_401_with_the_retry_header(client, installed, name, token):
    resp = _fetch(client, token())
    assert resp.status_code == 401
    assert resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"


@pytest.mark.parametrize("header", ["Basic abc", "bearer lowercase", "Token x", ""])
def test_authorization_that_is_not_a_bearer_header_gets_401(client, installed, header):
    resp = client.get("/api/me", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.headers["X-Shopify-Retry-Invalid-Session-Request"] == "1"


def test_document_load_authenticates_by_the_id_token_parameter(client, installed):
    resp = client.get(f"/?embedded=1&shop={SHOP}&id_token={id_token()}")
    assert resp.status_code == 200
    assert b"shopify-api-key" in resp.data and API_KEY.encode() in resp.data
    assert resp.headers["Content-Security-Policy"].startswith(f"frame-ancestors https://{SHOP} ")


def test_document_load_without_a_token_bounces_to_app_bridge(client, installed):
    resp = client.get(f"/?embedded=1&shop={SHOP}")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/auth/session-token?")
    bounce = client.get(resp.headers["Location"])
    assert bounce.status_code == 200 and b"app-bridge.js" in bounce.data


def test_document_load_with_a_bad_token_bounces_instead_of_rendering(client, installed):
    resp = client.get(f"/?embedded=1&shop={SHOP}&id_token={id_token(secret=WRONG)}")
    assert resp.status_code == 302 and "/auth/session-token" in resp.headers["Location"]


def test_bounce_refuses_a_foreign_shop_domain(client):
    assert client.get("/?embedded=1&shop=evil.example.com").status_code == 400
    assert client.get("/auth/session-token?shop=evil.example.com&shopify-reload=/").status_code == 400


@pytest.mark.parametrize("target", [
    "//evil.example.com/x", "/\\evil.example.com/x", "https://evil.example.com/", "javascript:alert(1)",
    "/\t/evil.example.com/x", "/cases/5\n", "", "cases/5",
])
def test_bounce_refuses_an_off_site_reload_target(client, target):
    # App Bridge would reload the target with a fresh ID token: only a path in this app will do.
    resp = client.get("/auth/session-token", query_string={"shop": SHOP, "shopify-reload": target})
    assert resp.status_code == 400


def test_bounce_accepts_a_path_in_the_app(client):
    resp = client.get("/auth/session-token",
                      query_string={"shop": SHOP, "shopify-reload": f"/cases/5?shop={SHOP}&locale=is"})
    assert resp.status_code == 200 and b"app-bridge.js" in resp.data


def test_one_shops_token_never_reads_as_another_shop(client, installed):
    other = "other-shop.myshopify.com"
    shops.save_tokens(other, shops.Tokens(access_token="shpat_y"))
    assert _fetch(client, id_token(other)).json["shop"] == other
    assert _fetch(client, id_token(SHOP)).json["shop"] == SHOP
