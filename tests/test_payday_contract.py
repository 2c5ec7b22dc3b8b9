"""Payday's real contract (issue 9): what Skilvís does where Payday's behaviour is unconfirmed,
through the real pipeline against the Payday stand-in."""
from __future__ import annotations

from shopify_app import db, events, shop_settings
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle

ORDER = {"name": "#1001", "currency": "ISK", "taxes_included": True, "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def closed_return(system):
    store = system.shopify.store
    order = store.create_order(SHOP, ORDER)
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "return_close", "return": "R1"})
    system.shopify.deliver()
    run_worker_until_idle()
    return order


def test_while_paydays_own_app_still_credits_skilvis_credits_nothing_and_says_why(system, client, payday):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    shop_settings.save(shop_id, payday_app="credits_on")
    closed_return(system)
    assert payday.invoices == []
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "open" and case["reason"]["code"] == "payday_app_credits"
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "en"}
    page = client.get("/settings", query_string=query).get_data(as_text=True)
    assert 'data-testid="payday-app-warning"' in page
    # Payday turned its app's credit invoices off: what waited is credited, once.
    saved = client.post("/api/settings", json={"payday_app": "credits_off"},
                        headers={"Authorization": f"Bearer {system.shopify.id_token(SHOP)}"})
    assert saved.get_json()["ok"]
    run_worker_until_idle()
    assert len(payday.invoices) == 1


def test_the_checklist_asks_about_paydays_own_app(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "en"}
    page = client.get("/", query_string=query).get_data(as_text=True)
    assert 'data-key="payday_app" data-done="false"' in page


def test_a_paid_credit_payday_refuses_is_created_unpaid_and_marked_paid_once_issued(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    payday.paid_negative = "refused"
    closed_return(system)
    [invoice] = payday.invoices
    assert invoice["status"] == "PAID" and invoice["paymentType"] and invoice["number"]
    posts = [r for r in payday.requests if r["method"] == "POST" and r["path"] == "/invoices"]
    assert [p["json"]["status"] for p in posts] == ["PAID", "SENT"]   # refused as paid, made unpaid
    assert rows("SELECT pay_later FROM documents") == [{"pay_later": None}]
    assert [r["kind"] for r in rows("SELECT kind FROM timeline WHERE kind LIKE 'payday_payment%%'")] == [
        "payday_payment_registered"]


def test_a_lost_answer_is_found_among_the_customers_invoices_not_created_twice(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    payday.configure({"search": "ignored", "lost_answers": 1.0})   # every create's answer is lost
    closed_return(system)
    payday.lost_answers = 0.0
    with db.transaction() as conn:   # time passes to the next attempt
        conn.execute("UPDATE documents SET next_attempt_at = now()")
    events.sweep()
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and payday.faults["lost_answers"] == 1
    assert rows("SELECT status FROM documents") == [{"status": "sent"}]


def test_a_return_credited_in_payday_takes_no_goods_out_of_its_stock(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    payday.add_product("KRUS", 10)
    closed_return(system)
    [invoice] = payday.invoices
    assert invoice["number"] and payday.stock("KRUS") == 10


def test_references_are_unique_between_two_shops_booking_into_one_payday_company(system, payday):
    from shopify_app import shops
    from shopify_app.sandbox.player import PAYDAY_CLIENT

    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    other = "skilvis-com.myshopify.com"
    shops.save_tokens(other, shops.Tokens(access_token="shpat_x", expires_in=3600))
    shop_settings.save(shops.get(other)["id"], payday_client_id=PAYDAY_CLIENT[0], payday_client_secret=PAYDAY_CLIENT[1])
    closed_return(system)
    [invoice] = payday.invoices
    assert invoice["reference"] == "skilvis-sandbox: #1001 / #1001-R1"


def test_C7_the_sale_invoice_is_found_by_the_order_number_in_its_description_and_named_on_the_page(
        system, client, payday):
    from shopify_app import payday as payday_api
    from shopify_app.sandbox.player import PAYDAY_CLIENT

    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    books = payday_api.PaydayClient(payday.url, *PAYDAY_CLIENT)
    anna = books.find_or_create_customer(email="anna@example.is", name="Anna")
    # As Payday's own Shopify app writes it: the order number in the description, no reference.
    books.create_invoice({"customer": {"id": anna}, "status": "SENT", "description": "Shopify pöntun #1001",
                          "lines": [{"description": "Krús", "quantity": 3, "unitPriceIncludingVat": 1990,
                                     "vatPercentage": 24}]})
    closed_return(system)
    sale = next(inv for inv in payday.invoices if inv["description"] == "Shopify pöntun #1001")
    [credit] = [inv for inv in payday.invoices if inv["reference"] == "#1001 / #1001-R1"]
    assert credit["description"].endswith(f"Kreditfærir reikning nr. {sale['number']}")
    [case] = rows("SELECT id FROM cases")
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "en"}
    page = client.get(f"/cases/{case['id']}", query_string=query).get_data(as_text=True)
    assert f"Credits Payday invoice no. {sale['number']}" in page


def test_the_second_document_of_a_buyer_costs_no_customer_lookup(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = closed_return(system)
    customer_reads = lambda: [r for r in payday.requests if r["path"].startswith("/customers")  # noqa: E731
                              and not r["path"].endswith("/invoice")]
    first = len(customer_reads())
    assert first >= 1
    system.shopify.store.apply(order, {"do": "refund", "lines": [], "shipping": "0", "amount": "100"})
    system.shopify.deliver()
    run_worker_until_idle()
    assert len(payday.invoices) == 2 and len(customer_reads()) == first
    assert {inv["customer"]["id"] for inv in payday.invoices} == {payday.invoices[0]["customer"]["id"]}
    assert rows("SELECT found_by FROM payday_customers") == [{"found_by": "email"}]
    assert all("anna" not in str(r) for r in rows("SELECT * FROM payday_customers"))   # only a hash
