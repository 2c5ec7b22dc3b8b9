"""What a real shop withholds and limits, in the Shopify stand-in (docs/SHOPIFY_MODEL.md, "What a
real shop withholds and limits"): protected customer data, test orders, the 60-day window and
read_all_orders, defaultEmailAddress, webhook subscriptions from shopify.app.toml, large orders."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests

from shopify_app.sandbox.shopify import app_toml
from shopify_app.sandbox.shopify.standin import ShopifyStandin, sign
from shopify_app.sandbox.shopify.store import StoreError
from tests.conftest import API_KEY, API_SECRET
from tests.helpers import OTHER_SHOP, SHOP
from tests.test_shopify_standin import ONE_LINE_ORDER, FakeClock, credentials, exchange, post_token
from tests.test_shopify_standin import recorder  # noqa: F401  (a fixture)

PRIVATE_ORDER = {"customer": {"email": "anna@example.is", "company": "1203894569", "first_name": "Anna",
                              "last_name": "Jónsdóttir", "phone": "+3545551234", "address1": "Laugavegur 7"},
                 "lines": [{"sku": "BOLUR-M", "title": "Bolur M", "price": "2500", "quantity": 2, "tax_rate": "24"}],
                 "payment": {"gateway": "shopify_payments", "status": "success"}}
DENIED = "This app is not approved to access the {} object. See https://partners.shopify.com/1/apps/1/customer_data " \
         "for more details."


def ask(shopify, query: str, variables: dict | None = None, shop: str = SHOP) -> dict:
    """A GraphQL answer, straight from the engine (the HTTP path is tested in test_shopify_standin)."""
    return shopify.graphql.answer(shop, query, variables or {})


def gid(kind: str, obj) -> str:
    return f"gid://shopify/{kind}/{obj.id}"


# --- protected customer data ----------------------------------------------------------------

ORDER_WITH_PEOPLE = """query($id: ID!) { order(id: $id) {
  id name email phone test
  totalPriceSet { shopMoney { amount } }
  lineItems(first: 5) { nodes { sku quantity } }
  customer { id email firstName lastName phone defaultEmailAddress { emailAddress } }
  billingAddress { name firstName lastName company address1 address2 city zip province provinceCode phone
                   latitude longitude formattedArea country countryCodeV2 }
  shippingAddress { address1 zip countryCodeV2 }
} }"""


def test_an_approved_shop_answers_every_field_of_its_customers(shopify):
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    body = ask(shopify, ORDER_WITH_PEOPLE, {"id": gid("Order", order)})
    assert "errors" not in body
    data = body["data"]["order"]
    assert data["email"] == "anna@example.is" and data["phone"] == "+3545551234"
    assert data["customer"]["defaultEmailAddress"] == {"emailAddress": "anna@example.is"}
    assert data["customer"]["email"] == "anna@example.is"  # deprecated, still served
    assert data["billingAddress"]["company"] == "1203894569" and data["billingAddress"]["address1"] == "Laugavegur 7"


def test_without_level_2_approval_every_personal_field_is_null_with_an_access_denied_error(shopify):
    shopify.create_shop(SHOP, protected_customer_data=False)
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    body = ask(shopify, ORDER_WITH_PEOPLE, {"id": gid("Order", order)})
    data = body["data"]["order"]
    # Level 1 stays: ids, the order, its money and lines
    assert data["id"] == gid("Order", order) and data["name"] == "#1001"
    assert data["totalPriceSet"]["shopMoney"]["amount"] == "5000"
    assert data["lineItems"]["nodes"] == [{"sku": "BOLUR-M", "quantity": 2}]
    assert data["customer"]["id"].startswith("gid://shopify/Customer/")
    # Level 2 is null: names, e-mail, phone, every part of an address but its country
    assert data["email"] is None and data["phone"] is None
    assert {k: v for k, v in data["customer"].items() if k != "id"} == {
        "email": None, "firstName": None, "lastName": None, "phone": None, "defaultEmailAddress": None}
    billing = data["billingAddress"]
    assert {k for k, v in billing.items() if v is not None} == {"country", "countryCodeV2"}
    assert billing["countryCodeV2"] == "IS"
    assert data["shippingAddress"] == {"address1": None, "zip": None, "countryCodeV2": "IS"}
    # one error per withheld field, at its full path, in Shopify's words
    errors = body["errors"]
    paths = [tuple(e["path"]) for e in errors]
    assert ("order", "email") in paths and ("order", "customer", "firstName") in paths
    assert ("order", "customer", "defaultEmailAddress") in paths
    assert ("order", "billingAddress", "company") in paths and ("order", "shippingAddress", "zip") in paths
    assert ("order", "billingAddress", "countryCodeV2") not in paths
    assert len(paths) == 2 + 5 + 14 + 2
    by_path = {tuple(e["path"]): e for e in errors}
    assert by_path[("order", "email")]["message"] == DENIED.format("Order")
    assert by_path[("order", "customer", "firstName")]["message"] == DENIED.format("Customer")
    assert by_path[("order", "billingAddress", "city")]["message"] == DENIED.format("MailingAddress")
    assert all(e["extensions"] == {"code": "ACCESS_DENIED"} and e["locations"] for e in errors)


def test_withholding_applies_to_any_query_shape(shopify):
    shopify.create_shop(SHOP, protected_customer_data=False)
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    ret = shopify.return_open(order, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
    refund = shopify.refund(order, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
    query = """fragment Who on Order { email customer { lastName } }
    query($ids: [ID!]!, $r: ID!) {
      nodes(ids: $ids) { ... on Order { ...Who } }
      refund(id: $r) { totalRefundedSet { shopMoney { amount } } order { ...Who billingAddress { zip } } }
      orders(first: 5) { edges { node { ...Who } } }
    }"""
    body = ask(shopify, query, {"ids": [gid("Order", order)], "r": gid("Refund", refund)})
    assert body["data"]["refund"]["totalRefundedSet"]["shopMoney"]["amount"] == "2500"
    assert body["data"]["nodes"] == [{"email": None, "customer": {"lastName": None}}]
    assert body["data"]["orders"]["edges"][0]["node"] == {"email": None, "customer": {"lastName": None}}
    assert sorted(tuple(e["path"]) for e in body["errors"]) == sorted([
        ("nodes", 0, "email"), ("nodes", 0, "customer", "lastName"),
        ("refund", "order", "email"), ("refund", "order", "customer", "lastName"),
        ("refund", "order", "billingAddress", "zip"),
        ("orders", "edges", 0, "node", "email"), ("orders", "edges", 0, "node", "customer", "lastName")])
    # returns and refunds themselves carry nothing personal
    returns = ask(shopify, "query($id: ID!) { return(id: $id) { name status returnLineItems(first: 5) { nodes { quantity } } } }",
                  {"id": gid("Return", ret)})
    assert "errors" not in returns and returns["data"]["return"]["status"] == "OPEN"


def test_a_withheld_non_null_field_nulls_its_parent_as_graphql_does(shopify):
    """Customer.displayName and MailingAddress.formatted are non-null: the null climbs to the
    nearest nullable parent (the harsher guess: Shopify publishes no exception)."""
    shopify.create_shop(SHOP, protected_customer_data=False)
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    body = ask(shopify, "query($id: ID!) { order(id: $id) { name customer { id displayName } "
                        "billingAddress { countryCodeV2 formatted } } }", {"id": gid("Order", order)})
    assert body["data"]["order"] == {"name": "#1001", "customer": None, "billingAddress": None}
    assert [e["path"] for e in body["errors"]] == [["order", "customer", "displayName"],
                                                   ["order", "billingAddress", "formatted"]]


def test_approval_can_change_later_and_through_the_control_api(shopify):
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    query = "query($id: ID!) { order(id: $id) { email } }"
    assert ask(shopify, query, {"id": gid("Order", order)})["data"]["order"]["email"] == "anna@example.is"
    shopify.store.shop(SHOP).protected_customer_data = False
    assert ask(shopify, query, {"id": gid("Order", order)})["data"]["order"]["email"] is None
    base = f"{shopify.url}/_control"
    resp = requests.post(f"{base}/shops/{SHOP}/protected_customer_data", json={"approved": True}, timeout=5)
    assert resp.json()["protected_customer_data"] is True
    assert ask(shopify, query, {"id": gid("Order", order)})["data"]["order"]["email"] == "anna@example.is"
    made = requests.post(f"{base}/shops", json={"shop": OTHER_SHOP, "protected_customer_data": False}, timeout=5)
    assert made.status_code == 201 and made.json()["protected_customer_data"] is False
    assert shopify.store.shop(OTHER_SHOP).protected_customer_data is False


def test_webhook_payloads_are_redacted_without_approval(shopify):
    shopify.create_shop(SHOP, protected_customer_data=False)
    order = shopify.create_order(SHOP, PRIVATE_ORDER)
    shopify.pay(order, "100")
    updated = next(e for e in shopify.outbox if e.topic == "orders/updated").payload
    assert updated["email"] is None and updated["contact_email"] is None
    assert updated["customer"]["first_name"] is None and updated["customer"]["id"] == order.customer_id
    assert updated["customer"]["default_address"]["address1"] is None
    assert updated["billing_address"]["company"] is None and updated["billing_address"]["country_code"] == "IS"
    assert updated["name"] == "#1001" and updated["total_price"] == "5000"


# --- test orders ----------------------------------------------------------------------------

def test_a_test_order_is_marked_everywhere_and_searchable(shopify):
    real = shopify.create_order(SHOP, ONE_LINE_ORDER)
    test = shopify.create_order(SHOP, {**ONE_LINE_ORDER, "test": True, "payment": {"status": "success"}})
    assert (real.test, test.test) == (False, True) and test.gateway == "bogus"
    assert shopify.create_order(SHOP, {**ONE_LINE_ORDER, "test": True}).gateway == "shopify_payments"  # given
    shopify.refund(test, None, [{"sku": "BOLUR-M", "quantity": 1}])
    body = ask(shopify, """query($id: ID!) { order(id: $id) { test paymentGatewayNames transactions { test gateway } }
                           real: orders(first: 10, query: "test:false") { nodes { name } }
                           fake: orders(first: 10, query: "test:true") { nodes { name } } }""",
               {"id": gid("Order", test)})
    data = body["data"]
    assert data["order"]["test"] is True and data["order"]["paymentGatewayNames"] == ["bogus"]
    assert data["order"]["transactions"] == [{"test": True, "gateway": "bogus"}] * 2
    assert [n["name"] for n in data["real"]["nodes"]] == ["#1001"]
    assert [n["name"] for n in data["fake"]["nodes"]] == ["#1002", "#1003"]
    events = {e.topic: e.payload for e in shopify.store.drain()}
    assert events["orders/updated"]["test"] is True
    assert events["order_transactions/create"]["test"] is True
    assert [t["test"] for t in events["refunds/create"]["transactions"]] == [True]


# --- the 60-day window and read_all_orders ----------------------------------------------------

OLD_ORDER_QUERY = """query($o: ID!, $r: ID!, $f: ID!, $ids: [ID!]!) {
  order(id: $o) { name }
  return(id: $r) { name }
  refund(id: $f) { id }
  node(id: $o) { id }
  nodes(ids: $ids) { id }
  orders(first: 10) { nodes { name } }
}"""


def test_a_new_shop_is_granted_the_requested_scopes_but_read_all_orders(shopify):
    assert app_toml.requested_scopes() == ["read_orders", "read_all_orders", "read_returns"]
    resp = post_token(shopify, exchange(shopify.id_token(SHOP)))
    assert resp.json()["scope"] == "read_orders,read_returns"
    assert shopify.store.shop(SHOP).granted_scopes == ["read_orders", "read_returns"]
    scopes = ask(shopify, "{ currentAppInstallation { accessScopes { handle } } }")
    assert scopes["data"]["currentAppInstallation"]["accessScopes"] == [{"handle": "read_orders"},
                                                                        {"handle": "read_returns"}]


def test_orders_older_than_60_days_are_invisible_without_read_all_orders(shopify):
    shopify.clock = FakeClock()
    old = shopify.create_order(SHOP, {**ONE_LINE_ORDER, "age_days": 70})
    at_a_date = shopify.create_order(SHOP, {**ONE_LINE_ORDER, "created_at": "2026-08-01T12:00:00Z"})
    new = shopify.create_order(SHOP, {**ONE_LINE_ORDER, "age_days": 59})
    assert old.created_at == datetime(2026, 9, 14, 10, 0, tzinfo=timezone.utc)
    assert old.sale.created_at == old.created_at and at_a_date.created_at.day == 1
    ret = shopify.return_open(old, "R1", [{"sku": "BOLUR-M", "quantity": 1}])   # returns come late
    refund = shopify.refund(old, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
    ids = {"o": gid("Order", old), "r": gid("Return", ret), "f": gid("Refund", refund),
           "ids": [gid("Order", old), gid("Order", new)]}
    data = ask(shopify, OLD_ORDER_QUERY, ids)["data"]
    assert data["order"] is None and data["return"] is None and data["refund"] is None and data["node"] is None
    assert data["nodes"] == [None, {"id": gid("Order", new)}]
    assert [n["name"] for n in data["orders"]["nodes"]] == ["#1003"]
    # the webhooks still come (they are about the return, which is new)
    assert {e.topic for e in shopify.outbox} >= {"returns/approve", "refunds/create"}

    shopify.store.drain()
    event = shopify.grant_scopes(SHOP, "read_all_orders")
    assert event.topic == "app/scopes_update"
    assert event.payload == {"id": event.payload["id"], "previous": ["read_orders", "read_returns"],
                             "current": ["read_orders", "read_returns", "read_all_orders"],
                             "updated_at": "2026-11-23T10:00:00.000Z", "shop_id": shopify.store.shop(SHOP).id}
    assert shopify.grant_scopes(SHOP, ["read_all_orders"]) is None   # nothing new, nothing sent
    data = ask(shopify, OLD_ORDER_QUERY, ids)["data"]
    assert data["order"] == {"name": "#1001"} and data["return"] == {"name": "#1001-R1"}
    assert [n["name"] for n in data["orders"]["nodes"]] == ["#1002", "#1001", "#1003"]   # by processedAt


def test_an_order_drops_out_of_the_window_as_time_passes(shopify):
    clock = shopify.clock = FakeClock()
    order = shopify.create_order(SHOP, ONE_LINE_ORDER)
    query = "query($id: ID!) { order(id: $id) { name } }"
    clock.advance(days=59, hours=23)
    assert ask(shopify, query, {"id": gid("Order", order)})["data"]["order"] == {"name": "#1001"}
    clock.advance(hours=1, minutes=1)
    assert ask(shopify, query, {"id": gid("Order", order)})["data"]["order"] is None


def test_token_responses_report_the_shops_grant(shopify):
    first = post_token(shopify, exchange(shopify.id_token(SHOP))).json()
    assert first["scope"] == "read_orders,read_returns"
    shopify.grant_scopes(SHOP, "read_all_orders")
    refreshed = post_token(shopify, credentials(grant_type="refresh_token", refresh_token=first["refresh_token"]))
    assert refreshed.json()["scope"] == "read_orders,read_returns,read_all_orders"
    code = shopify.authorization_code(SHOP)
    assert post_token(shopify, credentials(code=code)).json()["scope"] == "read_orders,read_returns,read_all_orders"
    other = post_token(shopify, exchange(shopify.id_token(OTHER_SHOP)), OTHER_SHOP).json()
    assert other["scope"] == "read_orders,read_returns"
    base = f"{shopify.url}/_control"
    granted = requests.post(f"{base}/shops/{OTHER_SHOP}/scopes", json={"grant": ["read_all_orders"]}, timeout=5)
    assert granted.json()["granted_scopes"] == ["read_orders", "read_returns", "read_all_orders"]


def test_order_times_are_checked(shopify):
    with pytest.raises(StoreError, match="not both"):
        shopify.create_order(SHOP, {**ONE_LINE_ORDER, "age_days": 3, "created_at": "2026-01-01T00:00:00Z"})
    with pytest.raises(StoreError, match="future"):
        shopify.create_order(SHOP, {**ONE_LINE_ORDER, "age_days": -1})
    with pytest.raises(StoreError, match="ISO 8601"):
        shopify.create_order(SHOP, {**ONE_LINE_ORDER, "created_at": "yesterday"})


# --- webhook subscriptions from shopify.app.toml ------------------------------------------------

def test_only_the_tomls_topics_are_delivered(shopify, recorder):
    toml_topics = {t for s in app_toml.subscriptions() if not s.compliance for t in s.topics}
    assert "orders/updated" not in toml_topics and "app/scopes_update" in toml_topics
    order = shopify.create_order(SHOP, ONE_LINE_ORDER)
    shopify.pay(order, "100")
    shopify.grant_scopes(SHOP, "read_all_orders")
    shopify.compliance_request(SHOP, "shop/redact")
    shopify.deliver()
    sent = [(r["path"], r["headers"]["X-Shopify-Topic"]) for r in recorder.received]
    assert sent == [("/webhooks", "order_transactions/create"), ("/webhooks", "app/scopes_update"),
                    ("/webhooks/compliance", "shop/redact")]
    assert [e.topic for e in shopify.unsubscribed] == ["orders/updated"]
    assert shopify.outbox == []


def test_subscriptions_can_be_overridden_and_cut_payloads(shopify, recorder):
    shopify.subscriptions = ["orders/updated"]
    order = shopify.create_order(SHOP, ONE_LINE_ORDER)
    shopify.pay(order, "100")
    shopify.deliver()
    assert [r["headers"]["X-Shopify-Topic"] for r in recorder.received] == ["orders/updated"]
    assert [e.topic for e in shopify.unsubscribed] == ["order_transactions/create"]

    recorder.received.clear()
    shopify.subscriptions = [{"topics": ["orders/updated", "refunds/create"],
                              "include_fields": ["id", "updated_at", "line_items.sku", "refund_line_items.quantity"]}]
    shopify.refund(order, None, [{"sku": "BOLUR-M", "quantity": 1}])
    shopify.deliver()
    bodies = {r["headers"]["X-Shopify-Topic"]: r["body"] for r in recorder.received}
    updated = json.loads(bodies["orders/updated"])
    assert updated == {"id": order.id, "updated_at": updated["updated_at"], "line_items": [{"sku": "BOLUR-M"}]}
    assert json.loads(bodies["refunds/create"]) == {"id": order.refunds[0].id, "refund_line_items": [{"quantity": 1}]}
    assert recorder.received[0]["headers"]["X-Shopify-Hmac-Sha256"] == sign(recorder.received[0]["body"], API_SECRET)

    shopify.reset()   # back to the toml's subscriptions
    assert "orders/updated" not in {t for s in shopify.subscriptions for t in s.topics}


def test_identical_cut_payloads_are_debounced(shopify, recorder):
    shopify.subscriptions = [{"topics": ["order_transactions/create"], "include_fields": ["order_id"]}]
    order = shopify.create_order(SHOP, ONE_LINE_ORDER)
    shopify.pay(order, "100")
    shopify.pay(order, "200")
    shopify.deliver(duplicate=2)
    assert len(recorder.received) == 2   # the first event twice (a duplicate delivery), the second debounced
    assert len({r["headers"]["X-Shopify-Event-Id"] for r in recorder.received}) == 1
    assert [e.topic for e in shopify.debounced] == ["order_transactions/create"]


def test_the_constructor_takes_subscriptions(recorder):
    standin = ShopifyStandin(API_KEY, API_SECRET, subscriptions=["returns/close"])
    try:
        standin.webhook_url = recorder.url + "/webhooks"
        order = standin.create_order(SHOP, ONE_LINE_ORDER)
        standin.return_open(order, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
        standin.return_close(order, "R1")
        assert [r["topic"] for r in standin.deliver()] == ["returns/close"]
        standin.reset()
        assert [s.topics for s in standin.subscriptions] == [frozenset({"returns/close"})]
    finally:
        standin.stop()


# --- large orders -----------------------------------------------------------------------------

LINE_FIELDS = "pageInfo { hasNextPage endCursor } nodes { id }"


def pages(shopify, query: str, path, variables: dict, size: int) -> list[list[str]]:
    """Walk a connection page by page; `path` leads from data to the connection."""
    out, after = [], None
    while True:
        body = ask(shopify, query, {**variables, "first": size, "after": after})
        assert "errors" not in body, body["errors"]
        conn = body["data"]
        for key in path:
            conn = conn[key]
        out.append([n["id"] for n in conn["nodes"]])
        if not conn["pageInfo"]["hasNextPage"]:
            return out
        after = conn["pageInfo"]["endCursor"]


def test_a_large_order_pages_every_connection(shopify):
    shopify.max_query_cost = 100_000
    skus = [f"SKU-{n:02}" for n in range(1, 61)]
    order = shopify.create_order(SHOP, {"lines": [{"sku": s, "price": "1000", "quantity": 2, "tax_rate": "24"} for s in skus]})
    ret = shopify.return_open(order, "R1", [{"sku": s, "quantity": 1} for s in skus[:30]],
                              [{"sku": f"EX-{n:02}", "price": "500", "quantity": 1, "tax_rate": "24"} for n in range(12)])
    big = shopify.refund(order, "R1", [{"sku": s, "quantity": 1} for s in skus[:30]])
    for sku in skus[30:] + skus[30:34]:
        shopify.refund(order, None, [{"sku": sku, "quantity": 1}])
    for _ in range(34):
        shopify.pay(order, "1")
    for label, sku in (("R2", "SKU-35"), ("R3", "SKU-36")):
        shopify.return_open(order, label, [{"sku": sku, "quantity": 1}])
    assert (len(order.line_items), len(ret.lines), len(order.refunds), len(order.transactions)) == (72, 30, 35, 70)

    o = {"id": gid("Order", order)}
    line_pages = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ order(id: $id) {{ "
                                f"lineItems(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                       ["order", "lineItems"], o, 25)
    assert [len(p) for p in line_pages] == [25, 25, 22]
    assert sum(line_pages, []) == [gid("LineItem", li) for li in order.line_items]

    r = {"id": gid("Return", ret)}
    rli = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ return(id: $id) {{ "
                         f"returnLineItems(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                ["return", "returnLineItems"], r, 7)
    assert [len(p) for p in rli] == [7, 7, 7, 7, 2] and len(set(sum(rli, []))) == 30
    eli = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ return(id: $id) {{ "
                         f"exchangeLineItems(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                ["return", "exchangeLineItems"], r, 5)
    assert [len(p) for p in eli] == [5, 5, 2]

    f = {"id": gid("Refund", big)}
    rfl = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ refund(id: $id) {{ "
                         f"refundLineItems(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                ["refund", "refundLineItems"], f, 8)
    assert [len(p) for p in rfl] == [8, 8, 8, 6]
    rtx = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ refund(id: $id) {{ "
                         f"transactions(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                ["refund", "transactions"], f, 1)
    assert rtx == [[gid("OrderTransaction", big.transactions[0])]]
    returns = pages(shopify, f"query($id: ID!, $first: Int, $after: String) {{ order(id: $id) {{ "
                             f"returns(first: $first, after: $after) {{ {LINE_FIELDS} }} }} }}",
                    ["order", "returns"], o, 2)
    assert [len(p) for p in returns] == [2, 1]

    # the plain lists: everything without `first`, the first N with it
    body = ask(shopify, """query($id: ID!) { order(id: $id) {
        refunds { id } transactions { id }
        few: refunds(first: 5) { id } fewTx: transactions(first: 3) { id } } }""", o)
    data = body["data"]["order"]
    assert len(data["refunds"]) == 35 and len(data["transactions"]) == 70
    assert [x["id"] for x in data["refunds"]] == [gid("Refund", x) for x in order.refunds]
    assert len(data["few"]) == 5 and len(data["fewTx"]) == 3
    totals = ask(shopify, "query($id: ID!) { order(id: $id) { totalRefundedSet { shopMoney { amount } } } }", o)
    assert totals["data"]["order"]["totalRefundedSet"]["shopMoney"]["amount"] == str(30 * 1000 + 34 * 1000)
