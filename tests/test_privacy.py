"""Privacy (issue 8): privacy webhooks are checked before they act, only what an invoice needs is
kept and only for a while, redaction leaves nothing behind, and data requests are answered.
Each through the real intake, workers and pipeline."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shopify_app import db, documents, retention, shops
from shopify_app import orders as work
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle
from tests.conftest import API_SECRET
from tests.helpers import OTHER_SHOP, body_of, webhook_headers

NOW = lambda: datetime.now(timezone.utc)  # noqa: E731


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def post(client, topic, payload, *, shop=SHOP, path=None, triggered_at="now", event_id=None):
    body = body_of(payload)
    headers = webhook_headers(body, API_SECRET, topic=topic, shop=shop, event_id=event_id)
    if triggered_at is None:
        del headers["X-Shopify-Triggered-At"]
    else:
        moment = NOW() if triggered_at == "now" else triggered_at
        headers["X-Shopify-Triggered-At"] = moment.isoformat()
    if path is None:
        path = "/webhooks/compliance" if topic in retention.COMPLIANCE_TOPICS else "/webhooks"
    return client.post(path, data=body, headers=headers)


def installed(domain):
    shops.save_tokens(domain, shops.Tokens(access_token="shpat_x", refresh_token="shprt_x", expires_in=3600))
    return shops.get(domain)["id"]


# --- 1. privacy webhooks are checked before they act ---------------------------------------------

def test_a_signed_shop_redact_resent_with_another_shops_domain_deletes_nothing(client, run_jobs):
    installed(OTHER_SHOP)
    shops.mark_uninstalled(OTHER_SHOP)
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() - interval '3 days'")
    # The attacker has one signed body (SHOP's own shop/redact) and sends it as OTHER_SHOP's.
    body = body_of({"shop_id": 1, "shop_domain": SHOP})
    headers = webhook_headers(body, API_SECRET, topic="shop/redact", shop=OTHER_SHOP)
    headers["X-Shopify-Triggered-At"] = NOW().isoformat()
    assert client.post("/webhooks/compliance", data=body, headers=headers).status_code == 200
    run_jobs()
    assert shops.get(OTHER_SHOP) is not None
    [event] = rows("SELECT status, error FROM webhook_events")
    assert event["status"] == "held" and "names" in event["error"]


def test_shop_redact_keeps_a_shop_that_is_installed_or_uninstalled_less_than_48_hours_ago(client, run_jobs):
    installed(SHOP)
    assert post(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}).status_code == 200
    run_jobs()
    shops.mark_uninstalled(SHOP)
    post(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    run_jobs()
    assert shops.get(SHOP) is not None
    assert [r["status"] for r in rows("SELECT status FROM webhook_events ORDER BY id")] == ["held", "held"]
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() - interval '49 hours'")
    post(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    run_jobs()
    assert shops.get(SHOP) is None


@pytest.mark.parametrize("triggered_at", [None, "two days ago"])
def test_an_undated_or_day_old_redaction_is_held_for_review(client, run_jobs, triggered_at):
    installed(SHOP)
    shops.mark_uninstalled(SHOP)
    with db.transaction() as conn:
        conn.execute("UPDATE shops SET uninstalled_at = now() - interval '3 days'")
    when = None if triggered_at is None else NOW() - timedelta(days=2)
    post(client, "shop/redact", {"shop_id": 1, "shop_domain": SHOP}, triggered_at=when)
    run_jobs()
    assert shops.get(SHOP) is not None
    assert rows("SELECT status FROM webhook_events") == [{"status": "held"}]


def test_privacy_topics_are_taken_only_at_the_compliance_address_and_order_topics_only_at_the_other(
        client, run_jobs):
    installed(SHOP)
    refused = post(client, "customers/redact", {"shop_domain": SHOP, "customer": {"id": 1}}, path="/webhooks")
    assert refused.status_code == 400
    assert post(client, "refunds/create", {"id": 1, "order_id": 2}, path="/webhooks/compliance").status_code == 400
    run_jobs()
    assert [r["status"] for r in rows("SELECT status FROM webhook_events")] == ["rejected", "rejected"]


def test_an_uninstall_whose_payload_is_another_shop_drops_no_token(client, run_jobs):
    installed(SHOP)
    post(client, "app/uninstalled", {"id": 1, "myshopify_domain": OTHER_SHOP})
    run_jobs()
    assert shops.is_installed(shops.get(SHOP))
    assert rows("SELECT status FROM webhook_events") == [{"status": "held"}]


# --- 2. only what is needed is stored, and not for ever --------------------------------------------

def test_a_stored_webhook_keeps_only_the_ids_its_handler_needs(client, run_jobs):
    installed(SHOP)
    payload = {"id": 890088186047892319, "order_id": 820982911946154508, "admin_graphql_api_id": "gid://x",
               "note": "Anna Jónsdóttir wanted a smaller size", "user_id": 1,
               "transactions": [{"id": 1, "gateway": "bogus", "receipt": {"card_holder": "ANNA JONSDOTTIR"}}],
               "refund_line_items": [{"line_item": {"name": "Bolur", "properties": [{"name": "Nafn", "value": "Anna"}]}}]}
    post(client, "refunds/create", payload)
    [event] = rows("SELECT payload FROM webhook_events")
    assert event["payload"] == {"id": 890088186047892319, "order_id": 820982911946154508,
                                "admin_graphql_api_id": "gid://x"}


def test_processed_and_rejected_events_are_purged_after_the_retention_period_and_rejected_bodies_are_cut(
        client, run_jobs):
    installed(SHOP)
    post(client, "refunds/create", {"id": 1, "order_id": 2})
    body = b"{" + b"x" * 100_000
    client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, topic="refunds/create"))
    run_jobs()
    [kept] = rows("SELECT length(raw_body) AS n FROM webhook_events WHERE status = 'rejected'")
    assert kept["n"] == retention.REJECTED_BODY_BYTES
    assert retention.purge() == 0   # not yet
    with db.transaction() as conn:
        conn.execute("UPDATE webhook_events SET received_at = now() - interval '31 days'")
    assert retention.purge() == 2 and rows("SELECT id FROM webhook_events") == []


# --- 3 and 4: redaction is complete; data requests are answered -----------------------------------

ANNA = {"name": "Anna Jónsdóttir", "email": "anna.jons@example.is", "kennitala": "1203894569",
        "phone": "+3545551234", "address": "Laugavegur 7"}
ORDER = {"name": "#1001", "currency": "ISK", "taxes_included": True,
         "customer": {"email": ANNA["email"], "company": ANNA["kennitala"], "first_name": "Anna",
                      "last_name": "Jónsdóttir", "phone": ANNA["phone"], "address1": ANNA["address"]},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def every_text_in_the_database() -> str:
    """A dump of every table in the schema, as text (bytea decoded), to search."""
    out = []
    with db.transaction() as conn:
        tables = [r["tablename"] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                for value in row.values():
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("utf-8", "replace")
                    out.append(json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value)
    return "\n".join(out)


@pytest.fixture
def annas_order(system, client, payday):
    """Anna's order with a return that Payday refused twice (messages quoting her details), a
    data request answered, and a rejected webhook body that names her."""
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    payday.register_person(ANNA["kennitala"], ANNA["name"])
    store = system.shopify.store
    order = store.create_order(SHOP, ORDER)
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "return_close", "return": "R1"})
    payday.fail_next(1, status=503, paths=("GET /customers/number",))
    payday.fail_next(1, status=400, body={"message": f"Netfangið {ANNA['email']} (kt. {ANNA['kennitala']}) er ógilt"},
                     paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    body = json.dumps({"customer": {"email": ANNA["email"]}, "broken": True}).encode()[:-1]
    client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, topic="refunds/create", shop=SHOP))
    post(client, "customers/data_request", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": order.customer_id, "email": ANNA["email"], "phone": ANNA["phone"]},
        "orders_requested": [order.id], "data_request": {"id": 9999}})
    run_worker_until_idle()
    return order


def test_a_data_request_is_answered_with_an_export_the_merchant_downloads(system, client, annas_order):
    [request] = rows("SELECT id, completed_at, export FROM compliance_requests")
    assert request["completed_at"] is not None
    [exported] = request["export"]["orders"]
    assert exported["order"] == "#1001" and exported["customer_email"] == ANNA["email"]
    assert exported["credit_invoices"] and exported["returns_and_refunds"]
    auth = {"Authorization": f"Bearer {system.shopify.id_token(SHOP)}"}
    page = client.get("/settings", query_string={"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP)})
    assert 'data-testid="data-requests"' in page.get_data(as_text=True)
    download = client.get(f"/api/data-requests/{request['id']}", headers=auth)
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    assert download.get_json()["orders"][0]["customer_email"] == ANNA["email"]
    # Another shop never sees it.
    other = {"Authorization": f"Bearer {system.shopify.id_token(OTHER_SHOP)}"}
    assert client.get(f"/api/data-requests/{request['id']}", headers=other).status_code == 404


def test_after_customers_redact_no_table_holds_the_customers_details_and_none_come_back(
        system, client, payday, annas_order):
    before = every_text_in_the_database()
    assert ANNA["email"] in before and ANNA["name"] in before   # the fixture did fill the tables
    post(client, "customers/redact", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": annas_order.customer_id, "email": ANNA["email"],
                                                          "phone": ANNA["phone"]},
        "orders_to_redact": [annas_order.id]})
    run_worker_until_idle()
    dump = every_text_in_the_database()
    for what, value in ANNA.items():
        assert value.lower() not in dump.lower(), what
    # The next pass over the order (the merchant retries) writes none of it back.
    [doc] = rows("SELECT id, shop_id FROM documents")
    documents.retry(doc["id"], doc["shop_id"])
    run_worker_until_idle()
    assert len(payday.invoices) == 1
    dump = every_text_in_the_database()
    for what, value in ANNA.items():
        assert value.lower() not in dump.lower(), what


def test_payday_errors_never_carry_a_customers_details_in_their_path():
    from shopify_app.accounting.payday.api import shown_path

    assert shown_path("/customers/number/1203894569") == "/customers/number/…"
    assert shown_path("/customers/search/?query=anna@example.is") == "/customers/search/"


def test_customer_fields_are_stored_only_for_orders_with_a_case(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = system.shopify.store.create_order(SHOP, ORDER)   # no return, no refund
    work.request_work(shops.get(SHOP)["id"], order.id)
    run_worker_until_idle()
    assert rows("SELECT customer_name, customer_email, customer_id FROM orders") == [
        {"customer_name": None, "customer_email": None, "customer_id": None}]


def test_redaction_forgets_the_payday_customer_remembered_for_the_buyer(system, client, payday, annas_order):
    assert rows("SELECT count(*) AS n FROM payday_customers")[0]["n"] == 1
    post(client, "customers/redact", {
        "shop_id": 1, "shop_domain": SHOP, "customer": {"id": annas_order.customer_id, "email": ANNA["email"]},
        "orders_to_redact": [annas_order.id]})
    run_worker_until_idle()
    assert rows("SELECT count(*) AS n FROM payday_customers")[0]["n"] == 0
