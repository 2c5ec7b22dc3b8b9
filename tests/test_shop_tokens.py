"""Managed install by token exchange, expiring offline tokens and their refresh, against the
Shopify stand-in."""
from __future__ import annotations

import threading

import pytest

from shopify_app import db, shops
from shopify_app.shopify_admin import TOKEN_EXCHANGE_GRANT, AdminClient, ShopifyAuthError
from tests.helpers import SHOP

SHOP_QUERY = "{ shop { myshopifyDomain } }"


@pytest.fixture
def admin(settings):
    return AdminClient(settings)


def _expire_ours():
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET access_token_expires_at = now() - interval '1 second'")


def test_first_embedded_load_exchanges_the_id_token_for_an_expiring_offline_token(client, shopify):
    resp = client.get(f"/?embedded=1&shop={SHOP}&id_token={shopify.id_token(SHOP)}")
    assert resp.status_code == 200
    [request] = shopify.token_requests
    body = request["body"]
    assert body["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert body["subject_token_type"] == "urn:ietf:params:oauth:token-type:id_token"
    assert body["requested_token_type"] == "urn:shopify:params:oauth:token-type:offline-access-token"
    assert str(body["expiring"]) == "1"
    row = shops.get(SHOP)
    assert shops.is_installed(row) and row["refresh_token_enc"] is not None
    # The next load finds the token and does not exchange again.
    client.get(f"/?embedded=1&shop={SHOP}&id_token={shopify.id_token(SHOP)}")
    assert len(shopify.token_requests) == 1


def test_token_still_valid_is_used_without_refresh(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    token = admin.access_token(SHOP)
    assert shopify.access_token_valid(SHOP, token)
    assert len(shopify.token_requests) == 1


def test_token_near_expiry_is_refreshed_and_the_new_pair_stored(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    old = admin.access_token(SHOP)
    shopify.expire_access_token(SHOP)
    _expire_ours()
    new = admin.access_token(SHOP)
    assert new != old and shopify.access_token_valid(SHOP, new)
    assert shopify.token_requests[-1]["body"]["grant_type"] == "refresh_token"
    assert admin.access_token(SHOP) == new  # stored, so no second refresh
    assert len(shopify.token_requests) == 2


def test_refresh_race_between_two_workers_leaves_one_valid_token_pair(settings, shopify):
    AdminClient(settings).install_from_id_token(SHOP, shopify.id_token(SHOP))
    shopify.expire_access_token(SHOP)
    _expire_ours()
    results, barrier = [], threading.Barrier(4)

    def worker():
        barrier.wait()
        results.append(AdminClient(settings).access_token(SHOP))  # each its own client, as two processes

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    refreshes = [r for r in shopify.token_requests if r["body"].get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1
    assert len(set(results)) == 1 and shopify.access_token_valid(SHOP, results[0])


def test_revoked_refresh_token_is_an_auth_error(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    shopify.reset()  # Shopify forgot every token (e.g. the app was uninstalled meanwhile)
    _expire_ours()
    with pytest.raises(ShopifyAuthError):
        admin.access_token(SHOP)


def test_uninstalled_shop_has_no_token(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    shops.mark_uninstalled(SHOP)
    with pytest.raises(ShopifyAuthError):
        admin.access_token(SHOP)


def _dead_token_is_dropped_but_the_shop_stays_installed():
    row = shops.get(SHOP)
    assert not shops.is_installed(row)
    assert row["access_token_enc"] is None and row["refresh_token_enc"] is None
    assert row["uninstalled_at"] is None and row["installed_at"] is not None


def _next_embedded_request_gets_a_working_token(client, admin, shopify):
    resp = client.get(f"/?embedded=1&shop={SHOP}&id_token={shopify.id_token(SHOP)}")
    assert resp.status_code == 200
    assert shopify.token_requests[-1]["body"]["grant_type"] == TOKEN_EXCHANGE_GRANT
    assert shops.is_installed(shops.get(SHOP))
    assert admin.graphql(SHOP, SHOP_QUERY)["shop"] == {"myshopifyDomain": SHOP}


def test_expired_refresh_token_is_replaced_by_the_next_embedded_request(client, admin, shopify):
    shopify.refresh_token_expires_in = 0   # the refresh token is dead from the start, as after its 90 days
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    shopify.refresh_token_expires_in = 7_776_000
    shopify.expire_access_token(SHOP)      # Shopify says 401; the refresh then gets invalid_grant
    with pytest.raises(ShopifyAuthError):
        admin.graphql(SHOP, SHOP_QUERY)
    assert (shopify.token_requests[-1]["grant"], shopify.token_requests[-1]["status"]) == ("refresh_token", 400)
    _dead_token_is_dropped_but_the_shop_stays_installed()
    _next_embedded_request_gets_a_working_token(client, admin, shopify)


def test_401_even_after_a_refresh_is_replaced_by_the_next_embedded_request(client, admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    shopify.fail_next(2, status=401)       # the refreshed token is refused too
    with pytest.raises(ShopifyAuthError):
        admin.graphql(SHOP, SHOP_QUERY)
    assert [r["grant"] for r in shopify.token_requests][-1] == "refresh_token"
    _dead_token_is_dropped_but_the_shop_stays_installed()
    _next_embedded_request_gets_a_working_token(client, admin, shopify)


def test_workers_racing_on_a_dead_refresh_token_ask_shopify_once(settings, shopify):
    shopify.refresh_token_expires_in = 0
    AdminClient(settings).install_from_id_token(SHOP, shopify.id_token(SHOP))
    _expire_ours()
    errors, barrier = [], threading.Barrier(4)

    def worker():
        barrier.wait()
        try:
            AdminClient(settings).access_token(SHOP)
        except ShopifyAuthError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(errors) == 4
    assert len([r for r in shopify.token_requests if r["grant"] == "refresh_token"]) == 1
    _dead_token_is_dropped_but_the_shop_stays_installed()


def test_a_refused_token_is_dropped_only_while_it_is_still_the_stored_one(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    refused = admin.access_token(SHOP)
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))   # an embedded request stored a new one meanwhile
    admin._forget_refused(SHOP, refused)
    assert shops.is_installed(shops.get(SHOP)) and admin.access_token(SHOP) != refused


def test_refresh_refused_for_our_client_credentials_keeps_the_tokens(admin, shopify):
    admin.install_from_id_token(SHOP, shopify.id_token(SHOP))
    _expire_ours()
    shopify.fail_next(1, status=401, endpoint="token",
                      body={"error": "invalid_client", "error_description": "Client authentication failed"})
    with pytest.raises(ShopifyAuthError):
        admin.access_token(SHOP)
    assert shops.is_installed(shops.get(SHOP))   # our secret is wrong, not the shop's refresh token
    assert shopify.access_token_valid(SHOP, admin.access_token(SHOP))
