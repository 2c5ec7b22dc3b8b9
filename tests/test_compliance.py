"""Uninstall and Shopify's privacy webhooks: idempotent, and deletion really deletes."""
from __future__ import annotations

from shopify_app import db, shops
from tests.conftest import API_SECRET
from tests.helpers import OTHER_SHOP, SHOP, body_of, webhook_headers


def deliver(client, topic, payload, shop=SHOP, event_id=None, path="/webhooks"):
    body = body_of(payload)
    resp = client.post(path, data=body, headers=webhook_headers(body, API_SECRET, topic=topic, shop=shop, event_id=event_id))
    assert resp.status_code == 200


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def test_uninstall_drops_the_tokens_and_marks_the_shop(client, run_jobs):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_secret", refresh_token="shprt_secret", expires_in=3600))
    deliver(client, "app/uninstalled", {"id": 1, "name": "Test", "domain": SHOP, "myshopify_domain": SHOP})
    run_jobs()
    row = shops.get(SHOP)
    assert row["access_token_enc"] is None and row["refresh_token_enc"] is None
    assert row["uninstalled_at"] is not None and not shops.is_installed(row)


def test_uninstall_received_twice_is_harmless(client, run_jobs):
    shops.save_tokens(SHOP, shops.Tokens(access_token="shpat_secret"))
    deliver(client, "app/uninstalled", {"id": 1, "myshopify_domain": SHOP}, event_id="u1")
    run_jobs()
    first = shops.get(SHOP)["uninstalled_at"]
    deliver(client, "app/uninstalled", {"id": 1, "myshopify_domain": SHOP}, event_id="u2")  # a second, distinct event
    run_jobs()
    assert shops.get(SHOP)["uninstalled_at"] == first
    assert [r["status"] for r in rows("SELECT status FROM webhook_events ORDER BY id")] == ["processed", "processed"]


def test_reinstall_after_uninstall_clears_the_mark(servers):
    shops.save_tokens(SHOP, shops.Tokens(access_token="a"))
    shops.mark_uninstalled(SHOP)
    shops.save_tokens(SHOP, shops.Tokens(access_token="b"))
    assert shops.is_installed(shops.get(SHOP))


def test_customer_redact_deletes_what_we_hold_about_that_customer(client, run_jobs):
    deliver(client, "refunds/create", {"id": 1, "order_id": 299938, "return": None})
    deliver(client, "orders/updated", {"id": 299938, "email": "john@example.com"})
    deliver(client, "orders/updated", {"id": 777, "customer": {"id": 191167}})
    deliver(client, "refunds/create", {"id": 2, "order_id": 111111, "return": None})  # someone else's order
    deliver(client, "refunds/create", {"id": 3, "order_id": 299938}, shop=OTHER_SHOP)  # another shop
    run_jobs()
    deliver(client, "customers/redact", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": 191167, "email": "john@example.com", "phone": "555"},
        "orders_to_redact": [299938, 280263]}, path="/webhooks/compliance")
    run_jobs()
    left = rows("SELECT shop_domain, topic, payload FROM webhook_events ORDER BY id")
    # Order 777's event kept only its id (retention.NEEDED): nothing in it names the customer.
    assert [(r["shop_domain"], r["topic"], r["payload"]) for r in left] == [
        (SHOP, "orders/updated", {"id": 777}), (SHOP, "refunds/create", {"id": 2, "order_id": 111111}),
        (OTHER_SHOP, "refunds/create", {"id": 3, "order_id": 299938}),
        (SHOP, "customers/redact", {"redacted": True})]   # the request itself named the customer
    [request] = rows("SELECT * FROM compliance_requests")
    assert request["topic"] == "customers/redact" and request["completed_at"] is not None
    assert list(request["orders"]) == [299938, 280263]


def add_order(shop_domain, legacy_id, name, email):
    with db.transaction() as conn:
        conn.execute(
            """INSERT INTO orders (shop_id, order_gid, legacy_id, name, customer_name, customer_email)
               VALUES ((SELECT id FROM shops WHERE domain = %s), %s, %s, %s, %s, %s)""",
            (shop_domain, f"gid://shopify/Order/{legacy_id}", legacy_id, f"#{legacy_id}", name, email))


def test_customer_redact_forgets_that_customers_name_and_email_on_our_orders(client, run_jobs):
    shops.save_tokens(SHOP, shops.Tokens(access_token="a"))
    shops.save_tokens(OTHER_SHOP, shops.Tokens(access_token="b"))
    add_order(SHOP, 299938, "John Smith", "john@example.com")   # listed in orders_to_redact
    add_order(SHOP, 280263, "John Smith", None)                 # listed, no e-mail kept
    add_order(SHOP, 310001, "John Smith", "John@Example.com")   # not listed, his e-mail
    add_order(SHOP, 111111, "Jane Doe", "jane@example.com")     # another customer
    add_order(OTHER_SHOP, 299938, "John Smith", "john@example.com")  # another shop's customer
    deliver(client, "customers/redact", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": 191167, "email": "john@example.com", "phone": "555"},
        "orders_to_redact": [299938, 280263]}, path="/webhooks/compliance")
    run_jobs()
    left = rows("""SELECT s.domain, o.legacy_id, o.customer_name, o.customer_email
                   FROM orders o JOIN shops s ON s.id = o.shop_id ORDER BY s.domain, o.legacy_id""")
    assert [tuple(r.values()) for r in left] == [
        (OTHER_SHOP, 299938, "John Smith", "john@example.com"),
        (SHOP, 111111, "Jane Doe", "jane@example.com"),
        (SHOP, 280263, None, None),
        (SHOP, 299938, None, None),
        (SHOP, 310001, None, None),
    ]


def test_shop_redact_deletes_everything_of_that_shop_only(client, run_jobs, shopify):
    shops.save_tokens(SHOP, shops.Tokens(access_token="a"))
    shops.save_tokens(OTHER_SHOP, shops.Tokens(access_token="b"))
    uninstalled_two_days_ago(SHOP)
    deliver(client, "refunds/create", {"id": 1, "order_id": 5})
    deliver(client, "refunds/create", {"id": 1, "order_id": 5}, shop=OTHER_SHOP)
    run_jobs()
    deliver(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, path="/webhooks/compliance")
    run_jobs()
    assert shops.get(SHOP) is None
    assert shops.get(OTHER_SHOP) is not None
    remaining = rows("SELECT shop_domain, topic FROM webhook_events ORDER BY id")
    assert remaining == [{"shop_domain": OTHER_SHOP, "topic": "refunds/create"},
                         {"shop_domain": SHOP, "topic": "shop/redact"}]


def uninstalled_two_days_ago(domain):
    shops.mark_uninstalled(domain)
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() - interval '2 days' WHERE domain = %s", (domain,))


def test_shop_redact_twice_is_harmless(client, run_jobs):
    shops.save_tokens(SHOP, shops.Tokens(access_token="a"))
    uninstalled_two_days_ago(SHOP)
    deliver(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, event_id="r1", path="/webhooks/compliance")
    deliver(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, event_id="r2", path="/webhooks/compliance")
    run_jobs()
    assert shops.get(SHOP) is None


def test_customer_data_request_is_recorded_and_answered(client, run_jobs):
    deliver(client, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": 191167, "email": "john@example.com"},
        "orders_requested": [299938], "data_request": {"id": 9999}}, path="/webhooks/compliance")
    run_jobs()
    [request] = rows("SELECT * FROM compliance_requests")
    assert (request["topic"], request["customer_id"], list(request["orders"]), request["request_id"]) == (
        "customers/data_request", 191167, [299938], "9999")


def test_every_table_of_a_shops_data_is_deleted_with_the_shop(servers):
    """shop/redact deletes the shop row; each table holding a shop's rows must go with it."""
    with db.transaction() as conn:
        loose = conn.execute(
            """SELECT c.table_name FROM information_schema.columns c
               WHERE c.table_schema = 'public' AND c.column_name = 'shop_id' AND NOT EXISTS (
                   SELECT 1 FROM pg_constraint k
                   WHERE k.contype = 'f' AND k.conrelid = c.table_name::regclass
                     AND k.confrelid = 'shops'::regclass AND k.confdeltype = 'c')""").fetchall()
    assert loose == []
