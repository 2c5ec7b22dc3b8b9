"""Shopify bulk operations for long history reads: one query over every matching order, run by
Shopify in the background and read back as JSONL, without the per-query cost budget that live
invoicing of the same shop needs (https://shopify.dev/docs/api/usage/bulk-operations/queries).

A history job starts the operation (or finds the one it started before) and never waits for it
(a worker asleep on Shopify would hold up live invoicing): `BulkPending` leaves the history read
unfinished, and the minute's sweep asks it again, which then picks the same operation up."""
from __future__ import annotations

import json
from datetime import datetime

import requests

from .shopify_admin import ShopifyRefused, ShopifyUnavailable

RUN_MUTATION = """
mutation SkilvisBulkHistory($query: String!) {
  bulkOperationRunQuery(query: $query) { bulkOperation { id status } userErrors { field message code } }
}
"""
OPERATION_QUERY = """
query SkilvisBulkOperation($id: ID!) {
  bulkOperation(id: $id) { id status errorCode query url partialDataUrl objectCount }
}
"""
CURRENT_QUERY = """
query SkilvisCurrentBulkOperation {
  currentBulkOperation(type: QUERY) { id status errorCode query url partialDataUrl objectCount }
}
"""
# What is read of each order: enough to tell whether it has a return or a refund.
ORDERS_QUERY = """{ orders(query: %s) { edges { node {
  id legacyResourceId updatedAt displayFinancialStatus returnStatus } } } }"""
WITH_MONEY_BACK = {"PARTIALLY_REFUNDED", "REFUNDED"}


class BulkPending(Exception):
    """Shopify is still running the bulk operation; the history read is asked again later."""


def orders_with_returns_or_refunds(admin, shop: str, search: str) -> dict[int, datetime]:
    """Legacy order id → updatedAt of every order the search finds that has a return or a refund."""
    query = ORDERS_QUERY % json.dumps(search)
    operation = _ours_or_new(admin, shop, query)
    if operation["status"] in ("CREATED", "RUNNING"):   # one look now (a small shop's is done at once)
        operation = admin.graphql(shop, OPERATION_QUERY, {"id": operation["id"]})["bulkOperation"]
    if operation["status"] in ("CREATED", "RUNNING"):
        raise BulkPending(f"bulk operation {operation['id']} of {shop} is still {operation['status']}")
    if operation["status"] != "COMPLETED":
        raise ShopifyUnavailable(f"bulk operation {operation['id']} of {shop} ended {operation['status']} "
                                 f"({operation.get('errorCode')})")
    found = {}
    for node in _lines(operation.get("url")):
        if node.get("returnStatus") != "NO_RETURN" or node.get("displayFinancialStatus") in WITH_MONEY_BACK:
            found[int(node["legacyResourceId"])] = datetime.fromisoformat(node["updatedAt"])
    return found


def _ours_or_new(admin, shop: str, query: str) -> dict:
    """The shop's current query operation if it is this very query and not failed (an earlier
    run of this history read); else a new one. Shopify runs one query operation per shop."""
    current = admin.graphql(shop, CURRENT_QUERY)["currentBulkOperation"]
    if current and current.get("query") == query and current["status"] in ("CREATED", "RUNNING", "COMPLETED"):
        return current
    if current and current["status"] in ("CREATED", "RUNNING"):
        raise BulkPending(f"{shop} is running another bulk operation ({current['id']})")
    answer = admin.graphql(shop, RUN_MUTATION, {"query": query})["bulkOperationRunQuery"]
    if answer["userErrors"]:
        errors = answer["userErrors"]
        if any("already in progress" in (e.get("message") or "") for e in errors):
            raise BulkPending(f"{shop}: {errors[0]['message']}")
        raise ShopifyRefused(f"bulk operation refused by {shop}: {errors}", "shopify_query_refused")
    return answer["bulkOperation"]


def _lines(url: str | None):
    """The JSONL result (no URL: the search found nothing)."""
    if not url:
        return
    try:
        resp = requests.get(url, timeout=(5, 120), stream=True)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise ShopifyUnavailable(f"bulk result not read: {exc}") from exc
    for line in resp.iter_lines():
        if line.strip():
            yield json.loads(line)
