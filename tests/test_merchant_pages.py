"""The merchant's pages and their fetches: the list (filter, search, keyset pages, live rows),
a case's detail, retry, credit by hand, settings, both languages, and shops kept apart."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from shopify_app import db, home, orders, shop_settings, shops
from shopify_app.sandbox.player import SHOP as SANDBOX_SHOP, install_shop, run_worker_until_idle
from tests.helpers import OTHER_SHOP, SHOP
from tests.plugins.payday_standin import PAYDAY_CLIENT_ID, PAYDAY_CLIENT_SECRET
from tests.test_session_tokens import id_token

T0 = datetime(2026, 11, 23, 14, 5, tzinfo=timezone.utc)

REASONS = {
    "open": {"code": "waiting_for_close", "params": {}},
    "pending_settlement": {"code": "customer_owes", "params": {"amount": "5000", "currency": "ISK"}},
    "processing": None,
    "created": None,
    "none_needed": {"code": "return_declined", "params": {}},
    "failed": {"code": "payday_validation", "params": {"error": "Viðskiptavinur er ekki til"}},
}
DOC_STATUS = {"processing": "claimed", "created": "sent", "failed": "failed"}


# --- seeding by SQL (the list and detail do not care how the rows came to be) ---------------

def install(domain: str) -> dict:
    return shops.save_tokens(domain, shops.Tokens(access_token="shpat_x", scope="read_orders"))


def add_order(shop_id: int, n: int, *, name=None, customer="Anna Jónsdóttir", email="anna@example.is") -> dict:
    with db.transaction() as conn:
        return conn.execute(
            """INSERT INTO orders (shop_id, order_gid, legacy_id, name, customer_name, customer_email, currency,
                                   work_started_at, work_done_at)
               VALUES (%s, %s, %s, %s, %s, %s, 'ISK', now(), now()) RETURNING *""",
            (shop_id, f"gid://shopify/Order/{n}", n, name or f"#{n}", customer, email)).fetchone()


def add_case(shop_id: int, order: dict, status: str, *, n: int, kind="return", amount="-5000", at=T0) -> dict:
    with db.transaction() as conn:
        case = conn.execute(
            """INSERT INTO cases (shop_id, order_id, case_gid, kind, label, status, reason, amount, currency, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'ISK', %s) RETURNING *""",
            (shop_id, order["id"], f"gid://shopify/Return/{n}", kind, f"{order['name']}-R{n}", status,
             Jsonb(REASONS.get(status)) if REASONS.get(status) else None, Decimal(amount), at)).fetchone()
        if status in DOC_STATUS:
            conn.execute(
                """INSERT INTO documents (shop_id, order_id, case_id, doc_key, trigger, lines, total, currency, gateway,
                                          reference, status, last_error, last_error_kind, accounting_id,
                                          accounting_number, request_body, sent_at)
                   VALUES (%s, %s, %s, %s, 'return_close', %s, %s, 'ISK', 'shopify_payments', %s, %s, %s, %s, %s, %s, %s, %s)""",
                (shop_id, order["id"], case["id"], f"return-{n}",
                 Jsonb([{"kind": "item", "description": "Krús", "sku": "KRUS", "quantity": -1, "amount": amount,
                         "vat_rate": "24"}]),
                 Decimal(amount), f"{order['name']} / R{n}", DOC_STATUS[status],
                 "Viðskiptavinur er ekki til" if status == "failed" else None,
                 "validation" if status == "failed" else None,
                 f"inv-{n}" if status == "created" else None, f"{1000 + n}" if status == "created" else None,
                 Jsonb({"lines": [{"description": "Krús", "quantity": 1, "unitPriceIncludingVat": float(amount),
                                   "vatPercentage": 24}]}) if status == "created" else None,
                 at if status == "created" else None))
        conn.execute("INSERT INTO timeline (shop_id, order_id, case_id, kind, detail, at) VALUES (%s, %s, %s, 'status', %s, %s)",
                     (shop_id, order["id"], case["id"], Jsonb({"from": None, "to": status, "reason": REASONS.get(status)}), at))
    return case


@pytest.fixture
def two_shops(servers):
    """Shop A with a case in every status, shop B with one of its own."""
    a, b = install(SHOP), install(OTHER_SHOP)
    cases = {}
    for n, status in enumerate(home.STATUSES, start=1):
        order = add_order(a["id"], 1000 + n, customer=f"Kúnni {n}", email=f"k{n}@example.is")
        cases[status] = add_case(a["id"], order, status, n=n, at=T0 + timedelta(minutes=n))
    other_order = add_order(b["id"], 5001, name="#5001", customer="Bjarni", email="bjarni@example.com")
    other = add_case(b["id"], other_order, "failed", n=99)
    return {"a": a, "b": b, "cases": cases, "other": other, "other_order": other_order}


def page(client, path, shop=SHOP, locale=None, **params):
    query = {"embedded": "1", "shop": shop, "id_token": id_token(shop), **params}
    if locale:
        query["locale"] = locale
    resp = client.get(path, query_string=query)
    return resp


def fetch(client, method, path, shop=SHOP, json=None):
    return client.open(path, method=method, json=json, headers={"Authorization": f"Bearer {id_token(shop)}"})


def row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<s-table-row data-case-id="(\d+)"', html)]


# --- the list --------------------------------------------------------------------------------

@pytest.mark.parametrize("locale,expect", [
    ("is-IS", ["Skil og skipti", "Bíður uppgjörs", "Bíður þess að viðskiptavinurinn greiði 5.000 kr.",
               "-5.000 kr.", "Payday nr. 1004", "Reyna aftur", "Skilunum var hafnað", "23. nóv. 2026 kl. 14:1",
               "Payday hafnaði reikningnum: Viðskiptavinur er ekki til"]),
    ("en-US", ["Returns & exchanges", "Awaiting settlement", "Waiting for the customer to pay ISK 5,000",
               "-ISK 5,000", "Payday no. 1004", "Retry", "The return was declined", "23 Nov 2026, 14:1",
               "Payday refused the invoice: Viðskiptavinur er ekki til"]),
])
def test_home_lists_every_status_in_both_languages(client, two_shops, locale, expect):
    resp = page(client, "/", locale=locale)
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    statuses = re.findall(r'<s-table-row data-case-id="\d+" data-status="([a-z_]+)"', html)
    assert statuses == list(reversed(home.STATUSES))   # newest change first
    assert two_shops["other"]["id"] not in row_ids(html)
    for text in expect:
        assert text in html, text
    assert html.count('data-action="retry"') == 1
    assert html.count('data-testid="status"') == 6 and html.count('data-testid="case-link"') == 6
    assert 'href="https://app.payday.is/invoices/inv-4"' in html
    assert f'lang="{locale[:2]}"' in html


def test_filter_by_status_and_search_by_order_or_customer(client, two_shops):
    cases = two_shops["cases"]
    html = page(client, "/", status="failed").get_data(as_text=True)
    assert row_ids(html) == [cases["failed"]["id"]]
    assert '<s-option value="failed" selected>' in html
    assert row_ids(page(client, "/", q="1002").get_data(as_text=True)) == [cases["pending_settlement"]["id"]]
    assert row_ids(page(client, "/", q="#1003").get_data(as_text=True)) == [cases["processing"]["id"]]
    assert row_ids(page(client, "/", q="kúnni 5").get_data(as_text=True)) == [cases["none_needed"]["id"]]
    assert row_ids(page(client, "/", q="k6@example").get_data(as_text=True)) == [cases["failed"]["id"]]
    assert row_ids(page(client, "/", q="bjarni").get_data(as_text=True)) == []      # shop B's customer
    assert row_ids(page(client, "/", q="%' OR 1=1 --").get_data(as_text=True)) == []
    both = page(client, "/", q="kúnni", status="open").get_data(as_text=True)
    assert row_ids(both) == [cases["open"]["id"]]



def test_search_ignores_accents_and_case_and_stays_in_the_shop(client, servers):
    a, b = install(SHOP), install(OTHER_SHOP)
    mine = {}
    for n, (customer, email) in enumerate([("Guðrún Jónsdóttir", "gudrun@example.is"),
                                           ("Anna Sigurðardóttir", "anna@example.is"),
                                           ("ÞÓRA ÆGISDÓTTIR", "thora@example.is"),
                                           ("Jón Ólafsson", "jon@example.is")], start=1):
        order = add_order(a["id"], 2000 + n, customer=customer, email=email)
        mine[n] = add_case(a["id"], order, "open", n=n, at=T0 + timedelta(minutes=n))["id"]
    theirs = add_case(b["id"], add_order(b["id"], 3001, customer="Guðrún Jónsdóttir", email="anna@example.com"),
                      "open", n=9)["id"]

    def found(q, shop=SHOP):
        return row_ids(page(client, "/", shop=shop, q=q).get_data(as_text=True))

    assert found("Jonsdottir") == found("jónsdóttir") == found("JONSDÓTTIR") == [mine[1]]
    assert found("gudrun jons") == [mine[1]]             # ð reads d, as unaccent has it
    assert found("anna") == found("Anna") == found("ÁNNA") == [mine[2]]
    assert found("sigurdardottir") == [mine[2]]
    assert found("thora aegis") == [mine[3]]             # Þ reads th, Æ ae
    assert found("olafsson") == [mine[4]]
    assert found("jon") == [mine[4], mine[1]]            # Jón, jon@example.is and Jónsdóttir, newest first
    assert found("#2003") == [mine[3]]
    assert found("dottir") == []                         # words begin where they begin
    # Shop B's Guðrún Jónsdóttir and anna@example.com: never in shop A's list, and the other way round.
    assert found("Jonsdottir", shop=OTHER_SHOP) == found("anna", shop=OTHER_SHOP) == [theirs]
    assert found("olafsson", shop=OTHER_SHOP) == []
    rows = fetch(client, "GET", "/api/cases?q=Jonsdottir").json["rows"]
    assert [r["id"] for r in rows] == [mine[1]]


@pytest.mark.parametrize("probe,matches", [(1000, 5000), (10, 5000), (10, 3)],
                         ids=["the probe walks the whole list", "the matching orders' cases", "a walk past the probe"])
def test_a_search_pages_alike_whichever_way_it_reads(servers, monkeypatch, probe, matches):
    """A broad search walks the list newest first, a narrow one reads its few orders' cases, and
    one with many matches but none recent walks on: each gives every match once, in list order,
    and only the shop's own."""
    monkeypatch.setattr(home, "WALK_PROBE", probe)
    monkeypatch.setattr(home, "MATCH_LIMIT", matches)
    a, b = install(SHOP), install(OTHER_SHOP)
    names = ["Helga Jónsdóttir", "Jón Helgason", "Anna Sigurðardóttir"]
    customers = {}
    for n in range(90):
        # The 30 newest cases match none of the searches below but "sigridur".
        customer = names[n % 3] if n < 60 else "Sigríður Ólafsdóttir"
        order = add_order(a["id"], 4000 + n, customer=customer, email=f"c{n}@example.is")
        at = T0 + timedelta(minutes=n // 2)                  # ties on updated_at: the id breaks them
        customers[add_case(a["id"], order, home.STATUSES[n % 4], n=n, at=at)["id"]] = (customer, home.STATUSES[n % 4])
    for n in range(10):
        add_case(b["id"], add_order(b["id"], 6000 + n, customer=names[n % 3]), "open", n=100 + n, at=T0)
    with db.transaction() as conn:
        listing = [r["id"] for r in conn.execute("SELECT id FROM cases WHERE shop_id = %s ORDER BY updated_at DESC, id DESC",
                                                 (a["id"],))]
    matches_of = {"helga": {"Helga Jónsdóttir", "Jón Helgason"}, "JONS": {"Helga Jónsdóttir"},
                  "jon": {"Helga Jónsdóttir", "Jón Helgason"}, "sigridur": {"Sigríður Ólafsdóttir"},
                  "anna sig": {"Anna Sigurðardóttir"}, "zzz": set()}
    for q, who in matches_of.items():
        for status in (None, "open"):
            expected = [i for i in listing if customers[i][0] in who and status in (None, customers[i][1])]
            seen, cursor = [], None
            while True:
                rows, cursor = home.list_cases(a["id"], q=q, status=status, cursor=cursor, limit=7)
                assert len(rows) <= 7
                seen += [r["id"] for r in rows]
                if not cursor:
                    break
            assert seen == expected, (q, status)

def test_keyset_pages_never_overlap_and_keep_a_stable_order(client, servers):
    shop = install(SHOP)
    order = add_order(shop["id"], 1)
    ids = []
    for n in range(130):
        # Ties on updated_at on purpose: the id breaks them.
        ids.append(add_case(shop["id"], order, "open", n=n, at=T0 + timedelta(minutes=n // 3))["id"])
    expected = [c for _, c in sorted(((T0 + timedelta(minutes=n // 3), ids[n]) for n in range(130)), reverse=True)]
    seen, cursor, pages = [], None, 0
    while True:
        rows, cursor = home.list_cases(shop["id"], cursor=cursor, limit=40)
        seen += [r["id"] for r in rows]
        pages += 1
        if not cursor:
            break
    assert pages == 4 and seen == expected and len(set(seen)) == 130
    # Through the page: the "Older" link carries the cursor; a change meanwhile moves a row to
    # the top without making the next page repeat or skip anything else.
    first = page(client, "/").get_data(as_text=True)
    assert row_ids(first) == expected[:50]
    after = re.search(r'data-testid="next-page"', first) and re.search(r'after=([A-Za-z0-9_-]+)', first).group(1)
    with db.transaction() as conn:
        # A fixed moment after every row, not now(): the wall clock may fall among them.
        conn.execute("UPDATE cases SET updated_at = %s WHERE id = %s", (T0 + timedelta(days=1), expected[0]))
    second = page(client, "/", after=after).get_data(as_text=True)
    assert row_ids(second) == expected[50:100]
    assert page(client, "/", after="not-a-cursor").status_code == 400


def test_rows_endpoint_serves_the_page_and_the_refresh(client, two_shops):
    data = fetch(client, "GET", "/api/cases?status=processing").json
    assert [r["id"] for r in data["rows"]] == [two_shops["cases"]["processing"]["id"]]
    assert data["rows"][0]["html"].startswith("<s-table-row data-case-id=")
    assert fetch(client, "GET", "/api/cases?ids=x").status_code == 400


# --- the detail ------------------------------------------------------------------------------

def test_detail_shows_the_timeline_documents_and_links(client, two_shops):
    case = two_shops["cases"]["created"]
    with db.transaction() as conn:
        conn.execute("""INSERT INTO webhook_events (shop_domain, event_key, topic, payload, status)
                        VALUES (%s, 'e1', 'returns/close', %s, 'processed')""",
                     (SHOP, Jsonb({"order_id": 1004, "admin_graphql_api_id": "gid://shopify/Return/4"})))
        conn.execute("""INSERT INTO timeline (shop_id, order_id, case_id, kind, detail)
                        VALUES (%s, %s, %s, 'payday_call', %s)""",
                     (case["shop_id"], case["order_id"], case["id"], Jsonb({"doc_key": "return-4", "attempt": 1})))
    html = page(client, f"/cases/{case['id']}", locale="is").get_data(as_text=True)
    timeline = re.search(r'data-testid="timeline">(.*?)</s-ordered-list>', html, re.S).group(1)
    # The order's story: no webhook topics, no call-by-call log, never our internal key.
    assert timeline.count("<s-list-item") == 1 and "Staða: – → Fært í Payday" in timeline
    assert "Shopify tilkynnti" not in timeline and "returns/close" not in timeline and "return-4" not in timeline
    assert html.count('data-testid="document"') == 1 and "Payday nr. 1004" in html
    assert 'href="shopify://admin/orders/1004"' in html
    assert 'href="https://app.payday.is/invoices/inv-4"' in html
    assert "-5.000 kr." in html and 'data-testid="document-line"' in html
    html = page(client, f"/cases/{case['id']}", locale="en").get_data(as_text=True)
    assert "Credit invoices of order #1004" in html


# --- one shop never reaches another's rows ------------------------------------------------

def test_a_shop_can_never_read_or_change_another_shops_rows(client, two_shops):
    theirs, their_order = two_shops["other"], two_shops["other_order"]
    with db.transaction() as conn:
        their_doc = conn.execute("SELECT id FROM documents WHERE case_id = %s", (theirs["id"],)).fetchone()["id"]
    shop_settings.save(two_shops["b"]["id"], payday_client_id="theirs", payday_client_secret="their-secret")
    assert theirs["id"] not in row_ids(page(client, "/").get_data(as_text=True))
    assert page(client, f"/cases/{theirs['id']}").status_code == 404
    assert page(client, f"/orders/{their_order['id']}/credit").status_code == 404
    assert fetch(client, "GET", f"/api/cases?ids={theirs['id']}").json["rows"] == []
    assert fetch(client, "POST", f"/api/cases/{theirs['id']}/retry", json={}).status_code == 404
    assert fetch(client, "POST", f"/api/documents/{their_doc}/retry", json={}).status_code == 404
    body = {"token": "t" * 24, "quantities": {"1": 1}, "shipping": False}
    assert fetch(client, "POST", f"/api/orders/{their_order['id']}/credit/preview", json=body).status_code == 404
    assert fetch(client, "POST", f"/api/orders/{their_order['id']}/credit", json=body).status_code == 404
    settings_html = page(client, "/settings").get_data(as_text=True)
    assert "theirs" not in settings_html
    assert fetch(client, "POST", "/api/settings", json={"client_id": "mine"}).json["ok"]
    assert shop_settings.load(two_shops["b"]["id"]).payday_client_id == "theirs"
    with db.transaction() as conn:
        assert conn.execute("SELECT status FROM documents WHERE id = %s", (their_doc,)).fetchone()["status"] == "failed"
        assert conn.execute("SELECT count(*) AS n FROM documents WHERE shop_id = %s",
                            (two_shops["b"]["id"],)).fetchone()["n"] == 1
    # ...and the other way round, shop B sees only its own row.
    assert row_ids(page(client, "/", shop=OTHER_SHOP).get_data(as_text=True)) == [theirs["id"]]


def test_pages_and_fetches_need_a_valid_token(client, two_shops):
    case = two_shops["cases"]["failed"]["id"]
    assert client.get(f"/cases/{case}?shop={SHOP}").status_code == 302        # bounce for a token
    resp = client.post(f"/api/cases/{case}/retry", headers={"Authorization": "Bearer nope"}, json={})
    assert resp.status_code == 401


# --- through the pipeline: retry, credit by hand, settings -----------------------------------

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"},
                   {"sku": "DISKUR", "title": "Diskur", "price": "2500", "quantity": 2, "tax_rate": "24"}],
         "shipping": {"title": "Pósturinn", "price": "1000", "tax_rate": "24"},
         "payment": {"gateway": "shopify_payments", "status": "success"}}


@pytest.fixture
def sandbox_order(system):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = system.shopify.store.create_order(SANDBOX_SHOP, {**ORDER, "currency": "ISK", "taxes_included": True})
    # Placing an order sends no webhook we subscribe to: make it known as reconciliation would.
    orders.request_work(shops.get(SANDBOX_SHOP)["id"], order.id)
    run_worker_until_idle()
    return order


def sandbox_token(system):
    return system.shopify.id_token(SANDBOX_SHOP)


def test_retry_turns_a_failed_case_into_created(client, system, sandbox_order, payday):
    store = system.shopify.store
    # Refused as paid, and again unpaid (a paid credit may be refused alone: docs/PAYDAY_MODEL.md).
    payday.fail_next(2, status=400, body={"message": "Viðskiptavinur er ekki til"}, paths=("POST /invoices",))
    store.apply(sandbox_order, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    system.shopify.deliver()
    run_worker_until_idle()
    [case] = db_rows("SELECT id, status FROM cases")
    assert case["status"] == "failed"
    headers = {"Authorization": f"Bearer {sandbox_token(system)}"}
    resp = client.post(f"/api/cases/{case['id']}/retry", headers=headers, json={})
    assert resp.status_code == 200 and resp.json["row"]["status"] == "processing"
    assert 'data-status="processing"' in resp.json["row"]["html"]
    run_worker_until_idle()
    [case] = db_rows("SELECT id, status FROM cases")
    assert case["status"] == "created" and len(payday.invoices) == 1
    rows = client.get(f"/api/cases?ids={case['id']}", headers=headers).json["rows"]
    assert rows[0]["status"] == "created" and "Payday" in rows[0]["html"]
    assert client.post(f"/api/cases/{case['id']}/retry", headers=headers, json={}).status_code == 409
    kinds = [r["kind"] for r in db_rows("SELECT kind FROM timeline ORDER BY id")]
    assert "retry" in kinds and kinds[-1] == "status"


def db_rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def test_credit_by_hand_previews_and_creates_exactly_one_document(client, system, sandbox_order, payday):
    [order] = db_rows("SELECT id FROM orders")
    query = {"embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system), "locale": "is"}
    html = client.get(f"/orders/{order['id']}/credit", query_string=query).get_data(as_text=True)
    token = re.search(r'data-token="([^"]+)"', html).group(1)
    qty = dict((name, int(mx)) for name, mx in re.findall(r'name="qty-(\d+)" type="number" min="0" max="(\d+)"', html))
    assert sorted(qty.values()) == [2, 3] and 'name="shipping"' in html and 'id="credit-form"' in html
    krus = next(k for k, v in qty.items() if v == 3)
    headers = {"Authorization": f"Bearer {sandbox_token(system)}"}
    body = {"token": token, "quantities": {krus: 2}, "shipping": True}
    preview = client.post(f"/api/orders/{order['id']}/credit/preview", headers=headers, json=body).json
    assert preview["ok"] and preview["total"] == "-4980"
    assert preview["html"].count('data-testid="preview-line"') == 2 and "-4.980 kr." in preview["html"]
    too_many = client.post(f"/api/orders/{order['id']}/credit/preview", headers=headers,
                           json={**body, "quantities": {krus: 4}})
    assert too_many.status_code == 400 and "Mest er hægt" in too_many.json["message"]
    body["confirm"] = preview["confirm"]   # the merchant confirms the preview (tests/test_hand_credit.py)
    first = client.post(f"/api/orders/{order['id']}/credit", headers=headers, json=body).json
    second = client.post(f"/api/orders/{order['id']}/credit", headers=headers, json=body).json
    assert first["ok"] and first["new"] and second["ok"] and not second["new"]
    assert first["case_id"] == second["case_id"] and first["document_id"] == second["document_id"]
    run_worker_until_idle()
    [doc] = db_rows("SELECT * FROM documents")
    assert doc["trigger"] == "manual" and doc["doc_key"] == f"manual-{token}" and doc["status"] == "sent"
    assert doc["total"] == Decimal("-4980")
    [invoice] = payday.invoices
    assert sorted(line["unitPriceIncludingVat"] for line in invoice["lines"]) == [-1990, -1000]
    [case] = db_rows("SELECT * FROM cases")
    assert (case["kind"], case["status"], case["label"]) == ("manual", "created", "#1001-H1")
    listing = client.get("/", query_string=query).get_data(as_text=True)
    assert 'data-status="created"' in listing and "Handvirkt" in listing
    again = client.post(f"/api/orders/{order['id']}/credit", headers=headers, json=body).json
    assert not again["new"] and len(payday.invoices) == 1


def test_C6_a_second_hand_credit_offers_only_what_the_first_left(client, system, sandbox_order, payday):
    [order] = db_rows("SELECT id FROM orders")
    query = {"embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system), "locale": "is"}
    headers = {"Authorization": f"Bearer {sandbox_token(system)}"}

    def form():
        html = client.get(f"/orders/{order['id']}/credit", query_string=query).get_data(as_text=True)
        most = dict(re.findall(r'name="qty-(\d+)" type="number" min="0" max="(\d+)"', html))
        return re.search(r'data-token="([^"]+)"', html).group(1), most, '<s-checkbox id="shipping"' in html

    def confirmed(body):   # as the merchant sends it: with the digest of its preview
        preview = client.post(f"/api/orders/{order['id']}/credit/preview", headers=headers, json=body).json
        return {**body, "confirm": preview["confirm"]}

    token, most, shipping = form()
    krus = next(k for k, v in most.items() if v == "3")
    assert shipping
    assert client.post(f"/api/orders/{order['id']}/credit", headers=headers,
                       json=confirmed({"token": token, "quantities": {krus: 2}, "shipping": True})).json["new"]
    token, most, shipping = form()
    assert most[krus] == "1" and not shipping and "Þegar kreditfært" in client.get(
        f"/orders/{order['id']}/credit", query_string=query).get_data(as_text=True)
    # A form opened before the first credit was made still cannot take more than is left.
    refused = client.post(f"/api/orders/{order['id']}/credit", headers=headers,
                          json={"token": token, "quantities": {krus: 2}})
    assert refused.status_code == 400 and refused.json["error"] == "bad_quantity"
    refused = client.post(f"/api/orders/{order['id']}/credit", headers=headers,
                          json={"token": token, "quantities": {krus: 1}, "shipping": True})
    assert refused.json["message"] == "Sendingarkostnaðurinn hefur þegar verið kreditfærður."
    assert client.post(f"/api/orders/{order['id']}/credit", headers=headers,
                       json=confirmed({"token": token, "quantities": {krus: 1}})).json["new"]
    run_worker_until_idle()
    assert sorted(sum(line["quantity"] for line in inv["lines"] if line["description"].endswith("Krús"))
                  for inv in payday.invoices) == [1, 2]


def test_credit_by_hand_for_an_order_skilvis_has_not_seen_yet(client, system):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    for name in ("#1042", "#10420"):
        system.shopify.store.create_order(SANDBOX_SHOP, {**ORDER, "name": name, "currency": "ISK", "taxes_included": True})
    assert db_rows("SELECT id FROM orders") == []   # placing an order sends no webhook Skilvís takes
    headers = {"Authorization": f"Bearer {sandbox_token(system)}", "X-Skilvis-Locale": "en"}
    client.get("/", query_string={"embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system),
                                  "locale": "en"})
    for bad in ("", "1042' OR name:'*", "x" * 60):
        refused = client.post("/api/orders/find", headers=headers, json={"name": bad})
        assert refused.status_code == 400 and "such as #1001" in refused.json["message"]
    missing = client.post("/api/orders/find", headers=headers, json={"name": "#9999"})
    assert missing.status_code == 404 and missing.json["message"] == "Shopify has no order named #9999."
    found = client.post("/api/orders/find", headers=headers, json={"name": " 1042 "}).json
    [order] = db_rows("SELECT id, legacy_id FROM orders")
    assert found["ok"] and f"/orders/{order['id']}/credit?" in found["url"]
    page = client.get(f"/orders/{order['id']}/credit", query_string={
        "embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system)}).get_data(as_text=True)
    assert "#1042" in page and 'id="credit-form"' in page


def test_settings_lists_the_gateways_of_the_shops_orders_before_any_credit_invoice(client, system):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    system.shopify.store.create_order(SANDBOX_SHOP, {**ORDER, "currency": "ISK", "taxes_included": True,
                                                     "payment": {"gateway": "Peningar í kassa", "status": "success"}})
    query = {"embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system), "locale": "en"}
    html = client.get("/settings", query_string=query).get_data(as_text=True)
    assert 'data-gateway="Peningar í kassa"' in html and 'data-gateway="shopify_payments"' in html
    assert ("payment_types", "false") in re.findall(r'<s-list-item data-key="(\w+)" data-done="(\w+)"', html)
    assert db_rows("SELECT gateway FROM documents") == []


def test_settings_test_connection_fails_then_passes_and_saves(client, system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    shop_id = shops.get(SANDBOX_SHOP)["id"]
    with db.transaction() as conn:   # a fresh shop: nothing connected yet
        conn.execute("DELETE FROM shop_settings")
    headers = {"Authorization": f"Bearer {sandbox_token(system)}", "X-Skilvis-Locale": "en"}
    query = {"embedded": "1", "shop": SANDBOX_SHOP, "id_token": sandbox_token(system), "locale": "en"}
    html = client.get("/settings", query_string=query).get_data(as_text=True)
    assert re.findall(r'<s-list-item data-key="(\w+)" data-done="(\w+)"', html) == [
        ("connect", "false"), ("payment_types", "false"), ("payday_app", "false"), ("auto_process", "false")]
    assert 'id="payday-client-id"' in html and re.search(r'<s-switch id="auto-process"[^>]*\sdisabled', html)
    bad = client.post("/api/settings/test-connection", headers=headers,
                      json={"client_id": PAYDAY_CLIENT_ID, "client_secret": "wrong", "environment": "test"}).json
    assert bad["ok"] is False and bad["message"].startswith("Payday did not accept")
    good = client.post("/api/settings/test-connection", headers=headers,
                       json={"client_id": PAYDAY_CLIENT_ID, "client_secret": PAYDAY_CLIENT_SECRET,
                             "environment": "test"}).json
    assert good["ok"] is True and len(good["payment_types"]) == 2
    refused = client.post("/api/settings", headers=headers, json={"auto_process": True})
    assert refused.status_code == 400 and "once Payday is connected" in refused.json["message"]
    type_id = good["payment_types"][0]["id"]
    saved = client.post("/api/settings", headers=headers, json={
        "client_id": PAYDAY_CLIENT_ID, "client_secret": PAYDAY_CLIENT_SECRET, "environment": "test",
        "payment_types": {"shopify_payments": type_id, "Gjafabréf POS ": type_id},
        "send_email": True, "kennitala_from_company": False, "auto_process": True,
        "payday_app": "not_installed", "payday_keeps_stock": True}).json
    assert saved["ok"] and all(c["done"] for c in saved["checklist"])
    settings = shop_settings.load(shop_id)
    assert (settings.payday_client_secret, settings.send_email, settings.kennitala_from_company,
            settings.auto_process, settings.payday_keeps_stock) == (PAYDAY_CLIENT_SECRET, True, False, True, True)
    assert settings.payment_types == {"shopify_payments": type_id, "Gjafabréf POS ": type_id}   # exactly as typed
    html = client.get("/settings", query_string=query).get_data(as_text=True)
    assert 'data-testid="checklist"' not in html and "Gjafabréf POS " in html
    assert re.search(r'<s-switch id="payday-keeps-stock"[^>]*\schecked', html)
    assert f'<s-option value="{type_id}" selected>' in html
    # A blank secret on save keeps the saved one; a test with a blank secret uses it.
    assert client.post("/api/settings", headers=headers, json={"client_id": PAYDAY_CLIENT_ID, "client_secret": ""}).json["ok"]
    assert shop_settings.load(shop_id).payday_client_secret == PAYDAY_CLIENT_SECRET
    assert client.post("/api/settings/test-connection", headers=headers, json={"environment": "test"}).json["ok"]


# --- the first address, the icon ----------------------------------------------------------------

def test_the_sandboxs_first_address_leads_to_the_sandbox_panel(settings):
    import dataclasses

    from shopify_app import create_app

    sandbox = create_app(dataclasses.replace(settings, sandbox=True)).test_client()
    resp = sandbox.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/sandbox")
    # Outside the sandbox the bare address still says where Skilvís is opened from.
    assert b"Shopify admin" in create_app(settings).test_client().get("/").data


def test_the_app_has_a_favicon(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.data[:4] == b"\x00\x00\x01\x00"   # an ICO file
