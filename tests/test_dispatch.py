"""Work claimed from Postgres, fairly (issue 10): the dispatcher, a shop's budget, webhooks that
change nothing, and several workers sharing one database."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from shopify_app import db, dispatch, jobqueue, orders, shops
from shopify_app.sandbox.player import SHOP, install_shop, run_worker_until_idle
from shopify_app.shopify_admin import ShopifyBusy
from tests.test_processes import wait_for

ROOT = Path(__file__).resolve().parent.parent
ORDER = {"currency": "ISK", "taxes_included": True, "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 1, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}
RETURN = [{"sku": "KRUS", "quantity": 1}]


def rows(sql, *params):
    with db.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def a_shop(domain: str) -> int:
    with db.transaction() as conn:
        return conn.execute("INSERT INTO shops (domain) VALUES (%s) RETURNING id", (domain,)).fetchone()["id"]


def claimed_shops(redis) -> list[int]:
    ids = [job.args[0] for q in jobqueue.queues(redis) for job in q.jobs]
    return [r["shop_id"] for r in rows("SELECT shop_id FROM orders WHERE id = ANY(%s) ORDER BY id", ids)]


def test_a_shop_with_a_backlog_has_two_orders_in_flight_and_another_shops_order_goes_next(redis):
    busy, other = a_shop("busy.myshopify.com"), a_shop("other.myshopify.com")
    for legacy_id in range(1, 201):
        orders.request_work(busy, legacy_id)
    orders.request_work(other, 1)
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 3
    assert sorted(claimed_shops(redis)) == [busy, busy, other]
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 0   # the busy shop's slots are taken


def test_live_work_goes_before_history(redis):
    shop = a_shop("shop-a.myshopify.com")
    history = orders.request_work(shop, 1, history=True)
    live = orders.request_work(shop, 2)
    orders.request_work(shop, 3, history=True)
    dispatch.hand_out(redis, debounce=timedelta(0))
    assert [list(job.args) for job in jobqueue.queue(redis).jobs] == [[live, False]]
    assert [list(job.args) for job in jobqueue.queue(redis, history=True).jobs] == [[history, True]]


def test_webhooks_of_one_change_are_handed_out_once_after_the_debounce(redis):
    shop = a_shop("shop-a.myshopify.com")
    orders.request_work(shop, 1)
    assert dispatch.hand_out(redis) == 0                            # asked for just now
    with db.transaction() as conn:
        conn.execute("UPDATE orders SET work_requested_at = now() - interval '1 second'")
    assert dispatch.hand_out(redis) == 1
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 0    # claimed: never handed out twice


def test_an_order_handed_to_a_worker_that_died_is_handed_out_again(redis):
    shop = a_shop("shop-a.myshopify.com")
    orders.request_work(shop, 1)
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 1
    redis.flushdb()                                                 # the job is gone with its worker
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 0
    with db.transaction() as conn:
        conn.execute("UPDATE orders SET queued_at = now() - %s", (dispatch.LOST_AFTER,))
    assert dispatch.hand_out(redis, debounce=timedelta(0)) == 1


def test_a_deadlock_with_another_workers_dispatcher_is_looked_at_again(redis, monkeypatch):
    # Seen in bench/pipeline.py with two burst workers: one taking webhooks, the other claiming,
    # on the same orders in opposite orders. Postgres undoes one transaction whole; that worker
    # looks again instead of dying.
    from psycopg import errors as pg_errors

    shop = a_shop("shop-a.myshopify.com")
    orders.request_work(shop, 1)
    real_take, calls = dispatch.events.take, []

    def take_once_deadlocked():
        calls.append(1)
        if len(calls) == 1:
            raise pg_errors.DeadlockDetected("deadlock detected")
        return real_take()

    monkeypatch.setattr(dispatch.events, "take", take_once_deadlocked)
    assert dispatch.run_once(redis, debounce=timedelta(0)) == 1        # busy: look again
    assert dispatch.run_once(redis, debounce=timedelta(0)) == 1        # and the order is handed out
    assert len(rows("SELECT id FROM orders WHERE queued_at IS NOT NULL")) == 1


def test_a_shop_whose_shopify_budget_is_spent_frees_its_worker_and_waits(system, payday, redis, monkeypatch):
    from shopify_app import facts

    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, ORDER)
    store.apply(order, {"do": "refund", "lines": RETURN})

    def spent(*args, **kwargs):
        raise ShopifyBusy(120)

    with monkeypatch.context() as patched:
        patched.setattr(facts, "read_order", spent)
        system.shopify.deliver()
        run_worker_until_idle()   # returns at once: nothing sleeps on the bucket
    [row] = rows(f"SELECT o.queued_at, o.not_before > now() + interval '20 seconds' AS later, {orders.DIRTY} AS dirty "
                 "FROM orders o")
    assert row == {"queued_at": None, "later": True, "dirty": True}
    with db.transaction() as conn:   # the bucket has refilled
        conn.execute("UPDATE orders SET not_before = now()")
    run_worker_until_idle()
    assert len(payday.invoices) == 1


def test_a_returns_life_costs_at_most_two_reads(system, payday):
    """Requested, approved, refunded inside the open return, closed: the request shows the case,
    the close makes the invoice; the approval and the refund (and its transaction) change nothing."""
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, ORDER)
    before = system.shopify.graphql_calls[SHOP]
    steps = [{"do": "return_request", "return": "R1", "lines": RETURN},
             {"do": "return_open", "return": "R1", "lines": RETURN},
             {"do": "refund", "return": "R1", "lines": RETURN},
             {"do": "return_close", "return": "R1"}]
    for step in steps:   # each a while after the last: every webhook is delivered and worked on
        store.apply(order, step)
        system.shopify.deliver()
        run_worker_until_idle()
    assert len(payday.invoices) == 1
    assert system.shopify.graphql_calls[SHOP] - before <= 2


def test_a_payment_of_an_order_with_nothing_to_decide_is_not_read(system, payday):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    store = system.shopify.store
    order = store.create_order(SHOP, ORDER)
    before = system.shopify.graphql_calls[SHOP]
    store.apply(order, {"do": "pay", "amount": "500"})   # order_transactions/create
    system.shopify.deliver()
    run_worker_until_idle()
    assert system.shopify.graphql_calls[SHOP] == before and rows("SELECT id FROM orders") == []
    assert rows("SELECT status FROM webhook_events") == [{"status": "processed"}]


def test_four_workers_on_one_database_invoice_every_return_once(system, payday):
    domains = [SHOP, "skilvis-two.myshopify.com", "skilvis-three.myshopify.com"]
    for n, domain in enumerate(domains):
        install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"], domain=domain,
                     payday_client=(f"client-{n}", f"secret-{n}"))
    store = system.shopify.store
    expected = 0
    for domain in domains:
        for i in range(8):
            order = store.create_order(domain, {**ORDER, "name": f"#{1001 + i}"})
            for step in ({"do": "return_open", "return": "R1", "lines": RETURN},
                         {"do": "refund", "return": "R1", "lines": RETURN}, {"do": "return_close", "return": "R1"}):
                store.apply(order, step)
            expected += 1
    system.shopify.deliver(duplicate=2, shuffle=True)
    workers = [subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=dict(os.environ),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(4)]
    try:
        assert wait_for(lambda: rows("SELECT count(*) AS n FROM documents WHERE status = 'sent'")[0]["n"] == expected,
                        timeout=120)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    invoices = [inv for client in range(3) for inv in payday.company(f"client-{client}").invoices]
    assert len(invoices) == expected
    # Each document was sent once: no two workers ever had the same order at once.
    assert rows("""SELECT count(*) AS n FROM timeline WHERE kind = 'payday_call'""")[0]["n"] == expected
    assert {r["shop_id"] for r in rows("SELECT shop_id FROM documents")} == {shops.get(d)["id"] for d in domains}
