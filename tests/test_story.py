"""The order's story on a case's page (issue 11, points 3 and 4): what happened in Shopify and what
Skilvís made of it in Payday, in the merchant's words; a charge named an invoice; a reopened
return still showing its invoice. Orders are played through the real pipeline (the stand-ins)."""
from __future__ import annotations

import re

import pytest
from flask import render_template_string

from shopify_app import db, home, story
from shopify_app.accounting.payday import numbers
from shopify_app.sandbox.player import SHOP, Player, run_worker_until_idle

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def play(system, steps, order=ORDER) -> dict:
    Player(system).play({"order": order, "steps": steps})
    numbers.fetch_missing_numbers()   # the minute's job: Payday's numbers, as the merchant soon sees them
    with db.transaction() as conn:
        return conn.execute("SELECT * FROM cases ORDER BY id").fetchone()


def page(client, system, path, locale="en") -> str:
    resp = client.get(path, query_string={"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP),
                                          "locale": locale})
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def story_lines(app, case: dict, locale="en") -> list[str]:
    with db.transaction() as conn:
        order = conn.execute("SELECT * FROM orders WHERE id = %s", (case["order_id"],)).fetchone()
    with app.test_request_context(query_string={"locale": locale}):
        return [entry["text"] for entry in home.order_timeline(case["shop_id"], order)]


def test_the_story_of_a_return_tells_what_happened_without_webhook_topics_or_unchanged_statuses(app, system, client):
    case = play(system, [
        {"do": "return_request", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2}]},
        {"do": "return_open", "return": "R1"},
        {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2}]},
        {"do": "return_close", "return": "R1"},
    ])
    with db.transaction() as conn:
        number = conn.execute("SELECT accounting_number FROM documents").fetchone()["accounting_number"]
        assert conn.execute("SELECT count(*) AS n FROM webhook_events").fetchone()["n"] >= 4   # the triggers came
    lines = story_lines(app, case)
    assert lines == [
        "Return #1001-R1 requested (2 items)",
        "Return #1001-R1 approved",
        "Refunded 2 items: ISK 3,980 to the card",
        "Return #1001-R1 closed",
        f"Credit invoice {number} made in Payday",
        "Recorded in Payday as paid back to the card",
    ]
    # The page shows the same story, each line with its moment.
    html = page(client, system, f"/cases/{case['id']}")
    shown = re.search(r'data-testid="timeline">(.*?)</s-ordered-list>', html, re.S).group(1)
    assert "Shopify reported" not in shown and "orders/updated" not in shown
    assert shown.count("<time datetime=") == len(lines)
    for status in ("Awaiting close", "In progress", "Recorded in Payday"):
        assert f"{status} → {status}" not in shown
    # A pass that finds nothing new tells nothing new.
    with db.transaction() as conn:
        conn.execute("UPDATE orders SET work_requested_at = now()")
    run_worker_until_idle()
    assert story_lines(app, case) == lines


def test_counts_read_in_the_plural_form_of_the_number(app):
    with app.test_request_context(query_string={"locale": "en"}):
        one = story.text("return_requested", {"name": "#1001-R1", "items": 1})
        many = story.text("refunded", {"items": 21, "amount": "1990", "currency": "ISK", "gateway": "shopify_payments",
                                       "state": "done"})
        cash = story.text("refunded", {"items": 0, "amount": "500", "currency": "ISK", "gateway": "cash", "state": "done"})
        hidden_way = story.text("refunded", {"items": 1, "amount": "500", "currency": "ISK", "gateway": "manual",
                                             "state": "done"})
    assert one == "Return #1001-R1 requested (1 item)"
    assert many == "Refunded 21 items: ISK 1,990 to the card"
    assert cash == "Refunded ISK 500 in cash"
    assert hidden_way == "Refunded 1 item: ISK 500"   # an internal gateway name is never shown


def test_old_timeline_rows_still_read_and_webhooks_and_internal_steps_do_not_show(app):
    rows = [{"at": None, "kind": "webhook", "detail": {"topic": "orders/updated"}, "case_id": None},
            {"at": None, "kind": "status", "detail": {"from": "open", "to": "open",
                                                       "reason": {"code": "waiting_for_close", "params": {}}}},
            {"at": None, "kind": "document_claimed", "detail": {"doc_key": "return-1", "total": "-1990", "lines": 1}},
            {"at": None, "kind": "payday_call", "detail": {"doc_key": "return-1", "attempt": 1}},
            {"at": None, "kind": "payday_invoice_created", "detail": {"doc_key": "return-1", "invoice_id": "x"}},
            {"at": None, "kind": "status", "detail": {"from": "processing", "to": "created", "reason": None}}]
    docs = {"return-1": {"number": "42", "total": "-1990", "name": "#1001-R1", "status": "sent", "trigger": "return_close",
                         "gateway": "shopify_payments", "paid": False}}
    with app.test_request_context(query_string={"locale": "en"}):
        lines = [e["text"] for e in story.build(rows, docs, "ISK")]
    assert lines == ["Credit invoice 42 made in Payday", "Status: In progress → Recorded in Payday"]


EXCHANGE_ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"},
                  "lines": [{"sku": "SKOR-40", "title": "Skór 40", "price": "5000", "quantity": 1, "tax_rate": "24"}],
                  "payment": {"gateway": "shopify_payments", "status": "success"}}


def test_an_exchange_that_costs_the_customer_more_is_an_invoice_not_a_credit_invoice(app, system):
    case = play(system, [
        {"do": "return_open", "return": "R1", "lines": [{"sku": "SKOR-40", "quantity": 1}],
         "exchange_lines": [{"sku": "SKOR-41", "title": "Skór 41", "price": "8000", "quantity": 1, "tax_rate": "24"}]},
        {"do": "pay", "amount": "3000", "status": "success"},
        {"do": "return_close", "return": "R1"},
    ], order=EXCHANGE_ORDER)
    with app.test_request_context(query_string={"locale": "en"}):
        [doc] = home.order_documents(case["shop_id"], case["order_id"])
        heading = render_template_string('{% from "_story.html" import documents_heading %}'
                                         '{{ documents_heading(documents, "#1001") }}', documents=[doc])
    assert doc["is_charge"] and doc["kind_label"] == "Invoice" and doc["total"] > 0
    assert heading == "Invoices of order #1001"
    lines = story_lines(app, case)
    assert f"Invoice {doc['accounting_number']} made in Payday" in lines
    assert "Exchange #1001-R1 opened (1 item back)" in lines and "Exchange #1001-R1 closed" in lines
    assert not [line for line in lines if "Credit invoice" in line]


def test_a_credit_alone_keeps_the_credit_invoices_heading(app):
    with app.test_request_context(query_string={"locale": "en"}):
        heading = render_template_string('{% from "_story.html" import documents_heading %}'
                                         '{{ documents_heading(documents, "#1001") }}',
                                         documents=[{"is_charge": False}])
    assert heading == "Credit invoices of order #1001" and story.kind_label("-1990") == "Credit invoice"


def test_a_reopened_return_still_shows_the_invoice_it_has(app, system, client):
    case = play(system, [
        {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]},
        {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 1}]},
        {"do": "return_close", "return": "R1"},
        {"do": "return_reopen", "return": "R1"},
    ])
    with db.transaction() as conn:
        case = conn.execute("SELECT * FROM cases WHERE id = %s", (case["id"],)).fetchone()
        [doc] = conn.execute("SELECT * FROM documents").fetchall()
    assert case["status"] == "open" and doc["status"] == "sent"   # open again in Shopify, its invoice made
    # The list's row links the invoice it has, beside why the case waits.
    home_html = page(client, system, "/")
    row = re.search(rf'<s-table-row data-case-id="{case["id"]}".*?</s-table-row>', home_html, re.S).group(0)
    assert f"/invoices/{doc['accounting_id']}" in row and 'data-testid="reason"' in row
    # The case's page lists it among the order's documents, and the story tells the reopening.
    html = page(client, system, f"/cases/{case['id']}")
    assert html.count('data-testid="document"') == 1 and f"/invoices/{doc['accounting_id']}" in html
    lines = story_lines(app, case)
    assert lines[-1] == "Return #1001-R1 reopened" and f"Credit invoice {doc['accounting_number']} made in Payday" in lines


@pytest.mark.parametrize("kind", story.RETURN_KINDS)
def test_every_return_line_reads_for_a_return_and_an_exchange(app, kind):
    with app.test_request_context(query_string={"locale": "en"}):
        for exchange in (False, True):
            line = story.text(kind, {"name": "#1001-R1", "exchange": exchange, "items": 2})
            assert "#1001-R1" in line and ("Exchange" if exchange else "Return") in line
