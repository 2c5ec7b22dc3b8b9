"""Shopify's real contract (issue 7): protected customer data withheld, the 60-day window, test
orders, every GraphQL error classified, tokens that die or age, no size limits, less volume.
Through the real pipeline, web pages and workers against the Shopify and Payday stand-ins."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shopify_app import db, events, orders, reconcile, shop_settings, shops
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle
from shopify_app.shopify_admin import Answer, ShopifyRefused, ShopifyUnavailable, _classify
from tests.helpers import body_of, webhook_headers

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is", "company": "1203894569"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}, "currency": "ISK", "taxes_included": True}


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def embedded_query(shopify, locale="en") -> dict:
    return {"embedded": "1", "shop": SHOP, "id_token": shopify.id_token(SHOP), "locale": locale}


def bearer(shopify, locale: str | None = None) -> dict:
    """A fetch's headers; `locale` as the page's script sends its language."""
    return {"Authorization": f"Bearer {shopify.id_token(SHOP)}", **({"X-Skilvis-Locale": locale} if locale else {})}


def returned_and_closed(store, spec=None):
    order = store.create_order(SHOP, {**ORDER, **(spec or {})})
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "return_close", "return": "R1"})
    return order


def play(system):
    system.shopify.deliver()
    run_worker_until_idle()


# --- 1. protected customer data -----------------------------------------------------------------

def test_a_field_level_denial_is_a_withheld_field_and_any_other_error_is_classified():
    denied = {"message": "This app is not approved to access the email field", "path": ["order", "email"],
              "extensions": {"code": "ACCESS_DENIED"}}
    assert _classify("s", {"data": {"order": {"email": None}}}, [denied]) == \
        Answer({"order": {"email": None}}, frozenset({("order", "email")}))
    documented = {"message": "This app is not approved to access the Customer object. See https://partners.shopify"
                             ".com/1/apps/1/customer_data for more details.", "path": ["order", "customer", "id"]}
    assert _classify("s", {"data": {"order": {"customer": None}}}, [documented]).withheld == {
        ("order", "customer", "id")}
    for code, reason in (("ACCESS_DENIED", "shopify_access_denied"), ("MAX_COST_EXCEEDED", "shopify_query_refused"),
                         ("undefinedField", "shopify_query_refused")):
        with pytest.raises(ShopifyRefused) as refused:
            _classify("s", {"data": None}, [{"message": "no", "extensions": {"code": code}}])
        assert refused.value.code == reason
    with pytest.raises(ShopifyUnavailable):
        _classify("s", {"data": None}, [{"message": "oops", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}])


def test_without_customer_data_the_invoice_waits_for_the_default_customer_then_goes_to_it(system, client, payday):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"],
                           protected_customer_data=False)
    shop_settings.save(shop_id, payday_default_customer_id=None, payday_default_customer_name=None)
    returned_and_closed(system.shopify.store)
    play(system)
    assert payday.invoices == []
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "open" and case["reason"]["code"] == "default_customer_missing"
    assert rows("SELECT customer_name, customer_email FROM orders") == [{"customer_name": None, "customer_email": None}]
    page = client.get("/settings", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert "Shopify is withholding customer details now" in page
    # The merchant finds the cash customer in Payday and picks it.
    found = client.get("/api/settings/payday-customers", query_string={"q": "Staðgreiðslu"},
                       headers=bearer(system.shopify)).get_json()
    [cash] = found["customers"]
    saved = client.post("/api/settings", json={"default_customer_id": cash["id"]}, headers=bearer(system.shopify))
    assert saved.get_json()["ok"]
    run_worker_until_idle()
    [invoice] = payday.invoices
    assert str(invoice["customer"]["id"]) == cash["id"] and invoice.get("sendEmail") in (None, False)
    assert rows("SELECT customer_by FROM documents") == [{"customer_by": "default"}]
    assert rows("SELECT status FROM cases") == [{"status": "created"}]


def test_a_default_customer_payday_does_not_know_is_refused_with_a_clear_message(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    saved = client.post("/api/settings", json={"default_customer_id": "no-such-customer"}, headers=bearer(system.shopify))
    assert saved.status_code == 400 and "finnst ekki í Payday" in saved.get_json()["message"]


def test_only_the_fields_an_invoice_needs_are_asked_and_email_is_no_longer_the_deprecated_one():
    from shopify_app import facts

    asked = facts.ORDER_QUERY
    assert "defaultEmailAddress { emailAddress }" in asked and "customer { id defaultEmailAddress" in asked
    for field in ("phone", "firstName", "lastName", "shippingAddress", "tags"):
        assert field not in asked, field


# --- 2. every order, however old ------------------------------------------------------------------

def test_an_order_older_than_60_days_is_listed_with_what_to_do_and_read_once_shopify_grants_all_orders(
        system, client, payday, app):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    assert not shops.sees_all_orders(shops.get(SHOP)["scopes"])   # requested, not yet granted
    returned_and_closed(system.shopify.store, {"age_days": 70})
    play(system)
    assert payday.invoices == [] and rows("SELECT last_error FROM orders") == [{"last_error": "order_outside_window"}]
    home = client.get("/", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-reason="order_outside_window"' in home and "only the last 60 days of orders" in home
    assert 'data-testid="missing-scopes"' in home
    system.shopify.grant_scopes(SHOP, "read_orders,read_all_orders,read_returns")   # app/scopes_update
    play(system)
    assert len(payday.invoices) == 1 and rows("SELECT last_error FROM orders") == [{"last_error": None}]
    assert shops.sees_all_orders(rows("SELECT scopes FROM shops WHERE id = %s", shop_id)[0]["scopes"])


def test_settings_do_not_offer_a_history_start_shopify_cannot_show(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    page = client.get("/settings", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-testid="history-limit"' in page and ' min="' in page
    too_early = (datetime.now(timezone.utc) - timedelta(days=90)).date().isoformat()
    refused = client.post("/api/settings", json={"invoices_from": too_early}, headers=bearer(system.shopify, "en"))
    assert refused.status_code == 400 and "last 60 days" in refused.get_json()["message"]


# --- 3. test orders -------------------------------------------------------------------------------

def test_D7_reconciliation_and_the_history_read_leave_test_orders_out_in_the_search(system, payday):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    system.shopify.store.drain()
    reconcile.reconcile_shop(shop_id)
    shop_settings.save(shop_id, invoices_from=datetime.now(timezone.utc) - timedelta(days=10))
    run_worker_until_idle()
    searches = [r["variables"].get("query") for r in system.shopify.graphql_requests if "orders(" in r["query"]]
    assert searches and all("test:false" in s for s in searches if s)
    history = [s for s in searches if s and "updated_at:>=" in s and ("return_status" in s or "financial_status" in s)]
    assert {s.split("test:false ")[1] for s in history} == set(reconcile.HISTORY_SEARCHES)


# --- 4. every GraphQL error classified ------------------------------------------------------------

def test_a_permanent_refusal_ends_the_pass_with_a_reason_and_is_read_again_on_a_capped_backoff(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    returned_and_closed(system.shopify.store)
    system.shopify.fail_next(1, status=403)   # a missing scope: not a dead token
    play(system)
    [order] = rows("SELECT id, last_error, read_failures, read_again_at, work_done_at FROM orders")
    assert order["last_error"] == "shopify_access_denied" and order["read_failures"] == 1
    assert order["read_again_at"] > datetime.now(timezone.utc) + timedelta(minutes=9)
    assert shops.is_installed(shops.get(SHOP))   # the token is kept
    assert orders.due_for_work() == []   # not every sweep
    home = client.get("/", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-reason="shopify_access_denied"' in home and 'data-action="read-again"' in home
    # The merchant's Retry reads it now.
    answer = client.post(f"/api/orders/{order['id']}/read-again", headers=bearer(system.shopify))
    assert answer.get_json()["ok"]
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and rows("SELECT last_error FROM orders") == [{"last_error": None}]


def test_the_backoff_after_refusals_grows_and_stays_capped(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    returned_and_closed(system.shopify.store)
    system.shopify.fail_next(1, status=423)
    play(system)
    pauses = []
    for _ in range(len(orders.READ_AGAIN) + 1):
        with db.transaction() as conn:
            conn.execute("UPDATE orders SET read_again_at = now() - interval '1 second'")
        system.shopify.fail_next(1, status=423)
        events.sweep()
        run_worker_until_idle()
        [order] = rows("SELECT read_again_at - work_done_at AS pause, last_error FROM orders")
        assert order["last_error"] == "shop_locked"
        pauses.append(order["pause"])
    assert pauses == sorted(pauses) and pauses[-1] == pauses[-2] <= orders.READ_AGAIN[-1] + timedelta(seconds=5)


# --- 5. tokens ------------------------------------------------------------------------------------

def test_a_refresh_refused_for_good_keeps_arriving_work_and_the_next_opening_says_so_and_catches_up(
        system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    system.shopify.expire_access_token(SHOP)
    system.shopify.revoke_refresh_token(SHOP)   # the refresh is refused for good
    returned_and_closed(system.shopify.store)
    play(system)
    assert payday.invoices == []
    assert rows("SELECT status FROM webhook_events WHERE topic = 'returns/close'") == [{"status": "processed"}]
    assert rows("SELECT last_error FROM orders") == [{"last_error": "shopify_auth"}]
    home = client.get("/", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-testid="access-lost"' in home
    run_worker_until_idle()
    assert len(payday.invoices) == 1
    again = client.get("/", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-testid="access-lost"' not in again   # said once


def test_a_refresh_token_near_its_end_is_renewed_by_token_exchange_on_the_next_embedded_load(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET refresh_token_expires_at = now() + interval '3 days'")
    client.get("/", query_string=embedded_query(system.shopify))
    [shop] = rows("SELECT refresh_token_expires_at FROM shops")
    assert shop["refresh_token_expires_at"] > datetime.now(timezone.utc) + timedelta(days=80)
    assert [r["body"].get("subject_token_type") for r in system.shopify.token_requests][-1].endswith("id_token")


def test_a_token_without_expiry_is_never_used_but_migrated_by_exchange(system, payday, settings):
    from shopify_app.shopify_admin import AdminClient

    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    old = system.shopify.oauth._issue(SHOP, expiring=False)["access_token"]   # an install from before 2026
    shops.save_tokens(SHOP, shops.Tokens(access_token=old, scope="read_orders,read_returns"))
    token = AdminClient(settings).access_token(SHOP)
    assert token != old
    [shop] = rows("SELECT access_token_expires_at, refresh_token_enc FROM shops")
    assert shop["access_token_expires_at"] is not None and shop["refresh_token_enc"] is not None
    assert [r["body"].get("subject_token_type") for r in system.shopify.token_requests][-1].endswith(
        "offline-access-token")


# --- 7. less volume -------------------------------------------------------------------------------

def test_several_webhooks_for_one_order_in_a_burst_cause_one_pass(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    returned_and_closed(system.shopify.store)
    system.shopify.deliver()   # return opened, refund, its transaction, close: four topics
    assert rows("SELECT count(*) AS n FROM webhook_events")[0]["n"] >= 3
    run_worker_until_idle()
    reads = [r for r in system.shopify.graphql_requests if "query SkilvisOrder(" in r["query"]]
    assert len(reads) == 1 and len(payday.invoices) == 1


def test_history_passes_run_behind_live_work(system, payday):
    from shopify_app import jobqueue

    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    with db.transaction() as conn:   # Skilvís began invoicing after the close below
        conn.execute("UPDATE shop_settings SET invoices_from = now() + interval '1 minute'")
    store = system.shopify.store
    returned_and_closed(store)
    play(system)
    assert payday.invoices == [] and rows("SELECT reason->>'code' AS why FROM cases") == [{"why": "before_start"}]
    shop_settings.save(shop_id, invoices_from=datetime.now(timezone.utc) - timedelta(days=1))   # history asked
    assert len(jobqueue.queue(history=True)) == 1
    live = store.create_order(SHOP, {**ORDER, "name": "#1002"})
    store.apply(live, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    system.shopify.deliver()   # live work arrives after the history read was queued
    run_worker_until_idle()
    assert [inv["reference"].split(" ")[0] for inv in payday.invoices] == ["#1002", "#1001"]


def test_a_long_history_read_is_one_bulk_operation_and_waits_for_it_without_losing_the_read(system, client, payday):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    system.shopify.grant_scopes(SHOP, "read_orders,read_all_orders,read_returns")
    play(system)
    store = system.shopify.store
    store.clock = lambda: datetime.now(timezone.utc) - timedelta(days=40)   # long before Skilvís
    returned_and_closed(store)
    plain = store.create_order(SHOP, {**ORDER, "name": "#1002"})   # nothing came back
    store.drain()
    store.clock = lambda: datetime.now(timezone.utc)
    system.shopify.bulk_completion_delay = 3600   # Shopify takes its time
    shop_settings.save(shop_id, invoices_from=datetime.now(timezone.utc) - timedelta(days=45))
    run_worker_until_idle()
    assert payday.invoices == [] and reconcile.backfill_state(shop_id)["backfill_error"] == "history_bulk_running"
    system.shopify.finish_bulk()
    events.sweep()   # the minute's sweep asks the unfinished read again: the same operation
    run_worker_until_idle()
    runs = [r for r in system.shopify.graphql_requests if "bulkOperationRunQuery" in r["query"]]
    assert len(runs) == 1 and "test:false" in runs[0]["variables"]["query"]
    state = reconcile.backfill_state(shop_id)
    assert state["backfill_done_at"] and state["backfill_orders"] == 1   # #1001 only: #1002 had no return
    assert [inv["reference"] for inv in payday.invoices] == ["#1001 / #1001-R1"]
    assert plain


# --- 8. small ones --------------------------------------------------------------------------------

def test_the_webhook_duplicate_key_includes_the_topic(client, settings):
    from tests.conftest import API_SECRET

    body = body_of({"id": 1, "order_id": 2})
    for topic in ("refunds/create", "order_transactions/create", "refunds/create"):
        client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, topic=topic, event_id="same"))
    assert [r["event_key"] for r in rows("SELECT event_key FROM webhook_events ORDER BY id")] == [
        "refunds/create:same", "order_transactions/create:same"]


def test_a_scope_shopify_has_not_granted_is_shown_on_the_home_page(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    shops.set_scopes(SHOP, "read_orders")
    home = client.get("/", query_string=embedded_query(system.shopify)).get_data(as_text=True)
    assert 'data-testid="missing-scopes"' in home and "read_returns" in home
