"""A local Shopify: a real HTTP server (127.0.0.1, a free port, a background thread) that
behaves like Shopify for any number of shops, for the tests and the sandbox.

Shops are addressed by path. Point the app at it with
`SHOPIFY_SHOP_URL_TEMPLATE = standin.shop_url_template` (`<url>/shops/{shop}`): the Admin
API of `x.myshopify.com` is then `<url>/shops/x.myshopify.com/admin/...`.

- `POST /shops/<shop>/admin/oauth/access_token`: Shopify's token endpoint (shopify_oauth.py);
  `GET /shops/<shop>/admin/oauth/authorize` sends the browser back to the app with a code.
- `POST /shops/<shop>/admin/api/<version>/graphql.json`: the GraphQL Admin API over the
  store, with cost and throttling (shopify_graphql.py, shopify_nodes.py).
- Webhooks: every change in the store (shopify_store.py) queues Shopify's webhooks;
  `deliver()` sends them, signed, to `webhook_url` (compliance topics to
  `compliance_webhook_url`), optionally duplicated, shuffled or partly dropped.
- `/_control/...`: a small JSON API over the same Python methods, for the sandbox UI. It has
  no authentication: the server listens on 127.0.0.1 only.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

from . import shopify_nodes
from .shopify_graphql import GraphQLService
from .shopify_money import text
from .shopify_oauth import OAuthError, TokenAuthority
from .shopify_store import Event, Store, StoreError

log = logging.getLogger(__name__)

API_VERSION = "2026-10"
SCOPES = "read_orders,read_returns"
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
WEBHOOK_TIMEOUT = 5  # seconds: Shopify gives up on a webhook that is not answered in 5 s
_SHOP = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")
_DEFAULT_FAILURE_BODIES = {
    429: {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."},
    500: {"errors": "Internal Server Error"}, 502: {"errors": "Bad Gateway"},
    503: {"errors": "Service Unavailable"}, 504: {"errors": "Gateway Timeout"},
}


def sign(body: bytes, secret: str) -> str:
    """Shopify's webhook signature: base64 of HMAC-SHA256 over the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _triggered_at(moment: datetime) -> str:
    # Shopify writes nanoseconds; the clock here has microseconds.
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class ShopifyStandin:
    """The stand-in and its Python control surface. `start()` serves it; `reset()` empties it."""

    def __init__(self, client_id: str, client_secret: str, *, scopes: str = SCOPES, api_version: str = API_VERSION,
                 host: str = "127.0.0.1", port: int = 0):
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.host, self.port = host, port
        self.clock = _utc_now
        self.store = Store(clock=lambda: self.clock())
        self.oauth = TokenAuthority(client_id, client_secret, scopes, clock=lambda: self.clock())
        self.graphql = GraphQLService(lambda shop, run: shopify_nodes.root(self.store, shop, run), self.store.lock)
        self.http = requests.Session()
        self.app = self._make_app()
        self._server = None
        self._thread: threading.Thread | None = None
        self._failures_lock = threading.Lock()
        self.reset()

    # --- life ----------------------------------------------------------------------------

    def start(self) -> "ShopifyStandin":
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="shopify-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
        self.http.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def shop_url_template(self) -> str:
        return f"{self.url}/shops/{{shop}}"

    def shop_url(self, shop: str) -> str:
        return self.shop_url_template.format(shop=shop)

    def reset(self) -> None:
        """Forget everything: shops, tokens, queued and sent webhooks, counters, injected
        failures; settings (token lifetimes, bucket, clock, webhook URLs) back to defaults."""
        self.clock = _utc_now
        self.store.reset()
        self.oauth.reset()
        self.graphql.buckets.clear()
        self.graphql.maximum_available, self.graphql.restore_rate, self.graphql.max_query_cost = 2000, 100, 1000
        self.graphql.monotonic = time.monotonic
        self.webhook_url: str | None = None
        self._compliance_webhook_url: str | None = None
        self.deliveries: list[dict] = []
        self.dropped: list[Event] = []
        self.graphql_calls: Counter = Counter()
        self.graphql_requests: list[dict] = []
        with self._failures_lock:
            self._failures: list[dict] = []

    # --- settings that live in the parts ----------------------------------------------------

    expires_in = property(lambda self: self.oauth.expires_in,
                          lambda self, v: setattr(self.oauth, "expires_in", v))
    refresh_token_expires_in = property(lambda self: self.oauth.refresh_token_expires_in,
                                        lambda self, v: setattr(self.oauth, "refresh_token_expires_in", v))
    maximum_available = property(lambda self: self.graphql.maximum_available,
                                 lambda self, v: setattr(self.graphql, "maximum_available", v))
    restore_rate = property(lambda self: self.graphql.restore_rate,
                            lambda self, v: setattr(self.graphql, "restore_rate", v))
    max_query_cost = property(lambda self: self.graphql.max_query_cost,
                              lambda self, v: setattr(self.graphql, "max_query_cost", v))

    @property
    def token_requests(self) -> list[dict]:
        """Every request to the token endpoint, oldest first: `shop`, `grant` (grant type, or
        "authorization_code"), `body` (the request's fields), `status`, `response` (its JSON)."""
        return self.oauth.requests

    @property
    def outbox(self) -> list[Event]:
        return self.store.outbox

    @property
    def compliance_webhook_url(self) -> str | None:
        if self._compliance_webhook_url:
            return self._compliance_webhook_url
        return f"{self.webhook_url.rstrip('/')}/compliance" if self.webhook_url else None

    @compliance_webhook_url.setter
    def compliance_webhook_url(self, url: str | None) -> None:
        self._compliance_webhook_url = url

    # --- OAuth helpers --------------------------------------------------------------------

    def authorization_code(self, shop: str) -> str:
        """A code for the authorization-code grant: single use, valid 60 seconds."""
        return self.oauth.authorization_code(shop)

    def id_token(self, shop: str, *, user_id="1", expires_in: int = 60, secret: str | None = None,
                 alg: str = "HS256", **claim_overrides) -> str:
        """An App Bridge ID token (iss, dest, aud, sub, exp, nbf, iat, jti, sid); an override of
        None removes the claim."""
        return self.oauth.id_token(shop, user_id=user_id, expires_in=expires_in, secret=secret, alg=alg,
                                   **claim_overrides)

    def signed_query(self, params: dict, secret: str | None = None) -> dict:
        """`params` plus Shopify's `hmac` (and a `timestamp` when absent)."""
        return self.oauth.signed_query(params, secret)

    def expire_access_token(self, shop: str) -> None:
        """The shop's access token stops working now, as if its hour had passed."""
        self.oauth.expire_access_tokens(shop)

    def access_token_valid(self, shop: str, token: str | None) -> bool:
        return self.oauth.access_token_valid(shop, token)

    def uninstall(self, shop: str) -> Event | None:
        """The merchant uninstalled the app: its tokens die and app/uninstalled is queued."""
        self.oauth.revoke(shop)
        return self.store.app_uninstalled(shop)

    # --- GraphQL helpers ------------------------------------------------------------------

    def set_bucket(self, shop: str, available: float) -> None:
        """Set what is left in the shop's bucket now (0 throttles the next query)."""
        self.graphql.set_available(shop, available)

    def fail_next(self, n: int = 1, status: int = 503, *, endpoint: str = "graphql", shop: str | None = None,
                  body: dict | None = None, headers: dict | None = None) -> None:
        """The next `n` requests to `endpoint` ("graphql", "token" or "any"), of `shop` or of
        any shop, answer `status` with a Shopify-like body (429 adds `Retry-After: 1`)."""
        if endpoint not in ("graphql", "token", "any"):
            raise ValueError(f"endpoint is graphql, token or any, not {endpoint!r}")
        default_headers = {"Retry-After": "1"} if status == 429 else {}
        with self._failures_lock:
            self._failures.append({"endpoint": endpoint, "shop": shop, "left": n, "status": status,
                                   "body": body if body is not None else _DEFAULT_FAILURE_BODIES.get(
                                       status, {"errors": f"HTTP {status}"}),
                                   "headers": {**default_headers, **(headers or {})}})

    def _injected_failure(self, endpoint: str, shop: str):
        with self._failures_lock:
            for failure in self._failures:
                if failure["endpoint"] in (endpoint, "any") and failure["shop"] in (None, shop):
                    failure["left"] -= 1
                    if failure["left"] <= 0:
                        self._failures.remove(failure)
                    response = jsonify(failure["body"])
                    response.status_code = failure["status"]
                    response.headers.update(failure["headers"])
                    return response
        return None

    # --- webhooks ---------------------------------------------------------------------------

    def deliver(self, duplicate: int = 1, shuffle: bool = False, drop: float = 0.0,
                rng: random.Random | None = None) -> list[dict]:
        """Send every queued webhook and empty the queue: each `duplicate` times (same event id,
        new webhook id), in an order shuffled by `rng` when asked, with a `drop` share of the
        events never sent (kept in `dropped`). Returns one record per delivery."""
        if not self.webhook_url:
            raise RuntimeError("set webhook_url (the app's /webhooks address) before delivering")
        rng = rng or random.Random()
        events = self.store.drain()
        lost = rng.sample(range(len(events)), math.floor(drop * len(events) + 0.5)) if drop else []
        self.dropped.extend(events[i] for i in sorted(lost))
        sends = [e for i, e in enumerate(events) if i not in lost for _ in range(max(duplicate, 1))]
        if shuffle:
            rng.shuffle(sends)
        return [self._post(event)[0] for event in sends]

    def send_webhook(self, shop: str, topic: str, payload: dict, *, event_id: str | None = None,
                     secret: str | None = None, tamper: bool = False,
                     headers_override: dict | None = None) -> requests.Response:
        """Send one webhook now, outside the queue, for tests of the intake. `tamper` changes the
        body after signing; an override of None removes that header."""
        event = Event(event_id or str(uuid.uuid4()), shop, topic, payload, _json_body(payload), self.store.now())
        record, response = self._post(event, secret=secret, tamper=tamper, headers_override=headers_override)
        if response is None:
            raise requests.ConnectionError(record["error"])
        return response

    def _post(self, event: Event, *, secret: str | None = None, tamper: bool = False,
              headers_override: dict | None = None):
        url = self.compliance_webhook_url if event.topic in COMPLIANCE_TOPICS else self.webhook_url
        if not url:
            raise RuntimeError("set webhook_url (the app's /webhooks address) before sending webhooks")
        body = event.body
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": event.topic,
            "X-Shopify-Hmac-Sha256": sign(body, self.client_secret if secret is None else secret),
            "X-Shopify-Shop-Domain": event.shop,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": event.id,
            "X-Shopify-Triggered-At": _triggered_at(event.triggered_at),
        }
        for name, value in (headers_override or {}).items():
            headers.pop(name, None)
            if value is not None:
                headers[name] = value
        if tamper:
            body = body[:-1] + b' ,"tampered":true}' if body.endswith(b"}") else body + b" "
        record = {"event_id": event.id, "webhook_id": headers.get("X-Shopify-Webhook-Id"), "topic": event.topic,
                  "shop": event.shop, "url": url, "status": None, "error": None}
        response = None
        try:
            response = self.http.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
            record["status"] = response.status_code
        except requests.RequestException as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(record)
        return record, response

    # --- the HTTP app ----------------------------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask(__name__)
        app.json.sort_keys = False

        @app.post("/shops/<shop>/admin/oauth/access_token")
        def access_token(shop):
            if not _SHOP.fullmatch(shop):
                return jsonify(errors="Not Found"), 404
            failure = self._injected_failure("token", shop)
            if failure is not None:
                return failure
            params = request.get_json(silent=True) if request.is_json else request.form.to_dict()
            grant = None
            if not isinstance(params, dict):
                status, body = 400, {"error": "invalid_request", "error_description": "The body is not a JSON object"}
            else:
                grant = params.get("grant_type") or ("authorization_code" if params.get("code") else None)
                try:
                    status, body = 200, self.oauth.grant(shop, params)
                except OAuthError as exc:
                    status, body = exc.status, exc.body
            self.oauth.requests.append({"shop": shop, "grant": grant, "body": params, "status": status,
                                        "response": body})
            return jsonify(body), status

        @app.get("/shops/<shop>/admin/oauth/authorize")
        def authorize(shop):
            args = request.args
            if args.get("client_id") != self.client_id or not args.get("redirect_uri"):
                return jsonify(error="invalid_request", error_description="Unknown client_id or no redirect_uri"), 400
            name = shop.split(".")[0]
            query = {"code": self.authorization_code(shop), "shop": shop, "state": args.get("state", ""),
                     "host": base64.b64encode(f"admin.shopify.com/store/{name}".encode()).decode().rstrip("=")}
            return redirect(f"{args['redirect_uri']}?{urlencode(self.signed_query(query))}")

        @app.post("/shops/<shop>/admin/api/<version>/graphql.json")
        def graphql(shop, version):
            self.graphql_calls[shop] += 1
            if not _SHOP.fullmatch(shop) or not _VERSION.fullmatch(version):
                return jsonify(errors="Not Found"), 404
            failure = self._injected_failure("graphql", shop)
            if failure is not None:
                return failure
            if not self.access_token_valid(shop, request.headers.get("X-Shopify-Access-Token")):
                return jsonify(errors=INVALID_TOKEN), 401
            query, variables, operation = _graphql_request()
            if not isinstance(query, str) or not isinstance(variables, dict):
                return jsonify(errors={"query": "Required parameter missing or invalid"}), 400
            answer = self.graphql.answer(shop, query, variables, operation)
            self.graphql_requests.append({"shop": shop, "query": query, "variables": variables,
                                          "cost": answer["extensions"]["cost"],
                                          "errors": answer.get("errors")})
            response = jsonify(answer)
            response.headers["X-Shopify-API-Version"] = version
            return response

        _control_api(app, self)
        return app


def _graphql_request():
    if request.mimetype == "application/graphql":
        return request.get_data(as_text=True), {}, None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, {}, None
    variables = body.get("variables")
    return body.get("query"), {} if variables is None else variables, body.get("operationName")


def _json_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --- the control API ---------------------------------------------------------------------

def _summary(order) -> dict:
    totals = order.totals()
    cur = order.currency
    return {
        "id": order.id, "admin_graphql_api_id": f"gid://shopify/Order/{order.id}", "name": order.name,
        "shop": order.shop.domain, "updated_at": order.updated_at.isoformat(),
        "financial_status": totals.financial_status, "current_total": text(totals.current, cur),
        "outstanding": text(totals.outstanding, cur), "currency": cur,
        "returns": [{"label": r.label, "id": r.id, "name": r.name, "status": r.status} for r in order.returns],
        "refunds": [{"id": r.id, "return": r.ret.label if r.ret else None,
                     "transactions": [{"id": t.id, "status": t.status, "amount": text(t.amount, cur)}
                                      for t in r.transactions]} for r in order.refunds],
        "transactions": [{"id": t.id, "kind": t.kind, "status": t.status, "amount": text(t.amount, cur)}
                         for t in order.transactions],
    }


def _event(event: Event) -> dict:
    return {"id": event.id, "shop": event.shop, "topic": event.topic,
            "triggered_at": _triggered_at(event.triggered_at), "payload": event.payload}


def _control_api(app: Flask, standin: ShopifyStandin) -> None:
    """JSON endpoints under /_control/, each a thin call of the Python API."""
    store = standin.store

    def body() -> dict:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    @app.errorhandler(StoreError)
    def refused(exc):
        return jsonify(error=str(exc)), 400

    @app.get("/_control/shops")
    def shops():
        return jsonify([{"shop": s.domain, "currency": s.currency, "taxes_included": s.taxes_included,
                         "orders": len(s.orders)} for s in store.shops.values()])

    @app.post("/_control/shops")
    def create_shop():
        data = body()
        if not _SHOP.fullmatch(str(data.get("shop", ""))):
            return jsonify(error="shop must be a name.myshopify.com domain"), 400
        shop = store.create_shop(data.get("shop", ""), currency=data.get("currency", "ISK"),
                                 taxes_included=data.get("taxes_included", True), name=data.get("name"))
        return jsonify(shop=shop.domain, currency=shop.currency, taxes_included=shop.taxes_included), 201

    @app.get("/_control/shops/<shop>/orders")
    def orders(shop):
        with store.lock:
            found = store.shops.get(shop)
            return jsonify([_summary(o) for o in found.orders] if found else [])

    @app.post("/_control/shops/<shop>/orders")
    def create_order(shop):
        with store.lock:
            return jsonify(_summary(store.create_order(shop, body()))), 201

    def order_of(shop: str, order_id: int):
        order = store.order(order_id)
        if order.shop.domain != shop:
            raise StoreError(f"order {order_id} is not {shop}'s")
        return order

    @app.get("/_control/shops/<shop>/orders/<int:order_id>")
    def order(shop, order_id):
        with store.lock:
            return jsonify(_summary(order_of(shop, order_id)))

    @app.post("/_control/shops/<shop>/orders/<int:order_id>/steps")
    def step(shop, order_id):
        with store.lock:
            order = order_of(shop, order_id)
            store.apply(order, body())
            return jsonify(_summary(order))

    @app.post("/_control/shops/<shop>/seed")
    def seed(shop):
        data = body()
        made = store.seed_orders(shop, int(data.get("n", 1)), spec=data.get("spec"), steps=data.get("steps", ()),
                                 webhooks=data.get("webhooks", True))
        return jsonify(orders=[o.id for o in made]), 201

    @app.post("/_control/shops/<shop>/authorization_code")
    def code(shop):
        return jsonify(code=standin.authorization_code(shop))

    @app.post("/_control/shops/<shop>/id_token")
    def id_token(shop):
        return jsonify(id_token=standin.id_token(shop, user_id=body().get("user_id", "1")))

    @app.post("/_control/shops/<shop>/uninstall")
    def uninstall(shop):
        standin.uninstall(shop)
        return jsonify(status="uninstalled")

    @app.get("/_control/outbox")
    def outbox():
        with store.lock:
            return jsonify([_event(e) for e in store.outbox])

    @app.post("/_control/webhook_url")
    def webhook_url():
        standin.webhook_url = body().get("url")
        return jsonify(url=standin.webhook_url)

    @app.post("/_control/deliver")
    def deliver():
        data = body()
        if not standin.webhook_url:
            return jsonify(error="no webhook_url set"), 409
        seed = data.get("seed")
        sent = standin.deliver(duplicate=int(data.get("duplicate", 1)), shuffle=bool(data.get("shuffle")),
                               drop=float(data.get("drop", 0)), rng=random.Random(seed) if seed is not None else None)
        return jsonify(deliveries=sent)

    @app.post("/_control/reset")
    def reset():
        standin.reset()
        return jsonify(status="reset")


# The store's verbs, callable on the stand-in itself (standin.refund(...) is store.refund(...)).
_STORE_VERBS = ("create_shop", "create_order", "seed_orders", "return_request", "return_open", "return_decline",
                "return_cancel", "return_close", "return_reopen", "refund", "pay", "settle", "apply",
                "compliance_request")


def _delegate(name: str):
    target = getattr(Store, name)

    def verb(self, *args, **kwargs):
        return getattr(self.store, name)(*args, **kwargs)

    verb.__name__ = verb.__qualname__ = name
    verb.__doc__ = target.__doc__
    verb.__signature__ = inspect.signature(target)
    return verb


for _name in _STORE_VERBS:
    setattr(ShopifyStandin, _name, _delegate(_name))
