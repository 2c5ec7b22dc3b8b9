"""A local Shopify: a real HTTP server (127.0.0.1, a free port, a background thread) that
behaves like Shopify for any number of shops, for the tests and the sandbox.

Shops are addressed by path. Point the app at it with
`SHOPIFY_SHOP_URL_TEMPLATE = standin.shop_url_template` (`<url>/shops/{shop}`): the Admin
API of `x.myshopify.com` is then `<url>/shops/x.myshopify.com/admin/...`.

- `POST /shops/<shop>/admin/oauth/access_token`: Shopify's token endpoint (oauth.py);
  `GET /shops/<shop>/admin/oauth/authorize` sends the browser back to the app with a code.
- `POST /shops/<shop>/admin/api/<version>/graphql.json`: the GraphQL Admin API over the
  store, with cost and throttling (graphql_api.py, nodes.py); the one mutation it
  runs is `bulkOperationRunQuery` (bulk.py), whose file is `GET /bulk/<n>.jsonl`.
- Webhooks: every change in the store (store.py) queues Shopify's webhooks;
  `deliver()` sends those the app subscribes to (`subscriptions`, by default the
  `[[webhooks.subscriptions]]` of the app's shopify.app.toml, `include_fields` applied), signed,
  to `webhook_url` (compliance topics always, to `compliance_webhook_url`), optionally
  duplicated, shuffled or partly dropped. A queued topic nobody subscribes to is never sent
  (kept in `unsubscribed`).
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
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, redirect, request
from werkzeug.serving import WSGIRequestHandler, make_server

from . import app_toml
from . import nodes as shopify_nodes
from .bulk import BulkOperations
from .graphql_api import GraphQLService
from .money import text
from .oauth import OAuthError, TokenAuthority
from .store import Event, Store, StoreError

log = logging.getLogger(__name__)

API_VERSION = "2026-10"
SCOPES = ",".join(app_toml.requested_scopes())  # what the app's shopify.app.toml requests
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
# After 2027-01-01 Shopify refuses Admin API calls made with a non-expiring offline token (shopify.md
# §0): 403 and these words (body: megaapp977/stack#654; status: docs/SHOPIFY_MODEL.md).
NON_EXPIRING_RETIRED_AT = datetime(2027, 1, 1, tzinfo=timezone.utc)
NON_EXPIRING_REFUSED = ("[API] Non-expiring access tokens are no longer accepted for the Admin API. Start using "
                        "expiring offline tokens: https://shopify.dev/docs/apps/build/authentication-authorization/"
                        "access-tokens/offline-access-tokens#expiring-vs-non-expiring-offline-tokens")
WEBHOOK_TIMEOUT = 5  # seconds: Shopify gives up on a webhook that is not answered in 5 s
_SHOP = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")
_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")
_DEFAULT_FAILURE_BODIES = {
    401: {"errors": INVALID_TOKEN}, 402: {"errors": "Unavailable Shop"},
    403: {"errors": "[API] This action requires merchant approval for read_orders scope."},
    404: {"errors": "Not Found"}, 423: {"errors": "This store is unavailable"},
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
                 host: str = "127.0.0.1", port: int = 0, subscriptions=None):
        """`scopes`: what the app requests (each shop is granted them less read_all_orders until
        `grant_scopes`); `subscriptions`: the webhook subscriptions (default: the toml's; a list of
        topic names, toml-shaped dicts or app_toml.Subscription), restored by `reset()`."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.host, self.port = host, port
        self.clock = _utc_now
        self.store = Store(clock=lambda: self.clock(), requested_scopes=scopes)
        self.oauth = TokenAuthority(client_id, client_secret, scopes, clock=lambda: self.clock())
        self.oauth.scopes_for = self.store.granted_scope
        self._default_subscriptions = (app_toml.subscriptions() if subscriptions is None
                                       else app_toml.subscription_list(subscriptions))
        self.bulk = BulkOperations(lambda shop, run: shopify_nodes.root(self.store, shop, run), self.store.lock,
                                   clock=lambda: self.clock(), base_url=lambda: self.url)
        self.graphql = GraphQLService(
            lambda shop, run: self.bulk.extend_root(shop, shopify_nodes.root(self.store, shop, run)), self.store.lock)
        self.graphql.mutation_root_for = self.bulk.mutation_root
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
        self.store.clock = lambda: self.clock()   # a test may have set the store's own
        self.store.reset()
        self.oauth.reset()
        self.graphql.buckets.clear()
        self.graphql.maximum_available, self.graphql.restore_rate, self.graphql.max_query_cost = 2000, 100, 1000
        self.graphql.monotonic = time.monotonic
        self.graphql.cost_rule = "documented"
        self.bulk.reset()
        self.non_expiring_tokens_retired_at = NON_EXPIRING_RETIRED_AT
        self.non_expiring_refused_status = 403
        self.webhook_url: str | None = None
        self._compliance_webhook_url: str | None = None
        self.deliveries: list[dict] = []
        self.dropped: list[Event] = []
        self.subscriptions = list(self._default_subscriptions)
        self.unsubscribed: list[Event] = []   # queued, but no subscription wants the topic
        self.debounced: list[Event] = []      # an include_fields payload identical to one just sent
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
    cost_rule = property(lambda self: self.graphql.cost_rule,
                         lambda self, v: setattr(self.graphql, "cost_rule", v))

    @property
    def subscriptions(self) -> list:
        """The app's webhook subscriptions (app_toml.Subscription); settable with topic names,
        toml-shaped dicts ({"topics": [...], "include_fields": [...]}) or Subscriptions."""
        return self._subscriptions

    @subscriptions.setter
    def subscriptions(self, value) -> None:
        self._subscriptions = app_toml.subscription_list(value)

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

    def fail_next_graphql(self, n: int = 1, code: str = "ACCESS_DENIED", *, shop: str | None = None,
                          field: str = "orders", scope: str = "read_orders", message: str | None = None) -> None:
        """The next `n` GraphQL calls (of `shop`, or of any shop) answer HTTP 200 with a
        top-level error of `extensions.code` `code`, in Shopify's words (graphql_error_body):
        ACCESS_DENIED (for `field`, needing `scope`; `data: null`), INTERNAL_SERVER_ERROR (no
        `data`), SHOP_PENDING_TERMINATION, or any other code with `message`."""
        body = graphql_error_body(code, field=field, scope=scope, message=message)
        with self._failures_lock:
            self._failures.append({"endpoint": "graphql", "shop": shop, "left": n, "status": 200, "body": body,
                                   "headers": {}})

    def _token_retired(self, token: str | None) -> bool:
        """A non-expiring offline token, once Shopify stopped accepting them for the Admin API."""
        cutoff = self.non_expiring_tokens_retired_at
        return cutoff is not None and self.clock() >= cutoff and self.oauth.non_expiring_offline(token)

    # --- clock, refresh tokens, bulk operations ---------------------------------------------

    def travel_to(self, moment: datetime) -> None:
        """The stand-in's clock stops at `moment` (aware) until moved again or `real_clock()`."""
        frozen = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        self.clock = lambda: frozen

    def advance_clock(self, **delta) -> datetime:
        """Stop the clock `timedelta(**delta)` after what it says now; returns the new now."""
        self.travel_to(self.clock() + timedelta(**delta))
        return self.clock()

    def real_clock(self) -> None:
        self.clock = _utc_now

    def expire_refresh_token(self, shop: str) -> None:
        """Every refresh token of the shop runs out now, as if its 90 days had passed: a refresh
        gets 400 invalid_grant."""
        self.oauth.expire_refresh_tokens(shop)

    def revoke_refresh_token(self, shop: str) -> None:
        """Every refresh token of the shop is revoked (its access tokens keep their hour): a
        refresh gets 400 invalid_grant."""
        self.oauth.revoke_refresh_tokens(shop)

    def fail_next_bulk(self, n: int = 1, error_code: str = "INTERNAL_SERVER_ERROR", *, shop: str | None = None,
                       partial: bool = True) -> None:
        """The next `n` bulk operations end FAILED with `errorCode` `error_code` (ACCESS_DENIED,
        INTERNAL_SERVER_ERROR, TIMEOUT); `partial` serves the first half of the lines at
        `partialDataUrl` (never for ACCESS_DENIED)."""
        self.bulk.fail_next(n, error_code, shop=shop, partial=partial)

    def fail_bulk(self, gid: str, error_code: str = "INTERNAL_SERVER_ERROR", *, partial: bool = True) -> None:
        """A running bulk operation will end FAILED instead of completing."""
        self.bulk.fail(gid, error_code, partial=partial)

    def finish_bulk(self, gid: str | None = None) -> None:
        """Running bulk operations (or the one `gid`) end now, whatever `bulk_completion_delay`."""
        self.bulk.finish(gid)

    bulk_completion_delay = property(lambda self: self.bulk.completion_delay,
                                     lambda self, v: setattr(self.bulk, "completion_delay", float(v)),
                                     doc="Seconds of the stand-in's clock a bulk operation stays RUNNING (0: "
                                         "done when first looked at).")

    # --- webhooks ---------------------------------------------------------------------------

    def deliver(self, duplicate: int = 1, shuffle: bool = False, drop: float = 0.0,
                rng: random.Random | None = None) -> list[dict]:
        """Send every queued webhook and empty the queue: each `duplicate` times (same event id,
        new webhook id), in an order shuffled by `rng` when asked, with a `drop` share of the
        events never sent (kept in `dropped`). Returns one record per delivery."""
        if not self.webhook_url:
            raise RuntimeError("set webhook_url (the app's /webhooks address) before delivering")
        rng = rng or random.Random()
        events = []
        for event in self.store.drain():
            bodies = self._bodies(event)
            if bodies:
                events.append((event, bodies))
            else:
                self.unsubscribed.append(event)
        lost = rng.sample(range(len(events)), math.floor(drop * len(events) + 0.5)) if drop else []
        self.dropped.extend(events[i][0] for i in sorted(lost))
        sends, seen = [], set()
        for i, (event, bodies) in enumerate(events):
            if i in lost:
                continue
            for n, (body, cut) in enumerate(bodies):
                if cut and (event.shop, event.topic, n, body) in seen:
                    self.debounced.append(event)  # Shopify drops identical modified payloads sent close together
                    continue
                seen.add((event.shop, event.topic, n, body))
                sends.extend([(event, body)] * max(duplicate, 1))
        if shuffle:
            rng.shuffle(sends)
        return [self._post(event, body=body)[0] for event, body in sends]

    def _bodies(self, event: Event) -> list[tuple[bytes, bool]]:
        """The body of each delivery the event makes: one per subscription to its topic (cut to
        its include_fields; the flag says so); a compliance topic always makes one."""
        if event.topic in COMPLIANCE_TOPICS:
            return [(event.body, False)]
        return [(event.body, False) if sub.include_fields is None
                else (_json_body(app_toml.cut(event.payload, sub.include_fields)), True)
                for sub in self.subscriptions if not sub.compliance and event.topic in sub.topics]

    def subscribed(self, topic: str) -> bool:
        """Whether `deliver()` sends `topic` (compliance topics always)."""
        return topic in COMPLIANCE_TOPICS or any(not s.compliance and topic in s.topics for s in self.subscriptions)

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
              headers_override: dict | None = None, body: bytes | None = None):
        url = self.compliance_webhook_url if event.topic in COMPLIANCE_TOPICS else self.webhook_url
        if not url:
            raise RuntimeError("set webhook_url (the app's /webhooks address) before sending webhooks")
        body = event.body if body is None else body
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
            if self._token_retired(request.headers.get("X-Shopify-Access-Token")):
                return jsonify(errors=NON_EXPIRING_REFUSED), self.non_expiring_refused_status
            query, variables, operation = _graphql_request()
            if not isinstance(query, str) or not isinstance(variables, dict):
                return jsonify(errors={"query": "Required parameter missing or invalid"}), 400
            answer = self.graphql.answer(shop, query, variables, operation, version=version)
            self.graphql_requests.append({"shop": shop, "query": query, "variables": variables,
                                          "cost": answer["extensions"]["cost"],
                                          "errors": answer.get("errors")})
            response = jsonify(answer)
            response.headers["X-Shopify-API-Version"] = version
            return response

        _control_api(app, self)
        _protocol_api(app, self)
        return app


def graphql_error_body(code: str, *, field: str = "orders", scope: str = "read_orders",
                       message: str | None = None) -> dict:
    """A GraphQL answer (HTTP 200) that is only a top-level error, as Shopify words it:
    - ACCESS_DENIED: a field the token's scopes do not reach (the words and extensions of the
      captures in airhorns/shopify-draft-proxy; `data` is null, the field being non-null);
    - INTERNAL_SERVER_ERROR: kirillplatonov/shopify_graphql's fixture (a request id; no `data`);
    - SHOP_PENDING_TERMINATION: the same repository's fixture ("Shop is under review");
    - any other code: `message` (default: the code) and `data: null`."""
    if code == "ACCESS_DENIED":
        required = f"`{scope}` access scope."
        return {"errors": [{"message": message or f"Access denied for {field} field. Required access: {required}",
                            "extensions": {"code": code, "documentation": "https://shopify.dev/api/usage/access-scopes",
                                           "requiredAccess": required},
                            "path": [field]}],
                "data": None}
    if code == "INTERNAL_SERVER_ERROR":
        request_id = str(uuid.uuid4())
        return {"errors": [{"message": message or ("Internal error. Looks like something went wrong on our end.\n"
                                                   f"Request ID: {request_id} (include this in support requests)."),
                            "extensions": {"code": code, "requestId": request_id}}]}
    if code == "SHOP_PENDING_TERMINATION":
        return {"errors": [{"message": message or f"Access denied for {field} field. Shop is under review.",
                            "extensions": {"code": code}}], "data": None}
    return {"errors": [{"message": message or code, "extensions": {"code": code}}], "data": None}


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
        "shop": order.shop.domain, "created_at": order.created_at.isoformat(), "test": order.test,
        "updated_at": order.updated_at.isoformat(),
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
                         "orders": len(s.orders), "protected_customer_data": s.protected_customer_data,
                         "granted_scopes": s.granted_scopes} for s in store.shops.values()])

    @app.post("/_control/shops")
    def create_shop():
        data = body()
        if not _SHOP.fullmatch(str(data.get("shop", ""))):
            return jsonify(error="shop must be a name.myshopify.com domain"), 400
        shop = store.create_shop(data.get("shop", ""), currency=data.get("currency", "ISK"),
                                 taxes_included=data.get("taxes_included", True), name=data.get("name"),
                                 protected_customer_data=data.get("protected_customer_data", True),
                                 granted_scopes=data.get("granted_scopes"))
        return jsonify(shop=shop.domain, currency=shop.currency, taxes_included=shop.taxes_included,
                       protected_customer_data=shop.protected_customer_data, granted_scopes=shop.granted_scopes), 201

    @app.post("/_control/shops/<shop>/protected_customer_data")
    def protected_customer_data(shop):
        with store.lock:
            found = store.shop(shop)
            found.protected_customer_data = bool(body().get("approved", True))
            return jsonify(shop=shop, protected_customer_data=found.protected_customer_data)

    @app.post("/_control/shops/<shop>/scopes")
    def grant_scopes(shop):
        event = standin.grant_scopes(shop, body().get("grant") or [])
        return jsonify(shop=shop, granted_scopes=store.shop(shop).granted_scopes, event=event and event.id)

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
                "compliance_request", "grant_scopes")


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


def _protocol_api(app: Flask, standin: ShopifyStandin) -> None:
    """The bulk operations' files, and controls for injected errors, the clock, refresh tokens
    and bulk operations (docs/SHOPIFY_MODEL.md, "Bulk operations, errors and retired tokens")."""

    def body() -> dict:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    @app.get("/bulk/<int:number>.jsonl")
    def bulk_file(number):
        data = standin.bulk.file(number)
        if data is None:
            return jsonify(errors="Not Found"), 404
        return app.response_class(data, mimetype="application/jsonl", headers={
            "Content-Disposition": f'attachment; filename="bulk-{number}.jsonl"'})

    @app.post("/_control/fail_next")
    def control_fail_next():
        data = body()
        standin.fail_next(int(data.get("n", 1)), int(data.get("status", 503)), endpoint=data.get("endpoint", "graphql"),
                          shop=data.get("shop"), body=data.get("body"), headers=data.get("headers"))
        return jsonify(status="armed")

    @app.post("/_control/fail_next_graphql")
    def control_fail_next_graphql():
        data = body()
        standin.fail_next_graphql(int(data.get("n", 1)), data.get("code", "ACCESS_DENIED"), shop=data.get("shop"),
                                  field=data.get("field", "orders"), scope=data.get("scope", "read_orders"),
                                  message=data.get("message"))
        return jsonify(status="armed")

    @app.post("/_control/bulk/fail_next")
    def control_bulk_fail_next():
        data = body()
        try:
            standin.fail_next_bulk(int(data.get("n", 1)), data.get("error_code", "INTERNAL_SERVER_ERROR"),
                                   shop=data.get("shop"), partial=bool(data.get("partial", True)))
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(status="armed")

    @app.post("/_control/bulk/finish")
    def control_bulk_finish():
        standin.finish_bulk(body().get("id"))
        return jsonify(status="finished")

    @app.post("/_control/bulk/settings")
    def control_bulk_settings():
        data = body()
        if "completion_delay" in data:
            standin.bulk_completion_delay = float(data["completion_delay"])
        if "concurrency_limit" in data:
            standin.bulk.concurrency_limit = data["concurrency_limit"]
        return jsonify(completion_delay=standin.bulk_completion_delay, concurrency_limit=standin.bulk.concurrency_limit)

    @app.post("/_control/shops/<shop>/refresh_token/<action>")
    def control_refresh_token(shop, action):
        if action == "expire":
            standin.expire_refresh_token(shop)
        elif action == "revoke":
            standin.revoke_refresh_token(shop)
        else:
            return jsonify(error="expire or revoke"), 404
        return jsonify(status=f"{action}d")

    @app.route("/_control/clock", methods=["GET", "POST"])
    def control_clock():
        data = body() if request.method == "POST" else {}
        if data.get("real"):
            standin.real_clock()
        elif data.get("now"):
            standin.travel_to(datetime.fromisoformat(str(data["now"]).replace("Z", "+00:00")))
        elif data.get("advance_seconds") is not None:
            standin.advance_clock(seconds=float(data["advance_seconds"]))
        return jsonify(now=standin.clock().astimezone(timezone.utc).isoformat())
