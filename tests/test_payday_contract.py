"""Payday's real contract (issue 9): what Skilvís does where Payday's behaviour is unconfirmed,
through the real pipeline against the Payday stand-in."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shopify_app import db, events, reconcile, shop_settings, shops
from shopify_app.accounting.payday import numbers, originals
from shopify_app.sandbox.player import PAYDAY_CLIENT, SHOP, install_shop, run_worker_until_idle

ORDER = {"name": "#1001", "currency": "ISK", "taxes_included": True, "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def stock(payday, sku):
    """The product's stock in the shop's Payday company."""
    return payday.stock(sku, PAYDAY_CLIENT[0])


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
    assert invoice["status"] == "SENT" and rows("SELECT accounting_number FROM documents") == [{"accounting_number": None}]
    numbers.fetch_missing_numbers()   # the periodic job: numbered by now, so the payment is registered
    [invoice] = payday.invoices
    assert invoice["status"] == "PAID" and invoice["paymentType"] and invoice["number"]
    posts = [r for r in payday.requests if r["method"] == "POST" and r["path"] == "/invoices"]
    assert [p["json"]["status"] for p in posts] == ["PAID", "SENT"]   # refused as paid, made unpaid
    assert rows("SELECT pay_later FROM documents") == [{"pay_later": None}]
    assert [r["kind"] for r in rows("SELECT kind FROM timeline WHERE kind LIKE 'payday_payment%%'")] == [
        "payday_payment_registered"]
    numbers.fetch_missing_numbers()   # the next round: nothing left to do, and nothing done twice
    assert len(payday.requests_to(f"/invoices/{invoice['id']}", "PUT")) == 1


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
    payday.add_product("KRUS", 10, client_id=PAYDAY_CLIENT[0])
    closed_return(system)
    [invoice] = payday.invoices
    assert invoice["number"] and stock(payday, "KRUS") == 10


def test_references_are_unique_between_two_shops_booking_into_one_payday_company(system, payday):
    from shopify_app import shops
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    other = "skilvis-com.myshopify.com"
    shops.save_tokens(other, shops.Tokens(access_token="shpat_x", expires_in=3600))
    shop_settings.save(shops.get(other)["id"], payday_client_id=PAYDAY_CLIENT[0], payday_client_secret=PAYDAY_CLIENT[1])
    closed_return(system)
    [invoice] = payday.invoices
    assert invoice["reference"] == "skilvis-sandbox: #1001 / #1001-R1"


def test_C7_the_sale_invoice_is_found_by_the_order_number_in_its_description_and_named_on_the_page(
        system, client, payday):
    from shopify_app.accounting.payday import api as payday_api
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
    dated = date.fromisoformat(sale["invoiceDate"][:10])
    assert credit["description"].endswith(
        f"Kreditfærir reikning nr. {sale['number']} dags. {dated.day}.{dated.month}.{dated.year}")
    [case] = rows("SELECT id FROM cases")
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "en"}
    page = client.get(f"/cases/{case['id']}", query_string=query).get_data(as_text=True)
    assert f"Credits Payday invoice no. {sale['number']} of {dated.day} {dated:%b %Y}" in page


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


def test_the_sale_invoice_is_looked_up_once_per_order_so_a_later_document_costs_one_write(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = closed_return(system)
    numbers.fetch_missing_numbers()
    before = len(payday.requests)
    system.shopify.store.apply(order, {"do": "refund", "lines": [], "shipping": "0", "amount": "100"})
    system.shopify.deliver()
    run_worker_until_idle()
    calls = [(r["method"], r["path"]) for r in payday.requests[before:] if r["path"] != "/auth/token"]
    assert calls == [("POST", "/invoices")]   # no customer, no sale invoice, no number: one write
    assert len(payday.invoices) == 2
    # Its number comes with the periodic job's one read of the shop's list.
    before = len(payday.requests)
    assert numbers.fetch_missing_numbers() == 1
    assert [(r["method"], r["path"]) for r in payday.requests[before:]] == [("GET", "/invoices")]


# --- in batches: the sale invoices of a shop's orders, and the numbers --------------------------

def sale(payday, customer_id, description, amount=1990, **fields):
    """A sale invoice as the merchant's own Shopify app (or WP) made it."""
    return payday.add_invoice(client_id=PAYDAY_CLIENT[0], customer={"id": customer_id}, status="PAID",
                              description=description, paidDate=payday.payday_today().isoformat(),
                              paymentType=payday.company(PAYDAY_CLIENT[0]).payment_types[0]["id"],
                              lines=[{"description": "Krús", "quantity": 1, "unitPriceIncludingVat": amount,
                                      "vatPercentage": 24}], **fields)


def closed_returns(system, names):
    store = system.shopify.store
    orders = []
    for name in names:
        order = store.create_order(SHOP, {**ORDER, "name": name})
        store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
        store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
        orders.append(order)
    system.shopify.deliver()
    run_worker_until_idle()    # open and refunded: nothing to invoice yet
    for order in orders:
        store.apply(order, {"do": "return_close", "return": "R1"})
    system.shopify.deliver()
    run_worker_until_idle()
    return orders


def credit_of(payday, name):
    [credit] = [inv for inv in payday.invoices if (inv.get("reference") or "").startswith(f"{name} / ")]
    return credit


def test_C7_in_a_burst_one_read_of_the_shops_invoices_finds_the_sale_invoice_of_every_order(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    anna = payday.add_customer(client_id=PAYDAY_CLIENT[0], name="Anna", email="anna@example.is")["id"]
    other = payday.add_customer(client_id=PAYDAY_CLIENT[0], name="Bjarni", email="bjarni@example.is")["id"]
    s1 = sale(payday, anna, "Vefverslun | Pöntunarnúmer: 1001 | Greiðslumáti: Kort")
    s3 = sale(payday, anna, "Shopify pöntun", reference="#1003")      # named in the reference
    sale(payday, other, "Shopify pöntun #1002")                        # another customer's order #1002
    sale(payday, anna, "Leiðrétting á pöntun #1004", amount=-1990)     # not a sale: a negative total
    sale(payday, anna, "Shopify pöntun #10050 og 1005-B")              # not #1005 as a whole word
    closed_returns(system, ["#1001", "#1002", "#1003", "#1004", "#1005"])
    lists = [r for r in payday.requests if r["method"] == "GET" and r["path"] == "/invoices"]
    assert len(lists) == 1 and lists[0]["query"]["perpage"] == "500"
    assert not [r for r in payday.requests if r["path"].endswith("/invoice")]   # no per-customer lookup
    assert not [r for r in payday.requests if r["method"] == "GET" and r["path"].startswith("/invoices/")]
    found = {name: credit_of(payday, name)["description"] for name in ("#1001", "#1002", "#1003", "#1004", "#1005")}
    given = {inv["id"]: inv["number"] for inv in payday.invoices}
    assert f"Kreditfærir reikning nr. {given[s1['id']]} dags." in found["#1001"]
    assert f"Kreditfærir reikning nr. {given[s3['id']]} dags." in found["#1003"]
    assert all("Kreditfærir" not in found[name] for name in ("#1002", "#1004", "#1005"))
    # By order name: the orders' passes run in whatever order the dispatcher hands them out.
    assert [r["original_number"] != "" for r in rows("""SELECT d.original_number FROM documents d
                                                        JOIN orders o ON o.id = d.order_id ORDER BY o.name""")] == [
        True, False, True, False, False]
    # Kept to match by, nothing personal: hashed words, not the descriptions.
    kept = str(rows("SELECT * FROM payday_window_invoices"))
    assert "1001" not in kept and "Pöntunarnúmer" not in kept and "Kort" not in kept


def test_C7_a_window_longer_than_its_bound_is_looked_up_per_customer_as_before(system, payday, monkeypatch):
    monkeypatch.setattr(originals, "WINDOW_PERPAGE", 1)   # three invoices: three pages, more than two
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    anna = payday.add_customer(client_id=PAYDAY_CLIENT[0], name="Anna", email="anna@example.is")["id"]
    for name in ("#1001", "#1002", "#1003"):
        sale(payday, anna, f"Shopify pöntun {name}")
    closed_returns(system, ["#1001", "#1002"])
    lists = [r for r in payday.requests if r["method"] == "GET" and r["path"] == "/invoices"]
    assert len(lists) == 1                                   # page 1 said three pages: read no further
    assert len([r for r in payday.requests if r["path"].endswith("/invoice")]) == 2   # one per order
    for number, name in ((1, "#1001"), (2, "#1002")):
        assert f"Kreditfærir reikning nr. {number} dags." in credit_of(payday, name)["description"]


def test_C7_with_every_filter_ignored_the_window_keeps_only_its_own_days(system, payday):
    payday.filters = "ignored"
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    anna = payday.add_customer(client_id=PAYDAY_CLIENT[0], name="Anna", email="anna@example.is")["id"]
    long_ago = (payday.payday_today() - timedelta(days=400)).isoformat()
    sale(payday, anna, "Shopify pöntun #1001", invoiceDate=long_ago)   # another #1001, years back
    recent = sale(payday, anna, "Shopify pöntun #1002")
    closed_returns(system, ["#1001", "#1002"])
    assert "Kreditfærir" not in credit_of(payday, "#1001")["description"]
    number = next(inv["number"] for inv in payday.invoices if inv["id"] == recent["id"])
    assert f"Kreditfærir reikning nr. {number} dags." in credit_of(payday, "#1002")["description"]


def test_C7_the_window_is_the_days_around_the_order_when_its_date_is_known():
    today = date(2026, 10, 21)   # a Wednesday
    placed = {"order_date": date(2026, 10, 5), "order_heard_at": None, "document_date": today}
    assert originals.window_days(placed, today) == (date(2026, 9, 28), date(2026, 10, 21))
    old = {"order_date": date(2026, 6, 3), "document_date": today}
    assert originals.window_days(old, today) == (date(2026, 6, 1), date(2026, 6, 28))
    heard = {"order_date": None, "order_heard_at": datetime(2026, 10, 20, 12, tzinfo=timezone.utc),
             "document_date": today}
    start, end = originals.window_days(heard, today)
    assert start.weekday() == 0 and (date(2026, 10, 20) - start).days >= originals.LOOKBACK_DAYS and end == today


def test_numbers_come_from_the_periodic_job_in_one_read_per_shop(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    payday.number_delay = 3600   # Payday numbers them a minute or so later
    closed_returns(system, ["#1001", "#1002", "#1003"])
    assert not [r for r in payday.requests if r["method"] == "GET" and r["path"].startswith("/invoices/")]
    assert rows("SELECT count(*) AS n FROM documents WHERE accounting_number IS NULL") == [{"n": 3}]
    before = len(payday.requests)
    assert numbers.fetch_missing_numbers() == 0             # listed, not numbered yet: they wait
    assert [(r["method"], r["path"]) for r in payday.requests[before:] if r["path"] != "/auth/token"] == [
        ("GET", "/invoices")]
    payday.issue_now()
    before = len(payday.requests)
    assert numbers.fetch_missing_numbers() == 3
    assert [(r["method"], r["path"]) for r in payday.requests[before:]] == [("GET", "/invoices")]
    given = {str(inv["id"]): str(inv["number"]) for inv in payday.invoices}
    assert all(given[r["accounting_id"]] == r["accounting_number"]
               for r in rows("SELECT accounting_id, accounting_number FROM documents"))
    before = len(payday.requests)
    assert numbers.fetch_missing_numbers() == 0 and len(payday.requests) == before   # nothing left to ask


def test_an_invoice_the_list_does_not_show_is_read_alone(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    closed_return(system)
    with db.transaction() as conn:   # the list of its days misses it (as if Payday had dated it otherwise)
        conn.execute("""UPDATE documents SET request_body = jsonb_set(request_body, '{invoiceDate}', '"2020-01-01"')""")
    before = len(payday.requests)
    assert numbers.fetch_missing_numbers() == 1
    assert [r["path"].count("/") for r in payday.requests[before:] if r["method"] == "GET"] == [1, 2]
    assert rows("SELECT accounting_number FROM documents") == [{"accounting_number": str(payday.invoices[0]["number"])}]


# --- "Payday keeps stock for these products" (docs/PAYDAY_MODEL.md F1-F5) ----------------------

def keeping_stock(system, payday, **products):
    shop_id = install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    shop_settings.save(shop_id, payday_keeps_stock=True)
    for sku, quantity in products.items():
        payday.add_product(sku, quantity, client_id=PAYDAY_CLIENT[0])
    return system.shopify.store


def test_with_payday_keeping_stock_a_closed_return_puts_the_goods_back_once(system, payday):
    keeping_stock(system, payday, KRUS=10)
    closed_return(system)
    [invoice] = payday.invoices
    assert all("sku" not in line or not line["sku"] for line in invoice["lines"])   # F2: never a credited sku
    assert stock(payday, "KRUS") == 13
    [movement, opening] = payday.movements("KRUS", PAYDAY_CLIENT[0])
    assert movement["description"] == "Vöruskil: #1001 / #1001-R1 (lína 1)" and movement["changeInQuantity"] == 3
    events.sweep()
    run_worker_until_idle()
    assert stock(payday, "KRUS") == 13
    assert rows("SELECT status FROM stock_moves") == [{"status": "done"}]


def test_with_payday_keeping_stock_an_exchange_takes_the_new_goods_out_and_puts_the_old_back(system, payday):
    store = keeping_stock(system, payday, **{"SKYRTA-L": 5, "SKYRTA-M": 5})
    order = store.create_order(SHOP, {**ORDER, "lines": [
        {"sku": "SKYRTA-L", "title": "Skyrta L", "price": "6000", "quantity": 2, "tax_rate": "24"}]})
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "SKYRTA-L", "quantity": 2}],
                        "exchange_lines": [{"sku": "SKYRTA-M", "title": "Skyrta M", "price": "5000", "quantity": 2,
                                            "tax_rate": "24"}]})
    store.apply(order, {"do": "return_close", "return": "R1"})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [], "amount": "2000"})
    system.shopify.deliver()
    run_worker_until_idle()
    [invoice] = payday.invoices
    assert invoice["number"]
    assert stock(payday, "SKYRTA-L") == 7 and stock(payday, "SKYRTA-M") == 3


def test_with_payday_keeping_stock_a_correction_moves_no_goods(system, payday):
    store = keeping_stock(system, payday, KRUS=10)
    order = store.create_order(SHOP, ORDER)
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 1}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 1}], "status": "pending"})
    store.apply(order, {"do": "return_close", "return": "R1"})
    system.shopify.deliver()
    run_worker_until_idle()
    assert stock(payday, "KRUS") == 11
    store.apply(order, {"do": "settle", "outcome": "failure"})
    reconcile.reconcile_shop(shops.get(SHOP)["id"])   # no webhook says a payment failed
    run_worker_until_idle()
    assert sorted(r["trigger"] for r in rows("SELECT trigger FROM documents")) == ["correction", "return_close"]
    assert stock(payday, "KRUS") == 11   # the goods came back; only the money did not move


def test_a_stock_movement_whose_answer_was_lost_is_found_by_its_description_not_made_twice(system, payday):
    keeping_stock(system, payday, KRUS=10)
    payday.lost_answer_paths = ("POST /products/",)
    payday.configure({"lost_answers": 1.0})
    closed_return(system)
    payday.lost_answers = 0.0
    assert payday.faults["lost_answers"] == 1 and stock(payday, "KRUS") == 13
    assert rows("SELECT status FROM stock_moves") == [{"status": "sending"}]
    with db.transaction() as conn:   # time passes to the next attempt
        conn.execute("UPDATE stock_moves SET next_attempt_at = now()")
    events.sweep()
    run_worker_until_idle()
    assert stock(payday, "KRUS") == 13
    assert rows("SELECT status FROM stock_moves") == [{"status": "done"}]


def test_without_stock_kept_for_a_product_its_stock_is_left_alone_and_the_page_says_so(system, payday):
    keeping_stock(system, payday)
    payday.add_product("KRUS", client_id=PAYDAY_CLIENT[0])   # a product without stock (quantity null)
    closed_return(system)
    assert stock(payday, "KRUS") is None
    assert rows("SELECT status FROM stock_moves") == [{"status": "skipped"}]
    assert rows("SELECT kind FROM timeline WHERE kind LIKE 'stock%%'") == [{"kind": "stock_skipped"}]
