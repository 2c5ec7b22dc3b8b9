"""Facts: the app's GraphQL queries are valid against Shopify's 2026-10 schema, read an order
in Shopify's real shape in one call that requests at most 300 points, and survive an empty cost
bucket, outages and expired tokens."""
from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
from graphql import build_client_schema, parse, validate

from shopify_app import bulk, db, facts, reconcile
from shopify_app.shopify_admin import AdminClient, ShopifyBusy, ShopifyUnavailable, estimate_cost
from tests.helpers import SHOP, an_order_with_many_of_everything

SCHEMA = Path(__file__).resolve().parent.parent / "shopify_app" / "sandbox" / "shopify" / "admin-schema-2026-10.json.gz"
QUERIES = {"order": facts.ORDER_QUERY, "more returns": facts.RETURNS_QUERY,
           "changed orders": reconcile.CHANGED_ORDERS_QUERY,
           "order by name": facts.ORDER_BY_NAME_QUERY, "line items": facts.LINE_ITEMS_QUERY,
           "shipping lines": facts.SHIPPING_LINES_QUERY, "recent gateways": facts.RECENT_GATEWAYS_QUERY,
           "bulk run": bulk.RUN_MUTATION, "bulk operation": bulk.OPERATION_QUERY,
           "current bulk operation": bulk.CURRENT_QUERY, "bulk orders": bulk.ORDERS_QUERY % '"test:false"',
           **{f"rest of {kind}.{name}": query for (kind, name), query in facts.REST_QUERIES.items()}}
ORDER = {"name": "#1001", "customer": {"email": "anna@example.is", "company": "1203894569"},
         "lines": [{"sku": "BOLUR-M", "title": "Bolur M", "price": "2500", "quantity": 2, "tax_rate": "24"},
                   {"sku": "BOK", "title": "Bók", "price": "3990", "quantity": 1, "tax_rate": "11"}],
         "shipping": {"title": "Heimsending", "price": "1000", "tax_rate": "24"},
         "payment": {"gateway": "shopify_payments", "status": "success"}, "currency": "ISK", "taxes_included": True}


@pytest.mark.parametrize("name", QUERIES)
def test_every_query_is_valid_against_the_2026_10_schema(name):
    schema = build_client_schema(json.load(gzip.open(SCHEMA))["data"], assume_valid=True)
    assert validate(schema, parse(QUERIES[name])) == []


@pytest.mark.parametrize("name", QUERIES)
def test_the_cost_taken_before_each_query_is_what_the_stand_in_requests(name):
    # The client takes a query's requested cost from the shop's bucket before it is sent; its
    # estimate from the query text is the stand-in's requestedQueryCost (Shopify's documented
    # rule), so the bucket it keeps never runs ahead of Shopify's.
    from graphql import get_operation_ast
    from graphql.execution.values import get_variable_values

    from shopify_app.sandbox.shopify.graphql_api import _Costing, schema

    document = parse(QUERIES[name])
    operation = get_operation_ast(document)
    if operation.operation.value == "mutation":
        assert estimate_cost(QUERIES[name]) == 10
        return
    values = {"id": "gid://shopify/Order/1", "query": "x", "since": "2026-01-01T00:00:00Z", "ids": ["x"]}
    variables = {d.variable.name.value: values[d.variable.name.value] for d in operation.variable_definitions or ()
                 if d.variable.name.value in values}
    coerced = get_variable_values(schema(), operation.variable_definitions or (), variables)
    assert estimate_cost(QUERIES[name], variables) == _Costing(schema(), document, coerced).selection(
        schema().query_type, [operation.selection_set])


def test_the_order_query_requests_at_most_300_points():
    assert estimate_cost(facts.ORDER_QUERY, {"id": "gid://shopify/Order/1"}) <= facts.ORDER_QUERY_MAX_COST == 300


@pytest.fixture
def admin(settings, shopify):
    client = AdminClient(settings, sleep=lambda s: None)
    client.install_from_id_token(SHOP, shopify.id_token(SHOP))
    return client


@pytest.fixture
def order(shopify):
    store = shopify.store
    o = store.create_order(SHOP, ORDER)
    store.apply(o, {"do": "return_open", "return": "R1", "lines": [{"sku": "BOLUR-M", "quantity": 2}],
                    "return_shipping_fee": "500"})
    store.apply(o, {"do": "refund", "return": "R1", "lines": [{"sku": "BOLUR-M", "quantity": 2}], "shipping": "1000"})
    store.apply(o, {"do": "return_close", "return": "R1"})
    return o


def test_reads_the_order_with_its_return_refund_fees_and_transactions(admin, order):
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")
    assert (f.name, f.currency, f.taxes_included, f.customer.company) == ("#1001", "ISK", True, "1203894569")
    assert {li.sku: (li.unit_price, li.vat_rates) for li in f.line_items.values()} == {
        "BOLUR-M": (Decimal(2500), (Decimal(24),)), "BOK": (Decimal(3990), (Decimal(11),))}
    [ret] = f.returns
    assert (ret.name, ret.status, ret.shipping_fees) == ("#1001-R1", "CLOSED", (Decimal(500),))
    assert ret.closed_at is not None and [(rl.quantity, rl.value) for rl in ret.lines] == [(2, Decimal(5000))]
    [refund] = f.refunds
    assert refund.return_id == ret.id
    assert [(rl.quantity, rl.gross) for rl in refund.lines] == [(2, Decimal(5000))]
    assert [rs.gross for rs in refund.shipping] == [Decimal(1000)]
    assert [(t.kind, t.status, t.amount) for t in refund.transactions] == [("REFUND", "SUCCESS", Decimal(5500))]


def test_the_return_reason_is_read_by_its_name_only(admin, shopify):
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": [{**ORDER["lines"][0], "quantity": 3}, ORDER["lines"][1]]})
    shopify.store.apply(o, {"do": "return_open", "return": "R1", "lines": [
        {"sku": "BOLUR-M", "quantity": 1, "reason": "Of lítið"}, {"sku": "BOK", "quantity": 1, "reason": "Gallað"},
        {"sku": "BOLUR-M", "quantity": 1, "reason": "Rangur litur"}]})
    shopify.store.apply(o, {"do": "return_open", "return": "R2", "lines": [{"sku": "BOLUR-M", "quantity": 1}]})
    r1, r2 = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}").returns
    # A SKU's lines are one return line in the stand-in: its first reason is the line's.
    assert [rl.reason for rl in r1.lines] == ["Of lítið", "Gallað"] and r1.reasons == ("Of lítið", "Gallað")
    assert [rl.reason for rl in r2.lines] == [None] and r2.reasons == ()
    assert "returnReasonNote" not in facts.RETURN_LINE and "customerNote" not in facts.RETURN_LINE


def test_many_returns_are_read_page_by_page(admin, shopify):
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": [{**ORDER["lines"][0], "quantity": 25}]})
    for n in range(23):
        shopify.store.apply(o, {"do": "return_open", "return": f"R{n}", "lines": [{"sku": "BOLUR-M", "quantity": 1}]})
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}")
    assert len(f.returns) == 23 and len({r.id for r in f.returns}) == 23


def test_an_order_with_more_than_a_page_of_line_items_is_read_page_by_page(admin, shopify):
    lines = [{"sku": f"VARA-{n}", "title": f"Vara {n}", "price": "1000", "quantity": 1, "tax_rate": "24"}
             for n in range(120)]
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": lines})
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}")
    assert sorted(li.sku for li in f.line_items.values()) == sorted(f"VARA-{n}" for n in range(120))


def test_a_discounted_line_is_read_at_the_price_the_customer_paid(admin, shopify):
    # Shopify keeps the list price as `originalUnitPriceSet`; a credit is for what was paid.
    lines = [{"sku": "PEYSA", "title": "Lopapeysa", "price": "10000", "discount": "2000", "quantity": 2,
              "tax_rate": "24"}]
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": lines})
    [item] = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}").line_items.values()
    assert (item.unit_price, item.tax, item.vat_rates) == (Decimal(8000), Decimal("3097"), (Decimal(24),))


def test_D6_every_line_refund_and_payment_is_read_however_many_there_are(admin, shopify):
    # 60 products, a return of 30 lines, a refund of those 30 lines, then 35 more refunds (each
    # with its own payment): every list is read in full, and no query passes Shopify's 1,000-point
    # limit (the stand-in refuses one that does, as Shopify does).
    o = an_order_with_many_of_everything(shopify.store, ORDER)
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}")
    [ret] = f.returns
    assert len(f.line_items) == 60 and len(ret.lines) == 30
    assert len(f.refunds) == 36 and max(len(r.lines) for r in f.refunds) == 30
    assert len(f.transactions) == 37 and all(len(r.transactions) == 1 for r in f.refunds)
    assert all("MAX_COST_EXCEEDED" not in str(r) for r in shopify.graphql_requests)


def test_an_ordinary_order_with_a_return_and_its_refund_is_read_in_one_call_of_at_most_300_points(
        admin, order, shopify):
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")
    assert f.returns and f.refunds and f.refunds[0].transactions and f.returns[0].shipping_fees
    [call] = shopify.graphql_requests
    assert call["cost"]["requestedQueryCost"] <= 300 and not call["errors"]


def test_D6_a_return_of_26_lines_is_read_to_its_last_line_after_the_one_call(admin, shopify):
    lines = [{"sku": f"VARA-{n:02}", "title": f"Vara {n}", "price": "1000", "quantity": 1, "tax_rate": "24"}
             for n in range(26)]
    o = shopify.store.create_order(SHOP, {**ORDER, "lines": lines})
    back = [{"sku": f"VARA-{n:02}", "quantity": 1} for n in range(26)]
    shopify.store.apply(o, {"do": "return_open", "return": "R1", "lines": back})
    shopify.store.apply(o, {"do": "refund", "return": "R1", "lines": back})
    shopify.store.apply(o, {"do": "return_close", "return": "R1"})
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{o.id}")
    [ret], [refund] = f.returns, f.refunds
    assert len(f.line_items) == 26 and len(ret.lines) == 26 and len(refund.lines) == 26
    assert {rl.line_item_id for rl in ret.lines} == set(f.line_items) == {rl.line_item_id for rl in refund.lines}
    # The order, then only what its first pages said was more: the line items, the return's
    # lines and the refund's lines, one page each.
    asked = [r["query"].split("(")[0].split()[-1] for r in shopify.graphql_requests]
    assert asked == ["SkilvisOrder", "SkilvisLineItems", "SkilvisMoreRefundRefundLineItems",
                     "SkilvisMoreReturnReturnLineItems"]
    assert all(r["cost"]["requestedQueryCost"] <= 1000 and not r["errors"] for r in shopify.graphql_requests)


def test_an_empty_bucket_at_shopify_is_busy_with_when_to_come_back_and_no_sleep(admin, order, shopify):
    admin.sleep = lambda s: pytest.fail("nothing sleeps for the budget")
    shopify.set_bucket(SHOP, 0)
    with pytest.raises(ShopifyBusy) as busy:
        facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")
    assert 0 < busy.value.retry_in <= 300 / shopify.restore_rate
    # Our bucket is now Shopify's, so no call goes out until it has refilled.
    with pytest.raises(ShopifyBusy):
        facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")
    assert len(shopify.graphql_requests) == 1
    shopify.set_bucket(SHOP, 2000)
    with db.transaction() as conn:   # the time it takes to refill
        conn.execute("UPDATE shopify_buckets SET updated_at = updated_at - interval '1 minute'")
    assert facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}").name == "#1001"


def test_server_errors_are_retried_then_reported_as_unavailable(admin, order, shopify):
    shopify.fail_next(2, status=503)
    assert facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}").name == "#1001"
    shopify.fail_next(10, status=503)
    with pytest.raises(ShopifyUnavailable):
        facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")


def test_a_401_refreshes_the_token_once_and_retries(admin, order, shopify):
    shopify.expire_access_token(SHOP)   # Shopify says no before our clock says so
    f = facts.read_order(admin, SHOP, f"gid://shopify/Order/{order.id}")
    assert f.name == "#1001"
    assert [r["body"].get("grant_type") for r in shopify.token_requests][-1] == "refresh_token"


def test_an_order_shopify_no_longer_shows_reads_as_none(admin):
    assert facts.read_order(admin, SHOP, "gid://shopify/Order/999999999") is None
