"""Installs that start outside admin: the authorization-code flow, with state, HMAC and shop checks."""
from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import parse_qs, urlparse


from tests.conftest import API_KEY, API_SECRET, OLD_API_SECRET
from tests.helpers import SHOP


def signed(params: dict, secret=API_SECRET) -> dict:
    """Shopify's query signature: hex HMAC-SHA256 over the sorted k=v pairs, hmac left out."""
    params = {"timestamp": str(int(time.time())), **params}
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def begin(client, shop=SHOP) -> str:
    resp = client.get(f"/auth?shop={shop}")
    assert resp.status_code == 302
    location = urlparse(resp.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", shop, "/admin/oauth/authorize")
    query = parse_qs(location.query)
    assert query["client_id"] == [API_KEY]
    assert query["redirect_uri"] == ["https://skilvis.test/auth/callback"]
    return query["state"][0]


def test_begin_refuses_a_foreign_shop_domain(client):
    assert client.get("/auth?shop=evil.example.com").status_code == 400
    assert client.get("/auth?shop=https://x.myshopify.com.evil.com").status_code == 400


def test_each_install_gets_a_fresh_random_state(client):
    assert begin(client) != begin(client)


def test_callback_with_a_bad_hmac_is_refused(client):
    state = begin(client)
    params = signed({"shop": SHOP, "code": "c", "state": state})
    params["hmac"] = "0" * 64
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_signed_with_a_foreign_secret_is_refused(client):
    state = begin(client)
    params = signed({"shop": SHOP, "code": "c", "state": state}, secret="shpss_" + "9" * 32)
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_with_a_bad_state_is_refused(client):
    begin(client)
    params = signed({"shop": SHOP, "code": "c", "state": "forged"})
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_without_a_started_flow_is_refused(client):
    params = signed({"shop": SHOP, "code": "c", "state": "anything"})
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_for_a_foreign_shop_domain_is_refused(client):
    state = begin(client)
    params = signed({"shop": "evil.example.com", "code": "c", "state": state})
    assert client.get("/auth/callback", query_string=params).status_code == 400


def test_callback_for_another_shop_than_the_flow_began_with_is_refused(client):
    state = begin(client)
    params = signed({"shop": "other-shop.myshopify.com", "code": "c", "state": state})
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_with_a_stale_timestamp_is_refused(client):
    state = begin(client)
    params = signed({"shop": SHOP, "code": "c", "state": state, "timestamp": str(int(time.time()) - 2 * 86400)})
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_state_is_single_use(client, shopify):
    state = begin(client)
    params = signed({"shop": SHOP, "code": shopify.authorization_code(SHOP), "state": state})
    assert client.get("/auth/callback", query_string=params).status_code == 302
    params = signed({"shop": SHOP, "code": shopify.authorization_code(SHOP), "state": state})
    assert client.get("/auth/callback", query_string=params).status_code == 403


def test_callback_exchanges_the_code_for_an_expiring_token(client, shopify):
    from shopify_app import shops

    state = begin(client)
    params = signed({"shop": SHOP, "code": shopify.authorization_code(SHOP), "state": state})
    resp = client.get("/auth/callback", query_string=params)
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"https://{SHOP}/admin/apps/{API_KEY}"
    [request] = shopify.token_requests
    assert request["body"]["expiring"] in ("1", 1)
    row = shops.get(SHOP)
    assert shops.is_installed(row) and row["access_token_expires_at"] is not None


def test_callback_signed_with_the_old_secret_is_accepted_during_rotation(client, shopify):
    state = begin(client)
    params = signed({"shop": SHOP, "code": shopify.authorization_code(SHOP), "state": state}, secret=OLD_API_SECRET)
    assert client.get("/auth/callback", query_string=params).status_code == 302


def test_signed_install_link_starts_the_flow(client):
    resp = client.get("/", query_string=signed({"shop": SHOP}))
    assert resp.status_code == 302 and resp.headers["Location"].startswith(f"/auth?shop={SHOP}")


def test_unsigned_install_link_is_refused(client):
    assert client.get(f"/?shop={SHOP}").status_code == 400
