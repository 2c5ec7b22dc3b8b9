"""Shopify's GraphQL budget, respected and never collided with (issue 10, point 2): every client
of a shop takes a query's requested cost from one bucket kept in Postgres before the call, and
is told to come back (ShopifyBusy) instead of being throttled by Shopify or sleeping."""
from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import requests

from shopify_app import db, facts
from shopify_app.shopify_admin import AdminClient, ShopifyBusy
from tests.helpers import SHOP, an_order_with_many_of_everything

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is", "company": "1203894569"},
         "lines": [{"sku": "BOLUR-M", "title": "Bolur M", "price": "2500", "quantity": 2, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}, "currency": "ISK", "taxes_included": True}


def no_sleep(seconds):
    pytest.fail(f"slept {seconds} s for the budget")


@pytest.fixture
def installed(settings, shopify):
    AdminClient(settings).install_from_id_token(SHOP, shopify.id_token(SHOP))


@pytest.fixture
def order(shopify):
    o = shopify.store.create_order(SHOP, ORDER)
    shopify.store.apply(o, {"do": "return_open", "return": "R1", "lines": [{"sku": "BOLUR-M", "quantity": 2}]})
    shopify.store.apply(o, {"do": "refund", "return": "R1", "lines": [{"sku": "BOLUR-M", "quantity": 2}]})
    shopify.store.apply(o, {"do": "return_close", "return": "R1"})
    return f"gid://shopify/Order/{o.id}"


def bucket() -> dict:
    with db.transaction() as conn:
        return conn.execute("SELECT available, maximum, restore_rate FROM shopify_buckets WHERE shop_domain = %s",
                            (SHOP,)).fetchone()


def set_bucket(available) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE shopify_buckets SET available = %s, updated_at = now() WHERE shop_domain = %s",
                     (available, SHOP))


def later(seconds: float) -> None:
    """`seconds` pass for our copy of the bucket."""
    with db.transaction() as conn:
        conn.execute("UPDATE shopify_buckets SET updated_at = updated_at - make_interval(secs => %s)", (seconds,))


def throttled(shopify) -> list:
    return [r for r in shopify.graphql_requests if "THROTTLED" in str(r["errors"])]


def test_the_bucket_is_shopifys_as_it_last_said_kept_in_postgres_for_every_client(settings, shopify, installed, order):
    AdminClient(settings, sleep=no_sleep).query(SHOP, facts.ORDER_QUERY, {"id": order})
    [call] = shopify.graphql_requests
    status = call["cost"]["throttleStatus"]
    assert bucket() == {"available": Decimal(status["currentlyAvailable"]), "maximum": Decimal(2000),
                        "restore_rate": Decimal(100)}
    # Another client (another worker, a later job) starts from that bucket, not from a full one:
    # with too little left it does not call at all.
    set_bucket(100)
    with pytest.raises(ShopifyBusy) as busy:
        AdminClient(settings, sleep=no_sleep).query(SHOP, facts.ORDER_QUERY, {"id": order})
    assert busy.value.retry_in == pytest.approx((281 + 50 - 100) / 100, abs=0.05)   # 0.5 s to spare
    assert busy.value.requested == 281 and len(shopify.graphql_requests) == 1


def test_two_workers_sharing_a_small_bucket_are_never_throttled_one_is_told_when_to_come_back(
        settings, shopify, installed, order):
    shopify.maximum_available, shopify.restore_rate = 500, 1
    shopify.set_bucket(SHOP, 500)
    facts.read_order(AdminClient(settings, sleep=no_sleep), SHOP, order)   # the bucket is known: 500 less the read

    class Held(requests.Session):
        """The first worker's call is on its way (its cost taken) while the second one starts."""
        calling, go = threading.Event(), threading.Event()

        def post(self, *args, **kwargs):
            self.calling.set()
            self.go.wait(10)
            return super().post(*args, **kwargs)

    first = AdminClient(settings, http=Held(), sleep=no_sleep)
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("first", facts.read_order(first, SHOP, order)))
    worker.start()
    assert Held.calling.wait(10)
    with pytest.raises(ShopifyBusy) as busy:
        facts.read_order(AdminClient(settings, sleep=no_sleep), SHOP, order)
    Held.go.set()
    worker.join(10)
    assert results["first"].name == "#1001"
    left = 500 - shopify.graphql_requests[0]["cost"]["actualQueryCost"] - 281
    assert busy.value.retry_in == pytest.approx(281 + 0.5 - left, abs=1.0) and busy.value.retry_in > 0
    assert throttled(shopify) == [] and len(shopify.graphql_requests) == 2


def test_many_reads_of_one_shop_from_several_workers_never_meet_throttled(settings, shopify, installed, order):
    shopify.maximum_available, shopify.restore_rate = 1000, 20
    shopify.set_bucket(SHOP, 1000)
    outcomes = []

    def work():
        client = AdminClient(settings, sleep=no_sleep)
        for _ in range(6):
            try:
                outcomes.append(facts.read_order(client, SHOP, order).name)
            except ShopifyBusy as busy:
                outcomes.append(busy.retry_in)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert len(outcomes) == 24 and "#1001" in outcomes
    assert all(o == "#1001" or o > 0 for o in outcomes) and any(o != "#1001" for o in outcomes)
    assert throttled(shopify) == []


def test_a_history_read_only_uses_the_bucket_above_half(settings, shopify, installed, order):
    live, history = AdminClient(settings, sleep=no_sleep), AdminClient(settings, sleep=no_sleep, reserve=0.5)
    facts.read_order(live, SHOP, order)
    set_bucket(1200)   # 281 more would leave less than half of 2000
    with pytest.raises(ShopifyBusy) as busy:
        facts.read_order(history, SHOP, order)
    assert busy.value.retry_in == pytest.approx((281 + 1000 + 50 - 1200) / 100, abs=0.05)
    assert facts.read_order(live, SHOP, order).name == "#1001"
    later(30)
    assert facts.read_order(history, SHOP, order).name == "#1001"


def test_a_throttled_answer_sets_our_bucket_to_shopifys(settings, shopify, installed, order):
    client = AdminClient(settings, sleep=no_sleep)
    facts.read_order(client, SHOP, order)
    shopify.set_bucket(SHOP, 80)        # another app install's worth of calls we did not see
    with pytest.raises(ShopifyBusy) as busy:
        facts.read_order(client, SHOP, order)
    assert busy.value.retry_in == pytest.approx((281 - 80) / 100, abs=0.1)
    assert float(bucket()["available"]) == pytest.approx(80, abs=10)   # Shopify's, as it said (and refilling)


def test_a_read_put_aside_between_its_queries_comes_back_to_a_full_bucket(settings, shopify, installed):
    # Coming back when only the next query fits would start the read over, spend the bucket on
    # its first queries and stop again at the same place, for ever.
    lines = [{"sku": f"VARA-{n:02}", "title": f"Vara {n}", "price": "1000", "quantity": 1, "tax_rate": "24"}
             for n in range(26)]
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": lines})
    client = AdminClient(settings, sleep=no_sleep)
    client.graphql(SHOP, "{ shop { name } }")
    set_bucket(340)   # enough for the order query (281, and 0.5 s to spare), not for what follows
    with pytest.raises(ShopifyBusy) as busy:
        facts.read_order(client, SHOP, f"gid://shopify/Order/{o.id}")
    assert [r["query"].split("(")[0].split()[-1] for r in shopify.graphql_requests[1:]] == ["SkilvisOrder"]
    assert busy.value.retry_in == pytest.approx((2000 - float(bucket()["available"])) / 100, abs=0.1)
    later(busy.value.retry_in)
    assert len(facts.read_order(client, SHOP, f"gid://shopify/Order/{o.id}").line_items) == 26


def test_an_order_too_large_for_a_full_bucket_is_still_read_waiting_between_its_queries(settings, shopify, installed):
    # D6: no size limits. The read of this order costs more than the whole bucket holds, so
    # putting it aside would never help: it waits between its queries instead.
    o = an_order_with_many_of_everything(shopify.store, ORDER)
    ahead = [0.0]   # the time the read has slept, for Shopify's clock and for ours
    shopify.graphql.monotonic = lambda: time.monotonic() + ahead[0]
    shopify.maximum_available = 1000
    shopify.set_bucket(SHOP, 1000)
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        ahead[0] += seconds
        later(seconds)

    f = facts.read_order(AdminClient(settings, sleep=sleep), SHOP, f"gid://shopify/Order/{o.id}")
    assert len(f.line_items) == 60 and len(f.refunds) == 36 and len(f.returns[0].lines) == 30
    assert slept and throttled(shopify) == []


def test_a_token_refreshed_by_another_worker_is_used_at_once(settings, shopify, installed, order):
    first, second = AdminClient(settings, sleep=no_sleep), AdminClient(settings, sleep=no_sleep)
    facts.read_order(first, SHOP, order)
    shopify.expire_access_token(SHOP)
    facts.read_order(second, SHOP, order)       # 401, refresh, read
    facts.read_order(first, SHOP, order)        # the new token at once: no 401, no second refresh
    assert [r["grant"] for r in shopify.token_requests][1:] == ["refresh_token"]
    assert shopify.graphql_calls[SHOP] == 4


def test_a_shop_that_asks_less_than_the_documented_rule_is_asked_what_it_asked(settings, shopify, installed, order,
                                                                                monkeypatch):
    from shopify_app import shopify_admin

    monkeypatch.setattr(shopify_admin, "_LEARNED", {})
    shopify.cost_rule = "live"        # as real shops answer (docs/SHOPIFY_MODEL.md, "Query cost")
    client = AdminClient(settings, sleep=no_sleep)
    assert shopify_admin.requested_cost(facts.ORDER_QUERY) == 281    # before any answer: the documented rule
    facts.read_order(client, SHOP, order)
    assert shopify.graphql_requests[-1]["cost"]["requestedQueryCost"] == 64
    assert shopify_admin.requested_cost(facts.ORDER_QUERY) == 64     # Shopify's own figure from then on
    set_bucket(64 + 50)
    assert facts.read_order(client, SHOP, order).name == "#1001" and throttled(shopify) == []
