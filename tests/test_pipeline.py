"""Exactly once, nothing lost: duplicates, dead workers, Payday outages and missed webhooks,
through the real pipeline against the stand-ins."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from shopify_app import db, documents, events, reconcile
from shopify_app.sandbox.player import SHOP, Player, install_shop, run_worker_until_idle
from tests.test_processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "scenarios"
ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


@pytest.fixture
def closed_return(system):
    """An order with a return of 3, refunded, then closed in Shopify; webhooks not yet delivered."""
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, {**ORDER, "currency": "ISK", "taxes_included": True})
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 3}]})
    system.shopify.deliver()
    run_worker_until_idle()
    store.apply(order, {"do": "return_close", "return": "R1"})
    return order


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def invoice_posts(payday):
    return [r for r in payday.requests if r["method"] == "POST" and r["path"] == "/invoices"]


def test_D1_three_duplicated_and_shuffled_deliveries_give_the_same_documents(system, shopify, payday):
    scenario = json.loads((ROOT / "tests/scenarios/d1_duplicated_and_shuffled_delivery.json").read_text())
    plain = {**scenario, "delivery": {"duplicate": 1, "shuffle": False}}
    first = Player(system).play(plain)["documents"]
    shopify.reset()
    payday.reset()
    with db.transaction() as conn:
        conn.execute("TRUNCATE shops, webhook_events RESTART IDENTITY CASCADE")
    again = Player(system).play(scenario)["documents"]
    assert [{k: v for k, v in d.items() if k != "number"} for d in again] == \
           [{k: v for k, v in d.items() if k != "number"} for d in first]
    assert len(invoice_posts(payday)) == 1


def test_D1_worker_killed_between_the_payday_call_and_the_bookkeeping_leaves_no_duplicate(system, closed_return, payday, redis):
    system.shopify.deliver()
    payday.timeout_next(1, seconds=1.5, paths=("POST /invoices",))   # the call is in flight for a while
    worker = subprocess.Popen([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: invoice_posts(payday), timeout=60)
        # The dyno dies: the worker and its work horse are killed outright, mid-call.
        for proc in psutil.Process(worker.pid).children(recursive=True) + [psutil.Process(worker.pid)]:
            proc.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    wait_for(lambda: len(payday.invoices) == 1, timeout=10)   # Payday did create it
    [doc] = rows("SELECT status FROM documents")
    assert doc["status"] == "sending"                         # ...but we never heard back
    redis.flushdb()                                           # and the queue is gone with the dyno
    events.sweep()                                            # the periodic sweep finds the work in Postgres
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and len(invoice_posts(payday)) == 1
    [doc] = rows("SELECT status, accounting_id, accounting_number, attempts, last_error, last_error_kind, next_attempt_at, now() AS now FROM documents")
    # (Seen once in a while in a loaded full run, never alone: what the document and its order's
    # timeline say then is the lead.)
    assert doc["status"] == "sent", (doc, rows("SELECT kind, detail, at FROM timeline ORDER BY id"))
    assert doc["status"] == "sent" and doc["accounting_id"] == str(payday.invoices[0]["id"]) and doc["accounting_number"]
    assert [r["status"] for r in rows("SELECT status FROM cases")] == ["created"]


def test_D1_answer_lost_after_payday_stored_the_invoice_is_found_by_reference(system, closed_return, payday):
    payday.fail_after_commit_next(1, status=None)   # stored, then the connection drops
    system.shopify.deliver()
    run_worker_until_idle()
    assert len(payday.invoices) == 1
    assert rows("SELECT status FROM documents")[0]["status"] == "sending"
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET next_attempt_at = now()")
    events.sweep()
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and len(invoice_posts(payday)) == 1
    assert rows("SELECT status FROM documents")[0]["status"] == "sent"


def test_D2_worker_dying_after_the_claim_sends_the_document_later(system, closed_return, payday, monkeypatch):
    def die(*args, **kwargs):
        raise SystemExit("the worker died")

    with monkeypatch.context() as patch:
        patch.setattr(documents, "send", die)
        system.shopify.deliver()
        run_worker_until_idle()
    assert rows("SELECT status FROM documents")[0]["status"] == "claimed" and payday.invoices == []
    with db.transaction() as conn:   # as if two minutes had passed (a crashed pass waits one)
        conn.execute("UPDATE orders SET work_requested_at = now() - interval '5 minutes', not_before = NULL")
    events.sweep()
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and rows("SELECT status FROM cases")[0]["status"] == "created"


def test_D2_payday_down_for_a_while_delays_the_document_and_loses_nothing(system, closed_return, payday):
    payday.fail_next(3, status=503, paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "processing" and case["reason"]["code"] == "retrying"
    pauses = []
    for _ in range(3):
        [doc] = rows("SELECT attempts, next_attempt_at - now() AS pause FROM documents")
        pauses.append(doc["pause"])
        with db.transaction() as conn:
            conn.execute("UPDATE documents SET next_attempt_at = now()")   # time passes
        events.sweep()
        run_worker_until_idle()
    assert pauses == sorted(pauses) and pauses[0].total_seconds() > 30   # growing pauses, from a minute
    assert len(payday.invoices) == 1
    assert rows("SELECT status FROM cases")[0]["status"] == "created"


def test_D2_when_payday_answers_again_every_waiting_document_goes_within_a_sweep(system, payday):
    # An outage: three returns closed while Payday answers 503; each waits deep in its ladder
    # (hours away). Payday is back: the minute's sweep tries one, its success sends the rest.
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    for n in (1, 2, 3):
        order = store.create_order(SHOP, {**ORDER, "name": f"#10{n}", "currency": "ISK", "taxes_included": True})
        for step in ({"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 1}]},
                     {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 1}]},
                     {"do": "return_close", "return": "R1"}):
            store.apply(order, step)
    payday.fail_next(3, status=503, paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    assert payday.invoices == [] and len(rows("SELECT id FROM documents WHERE status = 'sending'")) == 3
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET attempts = 6, next_attempt_at = now() + interval '2 hours'")
    events.sweep()
    run_worker_until_idle()
    assert len(payday.invoices) == 3 and len(invoice_posts(payday)) == 6
    assert {r["attempts"] for r in rows("SELECT attempts FROM documents")} == {6, 7}   # the probe's try was free


def test_D2_a_long_outage_is_probed_once_a_minute_without_exhausting_the_document(system, closed_return, payday):
    payday.fail_next(30, status=503, paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET attempts = 8, next_attempt_at = now() + interval '6 hours'")
    for _ in range(5):   # five minutes of outage, each minute's sweep a probe
        events.sweep()
        run_worker_until_idle()
        with db.transaction() as conn:
            conn.execute("UPDATE documents SET next_attempt_at = greatest(next_attempt_at, now() + interval '2 minutes')")
    [doc] = rows("SELECT status, attempts FROM documents")
    assert doc["status"] == "sending" and doc["attempts"] == 8 and len(invoice_posts(payday)) == 6


def test_D2_D4_payday_down_for_too_long_fails_visibly_and_retry_recovers(system, closed_return, payday):
    payday.fail_next(documents.MAX_ATTEMPTS, status=503, paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    for _ in range(documents.MAX_ATTEMPTS):
        with db.transaction() as conn:
            conn.execute("UPDATE documents SET next_attempt_at = now()")
        events.sweep()
        run_worker_until_idle()
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "failed" and case["reason"]["code"] == "payday_transient"
    assert len(invoice_posts(payday)) == documents.MAX_ATTEMPTS and payday.invoices == []
    [doc] = rows("SELECT id, shop_id FROM documents")
    assert documents.retry(doc["id"], doc["shop_id"])
    events.sweep()
    run_worker_until_idle()
    assert rows("SELECT status FROM cases")[0]["status"] == "created"


def test_D4_payday_refusal_fails_at_once_with_paydays_message(system, closed_return, payday):
    # Refused as paid, and again unpaid (docs/PAYDAY_MODEL.md: a paid credit may be refused alone).
    payday.fail_next(2, status=400, body={"message": "Viðskiptavinur er ekki til"}, paths=("POST /invoices",))
    system.shopify.deliver()
    run_worker_until_idle()
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "failed" and case["reason"] == {
        "code": "payday_validation", "params": {"error": "Viðskiptavinur er ekki til"}}


def test_D2_a_missed_webhook_is_found_by_reconciliation(system, closed_return, payday):
    system.shopify.store.drain()   # Shopify gave up delivering: the close never reaches us
    run_worker_until_idle()
    assert payday.invoices == []
    [shop] = rows("SELECT id FROM shops")
    assert reconcile.reconcile_shop(shop["id"]) == 1
    run_worker_until_idle()
    assert len(payday.invoices) == 1
    reconcile.reconcile_shop(shop["id"])   # a later pass over the same changes adds nothing
    run_worker_until_idle()
    assert len(payday.invoices) == 1


def test_D3_unsupported_vat_rate_fails_with_the_reason_and_sends_nothing(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, {**ORDER, "currency": "ISK", "taxes_included": True,
                                      "lines": [{**ORDER["lines"][0], "tax_rate": "25.5"}]})
    store.apply(order, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    system.shopify.deliver()
    run_worker_until_idle()
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "failed"
    assert case["reason"] == {"code": "unsupported_vat_rate", "params": {"item": "Krús", "rate": "25.5"}}
    assert payday.invoices == []


def test_C7_payday_receives_the_reference_customer_and_paid_status(system, closed_return, payday):
    system.shopify.deliver()
    run_worker_until_idle()
    [invoice] = payday.invoices
    assert invoice["reference"] == "#1001 / #1001-R1"
    assert invoice["status"] == "PAID" and invoice["paymentType"]
    assert invoice["customer"]["email"] == "anna@example.is" if "email" in invoice["customer"] else True
    [line] = invoice["lines"]
    assert (line["quantity"], line["unitPriceIncludingVat"], line["vatPercentage"]) == (3, -1990, 24)


def test_automatic_processing_off_claims_nothing_and_on_invoices_what_waited(system, closed_return, payday):
    from shopify_app import shop_settings

    [shop] = rows("SELECT id FROM shops")
    shop_settings.save(shop["id"], auto_process=False)
    system.shopify.deliver()
    run_worker_until_idle()
    assert payday.invoices == [] and rows("SELECT * FROM documents") == []
    [case] = rows("SELECT status, reason FROM cases")
    assert case["status"] == "open" and case["reason"]["code"] == "automatic_processing_off"
    # Switched on, what waited is invoiced without another word from Shopify.
    shop_settings.save(shop["id"], auto_process=True)
    run_worker_until_idle()
    assert len(payday.invoices) == 1
    assert rows("SELECT status FROM cases") == [{"status": "created"}]


def test_work_for_one_order_never_runs_twice_at_once(system, closed_return, payday):
    from shopify_app import db as database, pipeline

    system.shopify.deliver()
    [order] = rows("SELECT id FROM orders")
    held, done = threading.Event(), threading.Event()

    def another_worker():
        with database.order_lock(order["id"]) as got:
            assert got
            held.set()
            done.wait(30)

    holder = threading.Thread(target=another_worker)
    holder.start()
    try:
        assert held.wait(10)
        assert pipeline.process_order(order["id"]) == "busy"
    finally:
        done.set()
        holder.join()
    assert payday.invoices == []
    run_worker_until_idle()   # the queued jobs run once the holder is gone
    assert len(payday.invoices) == 1


def test_orders_unread_while_shopify_refused_the_token_are_read_once_the_app_is_opened(system, client, closed_return,
                                                                                       payday):
    system.shopify.deliver()
    system.shopify.fail_next(2, status=401)   # the stored token and the refreshed one are refused
    run_worker_until_idle()
    assert payday.invoices == [] and rows("SELECT last_error FROM orders") == [{"last_error": "shopify_auth"}]
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "en"}
    assert client.get("/", query_string=query).status_code == 200   # the merchant opens Skilvís: a new token
    run_worker_until_idle()
    assert len(payday.invoices) == 1 and rows("SELECT last_error FROM orders") == [{"last_error": None}]


def test_D1_another_stores_invoice_under_the_same_reference_is_not_taken_for_ours(system, closed_return, payday):
    from shopify_app.accounting.payday import api as payday_api
    from shopify_app.sandbox.player import PAYDAY_CLIENT

    payday.fail_after_commit_next(1, status=None)   # ours is stored, then the connection drops
    system.shopify.deliver()
    run_worker_until_idle()
    # Meanwhile another Shopify store of the company, booking into the same Payday, credits its
    # own #1001's return R1: the newest invoice under that reference is not ours.
    other_store = payday_api.PaydayClient(payday.url, *PAYDAY_CLIENT)
    customer = other_store.find_or_create_customer(email="jon@other.example", name="Jón í hinni búðinni")
    other_store.create_invoice({"customer": {"id": customer}, "reference": "#1001 / #1001-R1", "status": "SENT",
                                "lines": [{"description": "Húfa", "quantity": 1, "unitPriceIncludingVat": -2500,
                                           "vatPercentage": 24}]})
    with db.transaction() as conn:
        conn.execute("UPDATE documents SET next_attempt_at = now()")
    events.sweep()
    run_worker_until_idle()
    [doc] = rows("SELECT status, accounting_id FROM documents")
    ours = [inv for inv in payday.invoices if inv["reference"] == "#1001 / #1001-R1" and inv["customer"]["id"] != customer]
    assert len(payday.invoices) == 2 and len(ours) == 1
    assert doc["status"] == "sent" and doc["accounting_id"] == str(ours[0]["id"])


def test_C7_the_credit_invoice_names_the_sale_invoice_of_that_order_and_customer(system, closed_return, payday):
    from shopify_app.accounting.payday import api as payday_api
    from shopify_app.sandbox.player import PAYDAY_CLIENT

    books = payday_api.PaydayClient(payday.url, *PAYDAY_CLIENT)
    sale = {"reference": "#1001", "status": "SENT",
            "lines": [{"description": "Krús", "quantity": 3, "unitPriceIncludingVat": 1990, "vatPercentage": 24}]}
    anna = books.find_or_create_customer(email="anna@example.is", name="Anna")
    ours = books.create_invoice({**sale, "customer": {"id": anna}})
    stranger = books.find_or_create_customer(email="jon@other.example", name="Jón í hinni búðinni")
    books.create_invoice({**sale, "customer": {"id": stranger}})   # another store's #1001, newer
    wait_for(lambda: all(inv.get("number") for inv in payday.invoices), timeout=10)
    system.shopify.deliver()
    run_worker_until_idle()
    [credit] = [inv for inv in payday.invoices if inv["reference"] == "#1001 / #1001-R1"]
    number = next(inv["number"] for inv in payday.invoices if inv["id"] == ours["id"])
    assert f"Kreditfærir reikning nr. {number} dags. " in credit["description"]


def test_the_return_reason_is_on_the_credit_invoice_and_the_merchants_page(system, client, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, {**ORDER, "currency": "ISK", "taxes_included": True})
    store.apply(order, {"do": "return_open", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2, "reason": "Of lítið"}]})
    store.apply(order, {"do": "refund", "return": "R1", "lines": [{"sku": "KRUS", "quantity": 2}]})
    store.apply(order, {"do": "return_close", "return": "R1"})
    system.shopify.deliver()
    run_worker_until_idle()
    [invoice] = payday.invoices
    assert "Ástæða skila: Of lítið" in invoice["description"]
    [doc] = rows("SELECT case_id, return_reason FROM documents")
    assert doc["return_reason"] == "Of lítið"
    query = {"embedded": "1", "shop": SHOP, "id_token": system.shopify.id_token(SHOP), "locale": "is"}
    html = client.get(f"/cases/{doc['case_id']}", query_string=query).get_data(as_text=True)
    assert "Ástæða skila: Of lítið" in html
