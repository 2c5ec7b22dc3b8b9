"""Webhook intake: verify (HMAC, headers, shop), store once, answer; the stored row is the work
request (no Redis on the request path)."""
from __future__ import annotations

import concurrent.futures

import requests

from shopify_app import db, jobqueue
from tests.conftest import API_SECRET, OLD_API_SECRET
from tests.helpers import SHOP, body_of, webhook_headers

CLOSE = {"id": 123, "admin_graphql_api_id": "gid://shopify/Return/123", "order_id": 456, "status": "closed"}


def _events():
    with db.transaction() as conn:
        return conn.execute("SELECT * FROM webhook_events ORDER BY id").fetchall()


def _queued(redis):
    return [job for q in jobqueue.queues(redis) for job in q.job_ids]


def test_valid_hmac_is_stored_as_the_work_request_without_touching_redis(client, redis):
    body = body_of(CLOSE)
    resp = client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, event_id="e1"))
    assert resp.status_code == 200
    [event] = _events()
    assert (event["shop_domain"], event["event_key"], event["topic"], event["status"]) == (SHOP, "returns/close:e1", "returns/close", "received")
    assert event["payload"] == {k: v for k, v in CLOSE.items() if k != "status"}   # the ids its handler needs
    assert _queued(redis) == []   # the dispatcher takes it from Postgres (dispatch.py)


def test_hmac_of_the_old_secret_is_accepted_during_rotation(client):
    body = body_of(CLOSE)
    assert client.post("/webhooks", data=body, headers=webhook_headers(body, OLD_API_SECRET)).status_code == 200


def test_tampered_body_is_refused_and_nothing_stored(client, redis):
    body = body_of(CLOSE)
    headers = webhook_headers(body, API_SECRET)
    resp = client.post("/webhooks", data=body.replace(b"123", b"124"), headers=headers)
    assert resp.status_code == 401
    assert _events() == [] and _queued(redis) == []


def test_missing_hmac_header_is_refused(client):
    body = body_of(CLOSE)
    headers = webhook_headers(body, API_SECRET)
    del headers["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks", data=body, headers=headers).status_code == 401
    assert _events() == []


def test_hmac_of_a_foreign_secret_is_refused(client):
    body = body_of(CLOSE)
    assert client.post("/webhooks", data=body, headers=webhook_headers(body, "not-our-secret")).status_code == 401


def test_missing_required_header_is_kept_as_rejected(client, redis):
    body = body_of(CLOSE)
    headers = webhook_headers(body, API_SECRET)
    del headers["X-Shopify-Topic"]
    resp = client.post("/webhooks", data=body, headers=headers)
    assert resp.status_code == 400
    [event] = _events()
    assert event["status"] == "rejected" and "X-Shopify-Topic" in event["error"]
    assert _queued(redis) == []


def test_invalid_shop_domain_is_rejected(client):
    body = body_of(CLOSE)
    resp = client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, shop="evil.example.com"))
    assert resp.status_code == 400
    [event] = _events()
    assert event["status"] == "rejected" and "shop domain" in event["error"]


def test_body_that_is_not_json_is_kept_and_reported(client, redis):
    body = b"{not json"
    resp = client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET))
    assert resp.status_code == 400
    [event] = _events()
    assert event["status"] == "rejected" and bytes(event["raw_body"]) == body and "JSON" in event["error"]
    assert _queued(redis) == []


def test_get_is_not_allowed(client):
    assert client.get("/webhooks").status_code == 405


def test_compliance_endpoint_checks_hmac_too(client):
    body = body_of({"shop_id": 1, "shop_domain": SHOP})
    headers = webhook_headers(body, "wrong", topic="shop/redact")
    assert client.post("/webhooks/compliance", data=body, headers=headers).status_code == 401


def test_same_webhook_five_times_gives_one_event(client, redis):
    body = body_of(CLOSE)
    for _ in range(5):
        headers = webhook_headers(body, API_SECRET, event_id="same-event")  # new webhook id each time
        assert client.post("/webhooks", data=body, headers=headers).status_code == 200
    assert len(_events()) == 1


def test_same_webhook_five_times_concurrently_gives_one_event(live_app, redis):
    body = body_of(CLOSE)

    def deliver(_):
        headers = webhook_headers(body, API_SECRET, event_id="concurrent-event")
        return requests.post(f"{live_app.url}/webhooks", data=body, headers=headers, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(deliver, range(5)))
    assert statuses == [200] * 5
    assert len(_events()) == 1


def test_a_webhook_is_taken_while_redis_is_down_and_becomes_work_once_it_is_back(client, redis, monkeypatch, run_jobs):
    from shopify_app import orders

    body = body_of(CLOSE)
    with monkeypatch.context() as patched:
        patched.setenv("REDIS_URL", "redis://127.0.0.1:1/0")   # nothing listens there
        assert client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET)).status_code == 200
    with db.transaction() as conn:   # a shop we serve, so its order is worked on
        conn.execute("INSERT INTO shops (domain) VALUES (%s) ON CONFLICT DO NOTHING", (SHOP,))
    run_jobs()
    assert _events()[0]["status"] == "processed"
    with db.transaction() as conn:
        [order] = conn.execute("SELECT id, legacy_id FROM orders").fetchall()
    assert order["legacy_id"] == 456 and not orders.is_dirty(order["id"])


def test_job_ids_are_only_letters_digits_dash_underscore():
    import pytest

    assert jobqueue.job_id("event", 42) == "event-42"
    with pytest.raises(ValueError):
        jobqueue.job_id("order", "gid://shopify/Order/1")


def test_a_signed_body_holding_a_nul_is_refused_and_kept_cut_not_a_500(client):
    body = b'{"id": 1, "order_id": 2, "note": "a\\u0000b"}'
    resp = client.post("/webhooks", data=body, headers=webhook_headers(body, API_SECRET, topic="refunds/create"))
    assert resp.status_code == 400
    [event] = _events()
    assert event["status"] == "rejected" and "NUL" in event["error"]
