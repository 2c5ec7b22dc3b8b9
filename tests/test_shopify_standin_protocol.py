"""The Shopify stand-in's protocol edges (docs/SHOPIFY_MODEL.md, "Bulk operations, errors and
retired tokens"): bulk query operations and their JSONL, injected GraphQL and HTTP errors, the
end of non-expiring offline tokens, and refresh-token death."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from shopify_app.sandbox.shopify.bulk import check, concurrency_limit
from shopify_app.sandbox.shopify.oauth import OFFLINE_TOKEN_TYPE
from shopify_app.sandbox.shopify.standin import NON_EXPIRING_REFUSED
from tests.helpers import OTHER_SHOP, SHOP
from tests.test_shopify_standin import (
    FakeClock, INVALID_TOKEN, ONE_LINE_ORDER, credentials, exchange, install, post_token,
)

RUN = """mutation Run($query: String!, $group: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $group) { bulkOperation { id status } userErrors { field message code } }
}"""
FIELDS = "id status errorCode createdAt completedAt objectCount fileSize url partialDataUrl query rootObjectCount type"
CURRENT = f"{{ currentBulkOperation(type: QUERY) {{ {FIELDS} }} }}"
BY_NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on BulkOperation {{ {FIELDS} }} }} }}"
ORDERS_WITH_REFUNDS = """{
  orders(query: "financial_status:partially_refunded") {
    edges { node { id name
      refunds { id createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
      lineItems(first: 1) { edges { node { id sku quantity } } }
      returns { edges { node { id name status } } }
    } }
  }
}"""


def call(shopify, query: str, variables: dict | None = None, *, token: str, shop: str = SHOP,
         version: str = "2026-10") -> requests.Response:
    return requests.post(f"{shopify.shop_url(shop)}/admin/api/{version}/graphql.json",
                         json={"query": query, "variables": variables or {}},
                         headers={"X-Shopify-Access-Token": token}, timeout=5)


def gql(shopify, query: str, variables: dict | None = None, **kwargs) -> dict:
    resp = call(shopify, query, variables, **kwargs)
    assert resp.status_code == 200, resp.text
    return resp.json()


def run_bulk(shopify, query: str, *, token: str, group: bool = False, **kwargs) -> dict:
    return gql(shopify, RUN, {"query": query, "group": group}, token=token, **kwargs)


def lines_of(url: str) -> list[dict]:
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/jsonl"
    assert resp.text.endswith("\n") and "gid:\\/\\/shopify\\/" in resp.text  # Shopify escapes "/"
    return [json.loads(line) for line in resp.text.splitlines()]


@pytest.fixture
def token(shopify):
    shopify.create_shop(SHOP)
    return install(shopify)


def shop_with_refunds(shopify, n: int = 3):
    """`n` orders, each with a return (R1) and a refund of one of its two shirts."""
    orders = []
    for _ in range(n):
        order = shopify.create_order(SHOP, ONE_LINE_ORDER)
        shopify.return_open(order, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
        shopify.refund(order, "R1", [{"sku": "BOLUR-M", "quantity": 1}])
        orders.append(order)
    shopify.create_order(SHOP, ONE_LINE_ORDER)  # paid, nothing refunded: the search leaves it out
    return orders


# --- bulk operations ---------------------------------------------------------------------

def test_a_bulk_query_reads_every_order_into_jsonl_with_parent_ids(shopify, token):
    orders = shop_with_refunds(shopify)
    answer = run_bulk(shopify, ORDERS_WITH_REFUNDS, token=token)
    created = answer["data"]["bulkOperationRunQuery"]
    assert created["userErrors"] == [] and created["bulkOperation"]["status"] == "CREATED"
    assert created["bulkOperation"]["id"].startswith("gid://shopify/BulkOperation/")
    assert (answer["extensions"]["cost"]["requestedQueryCost"], answer["extensions"]["cost"]["actualQueryCost"]) == (10, 10)

    op = gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]
    assert op["id"] == created["bulkOperation"]["id"] and op["status"] == "COMPLETED" and op["type"] == "QUERY"
    assert op["query"] == ORDERS_WITH_REFUNDS and op["errorCode"] is None and op["partialDataUrl"] is None
    assert op["url"] == f"{shopify.url}/bulk/{op['id'].rsplit('/', 1)[1]}.jsonl" and op["completedAt"]
    lines = lines_of(op["url"])
    assert (op["objectCount"], op["rootObjectCount"]) == (str(len(lines)), "3")
    assert op["fileSize"] == str(len(requests.get(op["url"], timeout=5).content))

    # ungrouped (the default): every order first, then the lines hanging under them
    roots = lines[:3]
    assert [r["id"] for r in roots] == [f"gid://shopify/Order/{o.id}" for o in orders]
    assert all("__parentId" not in r and "lineItems" not in r and "returns" not in r for r in roots)
    refund = roots[0]["refunds"][0]          # a list, not a connection: it stays inside its order
    assert refund["id"] == f"gid://shopify/Refund/{orders[0].refunds[0].id}"
    assert refund["totalRefundedSet"]["shopMoney"]["currencyCode"] == "ISK"
    children = lines[3:]
    assert all(c["__parentId"] in {r["id"] for r in roots} and list(c)[-1] == "__parentId" for c in children)
    items = [c for c in children if c["id"].startswith("gid://shopify/LineItem/")]
    returns = [c for c in children if c["id"].startswith("gid://shopify/Return/")]
    assert len(items) == 3 and len(returns) == 3          # lineItems(first: 1) is read whole anyway
    assert returns[0] == {"id": f"gid://shopify/Return/{orders[0].returns[0].id}", "name": "#1001-R1",
                          "status": "OPEN", "__parentId": roots[0]["id"]}


def test_grouped_objects_put_children_right_after_their_parent(shopify, token):
    shop_with_refunds(shopify, 2)
    run_bulk(shopify, ORDERS_WITH_REFUNDS, token=token, group=True)
    lines = lines_of(gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]["url"])
    kinds = [line["id"].split("/")[-2] for line in lines]
    assert kinds == ["Order", "LineItem", "Return", "Order", "LineItem", "Return"]
    assert lines[1]["__parentId"] == lines[2]["__parentId"] == lines[0]["id"]


def test_the_orders_search_works_inside_a_bulk_query(shopify):
    clock = FakeClock()
    shopify.clock = clock
    shopify.expires_in = 30 * 24 * 3600  # the test's clock runs days ahead of the token's hour
    shopify.create_shop(SHOP)
    token = install(shopify)
    old = shopify.create_order(SHOP, ONE_LINE_ORDER)
    clock.advance(days=2)
    new = shopify.create_order(SHOP, ONE_LINE_ORDER)
    since = (clock.now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run_bulk(shopify, f'{{ orders(query: "updated_at:>{since}") {{ edges {{ node {{ id }} }} }} }}', token=token)
    lines = lines_of(gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]["url"])
    assert lines == [{"id": f"gid://shopify/Order/{new.id}"}] and old.id != new.id


@pytest.mark.parametrize("query, message", [
    ("", "Invalid bulk query: syntax error, unexpected end of file"),
    ("{ shop { name } }", "Bulk queries must contain at least one connection."),
    ("{ orders { nodes { id } } }",
     "All connection fields in a bulk query must select their contents using 'edges' > 'node', e.g: "
     "'orders { edges { node {'. Selecting via 'nodes' is not supported. Invalid connection fields: 'orders'."),
    ("mutation { bulkOperationCancel(id: \"gid://shopify/BulkOperation/1\") { userErrors { message } } }",
     "Invalid operation type. Only `query` operations are supported."),
    ("{ orders { edges { node { id returns { edges { node { id refunds { edges { node { id } } } } } } } } } }",
     "Bulk queries cannot contain connections with a nesting depth greater than 2."),
    ("{ orders { edges { node { name lineItems { edges { node { id } } } } } } }",
     "The parent 'node' field for a nested connection must select the 'id' field without an alias and must be "
     "of 'ID' return type. Connection fields without 'id': orders."),
    ("{ orders { edges { node { id refunds { id refundLineItems { edges { node { id } } } } } } } }",
     "Queries that contain a connection field within a list field are not currently supported."),
    ("{ orders { edges { node { id a: lineItems { edges { node { id } } } b: lineItems { edges { node { id } } } "
     "c: returns { edges { node { id } } } d: returns { edges { node { id } } } e: shippingLines { edges { node { id } } } "
     "} } } }", "Bulk queries cannot contain more than 5 connections."),
])
def test_bulk_queries_are_checked_as_shopify_checks_them(shopify, token, query, message):
    payload = run_bulk(shopify, query, token=token)["data"]["bulkOperationRunQuery"]
    assert payload["bulkOperation"] is None
    assert payload["userErrors"][0] == {"field": ["query"], "message": message, "code": "INVALID"}


def test_a_top_level_node_field_is_refused_with_both_errors():
    _, _, errors = check('{ node(id: "gid://shopify/Order/1") { id } }')
    assert [e["message"] for e in errors] == ["Bulk queries cannot contain a top level `node` field.",
                                              "Bulk queries must contain at least one connection."]


def test_five_bulk_queries_run_at_once_from_2026_01_and_one_before(shopify, token):
    assert (concurrency_limit("2026-10"), concurrency_limit("2026-01"), concurrency_limit("2025-10")) == (5, 5, 1)
    shopify.bulk_completion_delay = 3600
    query = "{ orders { edges { node { id } } } }"
    ids = [run_bulk(shopify, query, token=token)["data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
           for _ in range(5)]
    refused = run_bulk(shopify, query, token=token)["data"]["bulkOperationRunQuery"]
    assert refused == {"bulkOperation": None, "userErrors": [{
        "field": None, "code": "OPERATION_IN_PROGRESS",
        "message": f"A bulk query operation for this app and shop is already in progress: {', '.join(ids)}."}]}
    assert gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]["status"] == "RUNNING"
    shopify.finish_bulk(ids[0])
    assert run_bulk(shopify, query, token=token)["data"]["bulkOperationRunQuery"]["userErrors"] == []
    shopify.finish_bulk()
    first = run_bulk(shopify, query, token=token, version="2025-10")["data"]["bulkOperationRunQuery"]
    second = run_bulk(shopify, query, token=token, version="2025-10")["data"]["bulkOperationRunQuery"]
    assert first["userErrors"] == [] and second["userErrors"][0]["code"] == "OPERATION_IN_PROGRESS"


def test_status_follows_the_clock_and_the_file_expires_after_seven_days(shopify):
    clock = FakeClock()
    shopify.clock = clock
    shopify.expires_in = 30 * 24 * 3600  # the test's clock runs days ahead of the token's hour
    shopify.create_shop(SHOP)
    token = install(shopify)
    shopify.create_order(SHOP, ONE_LINE_ORDER)
    shopify.bulk_completion_delay = 30
    gid = run_bulk(shopify, "{ orders { edges { node { id } } } }", token=token)[
        "data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    running = gql(shopify, BY_NODE, {"id": gid}, token=token)["data"]["node"]
    assert (running["status"], running["url"], running["objectCount"], running["completedAt"]) == ("RUNNING", None, "0", None)
    clock.advance(seconds=30)
    done = gql(shopify, "query($id: ID!) { bulkOperation(id: $id) { status url completedAt } }", {"id": gid},
               token=token)["data"]["bulkOperation"]
    assert done["status"] == "COMPLETED" and done["completedAt"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(lines_of(done["url"])) == 1
    listed = gql(shopify, '{ bulkOperations(first: 5, query: "status:COMPLETED") { nodes { id } } }', token=token)
    assert listed["data"]["bulkOperations"]["nodes"] == [{"id": gid}]

    shopify.create_shop(OTHER_SHOP)
    other = install(shopify, OTHER_SHOP)
    assert gql(shopify, BY_NODE, {"id": gid}, token=other, shop=OTHER_SHOP)["data"]["node"] is None
    assert gql(shopify, CURRENT, token=other, shop=OTHER_SHOP)["data"]["currentBulkOperation"] is None

    clock.advance(days=7)
    assert gql(shopify, BY_NODE, {"id": gid}, token=token)["data"]["node"]["status"] == "EXPIRED"
    assert requests.get(done["url"], timeout=5).status_code == 404


def test_a_bulk_operation_can_be_made_to_fail(shopify, token):
    for _ in range(4):
        shopify.create_order(SHOP, ONE_LINE_ORDER)
    shopify.fail_next_bulk(1, "INTERNAL_SERVER_ERROR")
    run_bulk(shopify, "{ orders { edges { node { id name } } } }", token=token)
    op = gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]
    assert (op["status"], op["errorCode"], op["url"], op["completedAt"], op["fileSize"]) == (
        "FAILED", "INTERNAL_SERVER_ERROR", None, None, None)
    assert len(lines_of(op["partialDataUrl"])) == 2 and op["objectCount"] == "2"

    shopify.fail_next_bulk(1, "ACCESS_DENIED")
    run_bulk(shopify, "{ orders { edges { node { id } } } }", token=token)
    op = gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]
    assert (op["status"], op["errorCode"], op["partialDataUrl"]) == ("FAILED", "ACCESS_DENIED", None)

    shopify.bulk_completion_delay = 3600
    gid = run_bulk(shopify, "{ orders { edges { node { id } } } }", token=token)[
        "data"]["bulkOperationRunQuery"]["bulkOperation"]["id"]
    shopify.fail_bulk(gid, "TIMEOUT", partial=False)
    shopify.finish_bulk(gid)
    op = gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"]
    assert (op["status"], op["errorCode"], op["partialDataUrl"]) == ("FAILED", "TIMEOUT", None)
    with pytest.raises(ValueError):
        shopify.fail_next_bulk(1, "NOT_A_CODE")


def test_other_mutations_are_still_refused(shopify, token):
    body = gql(shopify, 'mutation { returnClose(id: "gid://shopify/Return/1") { userErrors { message } } }', token=token)
    assert body["errors"][0]["extensions"]["code"] == "operationNotSupported" and "data" not in body
    mixed = gql(shopify, 'mutation { bulkOperationRunQuery(query: "{ orders { edges { node { id } } } }") '
                         '{ userErrors { message } } returnClose(id: "gid://shopify/Return/1") { userErrors { message } } }',
                token=token)
    assert mixed["errors"][0]["extensions"]["code"] == "operationNotSupported"
    assert gql(shopify, CURRENT, token=token)["data"]["currentBulkOperation"] is None


# --- injected and natural errors -------------------------------------------------------------

def test_graphql_errors_can_be_injected_with_shopifys_words(shopify, token):
    shopify.fail_next_graphql(1, "ACCESS_DENIED", shop=SHOP)
    shopify.fail_next_graphql(1, "INTERNAL_SERVER_ERROR", shop=SHOP)
    denied = gql(shopify, "{ shop { name } }", token=token)
    assert denied == {"errors": [{
        "message": "Access denied for orders field. Required access: `read_orders` access scope.",
        "extensions": {"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes",
                       "requiredAccess": "`read_orders` access scope."},
        "path": ["orders"]}], "data": None}
    broken = gql(shopify, "{ shop { name } }", token=token)
    error = broken["errors"][0]
    assert "data" not in broken and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"] == ("Internal error. Looks like something went wrong on our end.\n"
                                f"Request ID: {error['extensions']['requestId']} (include this in support requests).")
    assert gql(shopify, "{ shop { name } }", token=token)["data"]["shop"]["name"]


@pytest.mark.parametrize("status, errors", [
    (402, "Unavailable Shop"), (403, "[API] This action requires merchant approval for read_orders scope."),
    (404, "Not Found"), (423, "This store is unavailable"), (401, INVALID_TOKEN),
])
def test_shop_level_http_errors_carry_shopifys_bodies(shopify, token, status, errors):
    shopify.fail_next(1, status, shop=SHOP)
    resp = call(shopify, "{ shop { name } }", token=token)
    assert (resp.status_code, resp.json()) == (status, {"errors": errors})
    assert call(shopify, "{ shop { name } }", token=token).status_code == 200


def test_natural_errors_still_arise(shopify, token):
    costly = gql(shopify, "{ orders(first: 250) { edges { node { id lineItems(first: 250) { edges { node { id } } } } } } }",
                 token=token)
    assert costly["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED" and "data" not in costly
    removed = gql(shopify, "{ orders(first: 1) { edges { node { id totalPriceV2 { amount } } } } }", token=token)
    assert removed["errors"][0]["extensions"]["code"] == "undefinedField"
    assert removed["errors"][0]["message"] == "Field 'totalPriceV2' doesn't exist on type 'Order'"


def test_the_control_api_arms_errors_and_moves_the_clock(shopify, token):
    url = shopify.url
    assert requests.post(f"{url}/_control/fail_next_graphql", json={"code": "ACCESS_DENIED", "field": "returns",
                                                                      "scope": "read_returns"}, timeout=5).ok
    denied = gql(shopify, "{ shop { name } }", token=token)["errors"][0]
    assert denied["message"] == "Access denied for returns field. Required access: `read_returns` access scope."
    assert requests.post(f"{url}/_control/fail_next", json={"status": 423, "shop": SHOP}, timeout=5).ok
    assert call(shopify, "{ shop { name } }", token=token).status_code == 423
    now = requests.post(f"{url}/_control/clock", json={"now": "2027-01-02T00:00:00Z"}, timeout=5).json()["now"]
    assert now.startswith("2027-01-02T00:00:00") and shopify.clock() == datetime(2027, 1, 2, tzinfo=timezone.utc)
    later = requests.post(f"{url}/_control/clock", json={"advance_seconds": 60}, timeout=5).json()["now"]
    assert later.startswith("2027-01-02T00:01:00")
    assert requests.post(f"{url}/_control/bulk/fail_next", json={"error_code": "TIMEOUT"}, timeout=5).ok
    assert requests.post(f"{url}/_control/bulk/fail_next", json={"error_code": "NOPE"}, timeout=5).status_code == 400
    requests.post(f"{url}/_control/clock", json={"real": True}, timeout=5)
    assert abs(shopify.clock() - datetime.now(timezone.utc)) < timedelta(seconds=5)


# --- retired tokens and dead refresh tokens -------------------------------------------------

def test_non_expiring_tokens_are_refused_from_2027_and_still_migrate(shopify, token):
    shopify.travel_to(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    old = post_token(shopify, exchange(shopify.id_token(SHOP), expiring="0")).json()["access_token"]
    assert call(shopify, "{ shop { name } }", token=old).status_code == 200
    shopify.travel_to(datetime(2027, 1, 1, tzinfo=timezone.utc))
    refused = call(shopify, "{ shop { name } }", token=old)
    assert (refused.status_code, refused.json()) == (403, {"errors": NON_EXPIRING_REFUSED})
    assert NON_EXPIRING_REFUSED.startswith("[API] Non-expiring access tokens are no longer accepted for the Admin API.")

    fresh = install(shopify)                                # expiring tokens go on working
    assert call(shopify, "{ shop { name } }", token=fresh).status_code == 200
    migrated = post_token(shopify, exchange(old, subject_token_type=OFFLINE_TOKEN_TYPE))
    assert migrated.status_code == 200 and "refresh_token" in migrated.json()
    assert call(shopify, "{ shop { name } }", token=migrated.json()["access_token"]).status_code == 200
    assert call(shopify, "{ shop { name } }", token=old).status_code == 401   # the migration killed it


def test_refresh_tokens_live_ninety_days(shopify):
    clock = FakeClock()
    shopify.clock = clock
    shopify.create_shop(SHOP)
    pair = post_token(shopify, exchange(shopify.id_token(SHOP))).json()
    assert pair["refresh_token_expires_in"] == 90 * 24 * 3600
    clock.advance(days=89, hours=23)
    renewed = post_token(shopify, credentials(grant_type="refresh_token", refresh_token=pair["refresh_token"]))
    assert renewed.status_code == 200
    clock.advance(days=90)                                  # the renewed one is 90 days old now
    dead = post_token(shopify, credentials(grant_type="refresh_token", refresh_token=renewed.json()["refresh_token"]))
    assert (dead.status_code, dead.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("action", ["expire", "revoke"])
def test_a_shops_refresh_token_can_be_killed_now(shopify, token, action):
    pair = post_token(shopify, exchange(shopify.id_token(SHOP))).json()
    if action == "expire":
        shopify.expire_refresh_token(SHOP)
    else:
        assert requests.post(f"{shopify.url}/_control/shops/{SHOP}/refresh_token/revoke", timeout=5).ok
    dead = post_token(shopify, credentials(grant_type="refresh_token", refresh_token=pair["refresh_token"]))
    assert (dead.status_code, dead.json()["error"]) == (400, "invalid_grant")
    assert call(shopify, "{ shop { name } }", token=pair["access_token"]).status_code == 200  # its hour is left
