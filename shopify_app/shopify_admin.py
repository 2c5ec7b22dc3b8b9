"""Talking to a shop's Admin API: token exchange, code grant, refresh, and the GraphQL transport.

All of Skilvís's calls to Shopify go through this module, so timeouts, the cost budget and the
"refresh once on 401" rule live in one place. ShopifyAPI has none of this (no expiring tokens,
no GraphQL timeouts or throttling), which is why it is ours.

The cost budget: Shopify keeps a leaky bucket of query points per app and shop. Skilvís keeps a
copy of it per shop in Postgres (`shopify_buckets`), shared by every worker and web process, and
takes a query's *requested* cost from it before the call, in one UPDATE. When the bucket does not
hold enough, the call is not made and nothing sleeps: `ShopifyBusy(retry_in)` says when it will.
After the call the bucket is set from Shopify's own `throttleStatus`.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import requests
from graphql import (FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode,
                     OperationDefinitionNode, OperationType, parse, value_from_ast_untyped)

from . import crypto, db, shops
from .config import Settings
from .shops import Tokens

log = logging.getLogger(__name__)

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"

TIMEOUT = (5, 30)  # connect, read (seconds)
REFRESH_MARGIN = timedelta(minutes=5)
MAX_ATTEMPTS = 5
# A shop's bucket before Shopify has told us its size (its first answer does): the smallest that
# Shopify has documented (1,000 points, 50 a second), so a first burst errs on the safe side.
DEFAULT_MAXIMUM, DEFAULT_RESTORE_RATE = 1000.0, 50.0
# Shopify's figure is a moment older than the answer that brings it: a query is sent only when
# the bucket also holds what it restores in this many seconds, so it is never a point short.
MARGIN_SECONDS = 0.5
MUTATION_COST = 10   # what Shopify requests for each mutation field


class ShopifyError(Exception):
    """Shopify refused the request; retrying the same request will not help."""


class ShopifyAuthError(ShopifyError):
    """The shop's token is missing, revoked or cannot be refreshed (reinstall or re-open the app)."""


class TokenRefused(ShopifyAuthError):
    """The token endpoint said no; `status` and `error` (the OAuth error code, if any) say why."""

    def __init__(self, message: str, status: int, error: str | None):
        super().__init__(message)
        self.status, self.error = status, error


class ShopifyRefused(ShopifyError):
    """Shopify answered, and asking again soon will not change the answer: a missing scope or
    approval (ACCESS_DENIED, HTTP 403), a query over the cost limit, a field a version bump
    removed, a frozen or locked shop. `code` is the reason the merchant reads (i18n.REASONS)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class ShopifyUnavailable(Exception):
    """A transient failure (timeout, 5xx, an empty cost bucket): retry later."""


class ShopifyBusy(ShopifyUnavailable):
    """The shop's cost bucket does not hold what the query requests (or Shopify answered
    THROTTLED, or 429): the call was not made, or made nothing. Ask again in `retry_in` seconds;
    a worker should put the work aside until then rather than wait. When known, the bucket as
    it was (`available`, `maximum`, `restore_rate`) and the query's `requested` cost."""

    def __init__(self, retry_in: float, message: str | None = None, shop: str | None = None, *,
                 available: float | None = None, maximum: float | None = None,
                 restore_rate: float | None = None, requested: float | None = None):
        super().__init__(message or f"Shopify's query budget{f' for {shop}' if shop else ''} "
                                    f"refills in {retry_in:.1f} s")
        self.retry_in, self.shop = retry_in, shop
        self.available, self.maximum, self.restore_rate, self.requested = available, maximum, restore_rate, requested

    def until_full(self) -> float:
        """Seconds until the bucket is full again (at least `retry_in`)."""
        if None in (self.available, self.maximum) or not self.restore_rate:
            return self.retry_in
        return max(self.retry_in, (self.maximum - self.available) / self.restore_rate)


@dataclass(frozen=True)
class Answer:
    """A GraphQL answer: `data`, and the paths of the fields Shopify withheld from it (a field-level
    ACCESS_DENIED: protected customer data the app is not approved for). A withheld field is
    null in `data`."""
    data: dict
    withheld: frozenset[tuple] = frozenset()
    cost: float = 0.0   # what Shopify charged for it (actualQueryCost)


# HTTP statuses with which Shopify refuses a shop's API for longer than a retry: 402 a frozen
# shop (unpaid bills), 403 a missing scope or approval, 404 a shop that is gone, 423 a locked shop.
REFUSING_STATUSES = {402: "shop_frozen", 403: "shopify_access_denied", 404: "shop_not_found", 423: "shop_locked"}
# GraphQL error codes that the same query meets again however often it is sent.
PERMANENT_CODES = {"ACCESS_DENIED": "shopify_access_denied", "MAX_COST_EXCEEDED": "shopify_query_refused",
                   "undefinedField": "shopify_query_refused", "argumentNotAccepted": "shopify_query_refused",
                   "undefinedType": "shopify_query_refused", "missingRequiredArguments": "shopify_query_refused",
                   "selectionMismatch": "shopify_query_refused", "variableMismatch": "shopify_query_refused",
                   "parseError": "shopify_query_refused"}


class AdminClient:
    def __init__(self, settings: Settings, http: requests.Session | None = None, sleep=time.sleep,
                 reserve: float = 0.0):
        self.settings = settings
        # The share of the shop's cost bucket this client leaves untouched (a history read
        # leaves room for live invoicing of the same shop).
        self.reserve = reserve
        self.http = http or requests.Session()
        self.sleep = sleep   # only between retries of a failed request (5xx, timeouts), never for the budget

    # --- tokens -------------------------------------------------------------------------

    def _token_request(self, shop: str, body: dict) -> Tokens:
        url = f"{self.settings.shop_url(shop)}/admin/oauth/access_token"
        payload = {"client_id": self.settings.api_key, "client_secret": self.settings.api_secret, **body}
        try:
            resp = self.http.post(url, json=payload, headers={"Accept": "application/json"}, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ShopifyUnavailable(f"token request to {shop} failed: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ShopifyUnavailable(f"token request to {shop}: HTTP {resp.status_code}")
        if resp.status_code != 200:
            raise TokenRefused(f"token request to {shop} refused: HTTP {resp.status_code} {resp.text[:200]}",
                               resp.status_code, _oauth_error(resp))
        return Tokens.from_response(resp.json())

    def exchange_id_token(self, shop: str, id_token: str) -> Tokens:
        """Managed install: swap the embedded page's ID token for an expiring offline token."""
        return self._token_request(shop, {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE,
            "requested_token_type": OFFLINE_TOKEN_TYPE,
            "expiring": "1",
        })

    def exchange_code(self, shop: str, code: str) -> Tokens:
        """Authorization-code grant (installs that start outside admin), asking for an expiring token."""
        return self._token_request(shop, {"code": code, "expiring": "1"})

    def refresh(self, shop: str, refresh_token: str) -> Tokens:
        return self._token_request(shop, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def migrate(self, shop: str, offline_token: str) -> Tokens:
        """A non-expiring offline token swapped for an expiring pair (Shopify stops accepting
        non-expiring tokens on 2027-01-01; shopify.md §0, §4.1). The old token dies."""
        return self._token_request(shop, {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": offline_token,
            "subject_token_type": OFFLINE_TOKEN_TYPE,
            "requested_token_type": OFFLINE_TOKEN_TYPE,
            "expiring": "1",
        })

    def install_from_id_token(self, shop: str, id_token: str) -> dict:
        return shops.save_tokens(shop, self.exchange_id_token(shop, id_token))

    def access_token(self, shop: str) -> str:
        """A token valid for at least REFRESH_MARGIN, refreshing it first when needed."""
        return self._token(shop, shops.get(shop))

    def _token(self, shop: str, row: dict | None) -> str:
        if not shops.is_installed(row):
            raise ShopifyAuthError(f"{shop} has no access token (not installed, or Shopify refused it: "
                                   "opening the app gets a new one)")
        if _fresh(row):
            return _decrypted(row["access_token_enc"])
        return self._refresh_locked(shop, stale=_decrypted(row["access_token_enc"]))

    def _refresh_locked(self, shop: str, stale: str) -> str:
        """Refresh under the shop row's lock, so two workers never refresh the same shop at once.

        Whoever gets the lock second sees the new token and uses it instead of refreshing again:
        Shopify rotates the refresh token, so a second refresh could otherwise race the first.

        When the refresh is refused for good, the dead tokens are dropped under the same lock:
        the shop then reads as not installed, and its next embedded request exchanges its ID
        token for a new pair (auth.embedded). Kept, they would leave it "installed" forever."""
        with db.transaction() as conn:
            row = conn.execute("SELECT * FROM shops WHERE domain = %s FOR UPDATE", (shop,)).fetchone()
            if not shops.is_installed(row):
                raise ShopifyAuthError(f"{shop} has no access token (not installed)")
            current = crypto.decrypt(row["access_token_enc"])
            if current != stale and _fresh(row):
                return current
            refresh_token = crypto.decrypt(row["refresh_token_enc"])
            try:
                # A token without an expiry is never used as it is: it is migrated by exchange.
                tokens = self.refresh(shop, refresh_token) if refresh_token else self.migrate(shop, current)
            except ShopifyAuthError as exc:
                if not _refused_for_good(exc):
                    raise
                shops.forget_tokens(shop, conn)
                dead = exc
            else:
                shops.save_tokens(shop, tokens, conn)
                log.info("refreshed access token for %s", shop)
                return tokens.access_token
        # Raised only here, once the transaction that dropped the tokens has committed.
        log.warning("dropped the dead tokens of %s (%s); opening the app gets new ones", shop, dead)
        raise dead

    def _forget_refused(self, shop: str, refused: str) -> None:
        """Shopify said 401 even to a just-refreshed token: it is dead, so drop it (see
        _refresh_locked). Under the row's lock, and only if it is still the stored one: another
        worker or an embedded request may have stored a good token meanwhile."""
        with db.transaction() as conn:
            row = conn.execute("SELECT access_token_enc FROM shops WHERE domain = %s FOR UPDATE", (shop,)).fetchone()
            if row and crypto.decrypt(row["access_token_enc"]) == refused:
                shops.forget_tokens(shop, conn)
                log.warning("dropped the refused token of %s; opening the app gets a new one", shop)

    # --- GraphQL ------------------------------------------------------------------------

    def graphql(self, shop: str, query: str, variables: dict | None = None) -> dict:
        """Run one GraphQL query whose every field Skilvís must have; returns `data`."""
        answer = self.query(shop, query, variables)
        if answer.withheld:
            raise ShopifyRefused(f"GraphQL call to {shop}: fields withheld: {sorted(answer.withheld)}",
                                 "shopify_access_denied")
        return answer.data

    def query(self, shop: str, query: str, variables: dict | None = None) -> Answer:
        """Run one GraphQL query. Takes its requested cost from the shop's bucket first (or raises
        ShopifyBusy without calling), retries 5xx and timeouts with growing pauses, and refreshes
        the token once on a 401. A field Shopify withholds (ACCESS_DENIED on a path inside `data`)
        comes back null and named in `withheld`; every other error is classified (`_classify`)."""
        url = f"{self.settings.shop_url(shop)}/admin/api/{self.settings.api_version}/graphql.json"
        cost = requested_cost(query, variables)
        payload = {"query": query, "variables": variables or {}}
        token, refreshed, attempt = None, False, 0
        while attempt < MAX_ATTEMPTS:
            attempt += 1
            row = self._take(shop, cost)      # the shop's token comes with it: one round trip
            charged, failed = {}, None
            try:
                token = token or self._token(shop, row)
                resp = self.http.post(url, json=payload, timeout=TIMEOUT,
                                      headers={"X-Shopify-Access-Token": token, "Accept": "application/json"})
                body = resp.json() if resp.status_code == 200 else None
                charged = ((body or {}).get("extensions") or {}).get("cost") or {}
            except requests.RequestException as exc:
                failed = exc
            finally:
                self._settle(shop, query, cost, charged)
            if failed is not None:
                if attempt == MAX_ATTEMPTS:
                    raise ShopifyUnavailable(f"GraphQL call to {shop} failed: {failed}") from failed
                self.sleep(min(2 ** (attempt - 1), 8))
                continue
            if resp.status_code == 401 and not refreshed:
                token, refreshed = self._refresh_locked(shop, stale=token), True
                continue
            if resp.status_code == 401:
                self._forget_refused(shop, token)
                raise ShopifyAuthError(f"GraphQL call to {shop} refused: HTTP 401 after a refresh")
            if resp.status_code in REFUSING_STATUSES:
                # A missing scope, a frozen or locked shop: not a dead token, so keep it.
                raise ShopifyRefused(f"GraphQL call to {shop} refused: HTTP {resp.status_code} {resp.text[:200]}",
                                     REFUSING_STATUSES[resp.status_code])
            if resp.status_code == 429:
                wait = _retry_after(resp) or 1.0
                raise ShopifyBusy(wait, f"GraphQL call to {shop}: HTTP 429, retry in {wait:.1f} s", shop)
            if resp.status_code >= 500:
                if attempt == MAX_ATTEMPTS:
                    raise ShopifyUnavailable(f"GraphQL call to {shop}: HTTP {resp.status_code}")
                self.sleep(_retry_after(resp) or min(2 ** (attempt - 1), 8))
                continue
            if resp.status_code != 200:
                raise ShopifyError(f"GraphQL call to {shop}: HTTP {resp.status_code} {resp.text[:200]}")
            errors = body.get("errors") or []
            if any(_code(e) == "THROTTLED" for e in errors):
                # Shopify's bucket is lower than ours (another client of the app, or our first
                # call to the shop): ours is set from Shopify's; come back when it has refilled.
                status = charged.get("throttleStatus") or {}
                wait = _throttle_wait(charged, self.reserve)
                raise ShopifyBusy(wait, f"GraphQL call to {shop} throttled by Shopify, retry in {wait:.1f} s", shop,
                                  available=_number(status.get("currentlyAvailable")),
                                  maximum=_number(status.get("maximumAvailable")),
                                  restore_rate=_number(status.get("restoreRate")),
                                  requested=_number(charged.get("requestedQueryCost")))
            answer = _classify(shop, body, errors)
            return replace(answer, cost=_number(charged.get("actualQueryCost")) or 0.0)
        raise ShopifyUnavailable(f"GraphQL call to {shop} did not succeed")

    # --- the shop's cost bucket, in Postgres ---------------------------------------------

    def _take(self, shop: str, cost: float) -> dict:
        """Take `cost` from the shop's bucket (restored by restore_rate × the time since it was
        last set, up to its maximum), only if it then keeps `reserve` × maximum; in the same
        statement, read the shop's token. Raises ShopifyBusy, with the seconds until the bucket
        will hold enough, when it does not; ShopifyAuthError when the shop has no token."""
        params = {"shop": shop, "cost": cost, "reserve": self.reserve, "margin": MARGIN_SECONDS,
                  "maximum": DEFAULT_MAXIMUM, "rate": DEFAULT_RESTORE_RATE}
        for _ in range(2):
            with db.transaction() as conn:
                row = conn.execute(TAKE_SQL, params).fetchone()
            # The shop's first calls from two workers at once: the other's new bucket row came in
            # after this statement's snapshot, so it saw none and took nothing. Again, it sees it.
            if row["took"] or row["available"] is not None or row["access_token_enc"] is None:
                break
        if not shops.is_installed(row):
            self._token(shop, row)   # raises ShopifyAuthError
        if not row["took"] and row["available"] is None:
            # The shop's first calls from two workers at once: the other's new bucket row came in
            # after this statement's snapshot, so it saw none and took nothing. Ask again shortly.
            raise ShopifyBusy(0.1, f"{shop}: its bucket was being made by another worker", shop, requested=cost)
        if not row["took"]:
            maximum, rate = float(row["maximum"]), float(row["restore_rate"])
            need = min(maximum, cost + self.reserve * maximum + MARGIN_SECONDS * rate)
            wait = max((need - float(row["available"])) / rate, 0.1) if rate > 0 else 60.0
            raise ShopifyBusy(wait, f"{shop}: {float(row['available']):.0f} of {maximum:.0f} points left, "
                                    f"{cost:.0f} requested (reserve {self.reserve:.0%}); retry in {wait:.1f} s", shop,
                              available=float(row["available"]), maximum=maximum, restore_rate=rate, requested=cost)
        return row

    def _settle(self, shop: str, query: str, taken: float, charged: dict) -> None:
        """After the call: give back what Shopify did not charge (all of it when the call failed
        or was refused before it ran), then never more than Shopify says is left. Shopify's
        figure leaves out what other workers have taken for calls still on their way, so the
        lower of the two is kept. The bucket's size and restore rate are Shopify's; a bucket
        Shopify says is larger than ours (the made-up one of a shop's first call) holds that
        much more."""
        status = charged.get("throttleStatus") or {}
        if _number(charged.get("requestedQueryCost")):   # 0: refused before it was costed
            _remember_cost(query, float(charged["requestedQueryCost"]))
        with db.transaction() as conn:
            conn.execute(SETTLE_SQL, {
                "shop": shop, "back": taken - float(charged.get("actualQueryCost") or 0),
                "reported": _number(status.get("currentlyAvailable")),
                "maximum": _number(status.get("maximumAvailable")), "rate": _number(status.get("restoreRate"))})


# The bucket as it is now: what was left when it was last set, restored since, up to its maximum.
_RESTORED = "LEAST(b.maximum, b.available + b.restore_rate * GREATEST(0, EXTRACT(EPOCH FROM now() - b.updated_at)))"
TAKE_SQL = f"""
WITH shop AS (
    SELECT domain, access_token_enc, access_token_expires_at, uninstalled_at FROM shops WHERE domain = %(shop)s
), took AS (
    INSERT INTO shopify_buckets AS b (shop_domain, available, maximum, restore_rate, updated_at)
    SELECT domain, %(maximum)s::numeric - %(cost)s::numeric, %(maximum)s::numeric, %(rate)s::numeric, now()
    FROM shop WHERE access_token_enc IS NOT NULL AND uninstalled_at IS NULL
    ON CONFLICT (shop_domain) DO UPDATE SET available = {_RESTORED} - %(cost)s::numeric, updated_at = now()
        WHERE {_RESTORED} >= LEAST(b.maximum, %(cost)s::numeric + %(reserve)s::numeric * b.maximum
                                              + %(margin)s::numeric * b.restore_rate)
    RETURNING b.available
)
SELECT shop.access_token_enc, shop.access_token_expires_at, shop.uninstalled_at,
       EXISTS (SELECT FROM took) AS took, bucket.available, bucket.maximum, bucket.restore_rate
FROM (SELECT) AS one
LEFT JOIN shop ON true
LEFT JOIN LATERAL (SELECT {_RESTORED} AS available, b.maximum, b.restore_rate
                   FROM shopify_buckets b WHERE b.shop_domain = %(shop)s) AS bucket ON true
"""
SETTLE_SQL = f"""
UPDATE shopify_buckets AS b SET
    available = LEAST(COALESCE(%(maximum)s::numeric, b.maximum), %(reported)s::numeric,
                      {_RESTORED} + %(back)s::numeric + COALESCE(%(maximum)s::numeric, b.maximum) - b.maximum),
    maximum = COALESCE(%(maximum)s::numeric, b.maximum),
    restore_rate = COALESCE(%(rate)s::numeric, b.restore_rate),
    updated_at = now()
WHERE b.shop_domain = %(shop)s
"""


# --- requested cost ---------------------------------------------------------------------------
# What a query will request, known before it is sent: the requestedQueryCost Shopify last gave
# for the same query text, else an estimate from the text by Shopify's documented rule (an object
# 1, a connection 2 + first × one node, a scalar 0: docs/SHOPIFY_MODEL.md, "Query cost"), which
# is never below what Shopify asks (live Shopify asks less for nested connections).

_LEARNED: dict[str, float] = {}


def requested_cost(query: str, variables: dict | None = None) -> float:
    learned = _LEARNED.get(query)
    return learned if learned is not None else float(estimate_cost(query, variables))


def _remember_cost(query: str, requested: float) -> None:
    if len(_LEARNED) >= 512 and query not in _LEARNED:
        _LEARNED.clear()
    _LEARNED[query] = requested


@lru_cache(maxsize=256)
def _document(query: str):
    return parse(query, no_location=True)


def estimate_cost(query: str, variables: dict | None = None) -> int:
    """The requested cost of `query` by the documented rule, from its text alone (no schema):
    a field with a selection is an object (1 + its fields), or, given `first`/`last`, a
    connection (2 + that many × one node, `pageInfo` free); fragments add up (Shopify takes the
    dearest type: adding is never less)."""
    document = _document(query)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    if operation.operation == OperationType.MUTATION:
        return MUTATION_COST * sum(isinstance(s, FieldNode) and not s.name.value.startswith("__")
                                   for s in operation.selection_set.selections)
    return _selection_cost(operation.selection_set, fragments, variables or {})


def _selection_cost(selection_set, fragments: dict, variables: dict) -> int:
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            total += _field_cost(selection, fragments, variables)
        elif isinstance(selection, InlineFragmentNode):
            total += _selection_cost(selection.selection_set, fragments, variables)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            total += _selection_cost(fragments[selection.name.value].selection_set, fragments, variables)
    return total


def _field_cost(field: FieldNode, fragments: dict, variables: dict) -> int:
    if field.selection_set is None or field.name.value.startswith("__"):
        return 0
    args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in field.arguments or ()}
    size = args.get("first") if args.get("first") is not None else args.get("last")
    size = size if isinstance(size, int) and size > 0 else 0
    subs = [sub for sub in field.selection_set.selections if isinstance(sub, FieldNode)]
    if not any(sub.name.value in ("nodes", "edges") for sub in subs):
        if not size:                                                # an object
            return 1 + _selection_cost(field.selection_set, fragments, variables)
        return 2 + size * (1 + _selection_cost(field.selection_set, fragments, variables))   # a list, with `first`
    node = 0
    for sub in subs:
        if sub.name.value == "nodes" and sub.selection_set:
            node = max(node, 1 + _selection_cost(sub.selection_set, fragments, variables))
        elif sub.name.value == "edges" and sub.selection_set:
            for inner in sub.selection_set.selections:
                if isinstance(inner, FieldNode) and inner.name.value == "node" and inner.selection_set:
                    node = max(node, 1 + _selection_cost(inner.selection_set, fragments, variables))
    return 2 + size * node


# --- tokens, decrypted once per process --------------------------------------------------------
# The stored token is read on every call (a refresh by another process shows at once); only its
# decryption is remembered, keyed by the ciphertext and the keys it was read with.

_PLAIN: dict[tuple[str, bytes], str] = {}


def _decrypted(value) -> str | None:
    if value is None:
        return None
    key = (os.environ.get("ENCRYPTION_KEY", ""), bytes(value))
    plain = _PLAIN.get(key)
    if plain is None:
        plain = crypto.decrypt(value)
        if len(_PLAIN) >= 1024:
            _PLAIN.clear()
        _PLAIN[key] = plain
    return plain


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _classify(shop: str, body: dict, errors: list[dict]) -> Answer:
    """Field-level denials inside an answer that has data are withheld fields (Shopify's protected
    customer data); any other error is permanent (ShopifyRefused) or transient."""
    data = body.get("data")
    denied = [e for e in errors if e.get("path") and _withheld(e)]
    others = [e for e in errors if e not in denied]
    if data is not None and not others:
        return Answer(data, frozenset(tuple(e["path"]) for e in denied))
    detail = f"GraphQL errors from {shop}: {[(_code(e), e.get('message')) for e in (others or denied)][:3]}"
    codes = {PERMANENT_CODES.get(_code(e) or "") for e in (others or denied)}
    permanent = sorted(c for c in codes if c)
    if permanent:
        raise ShopifyRefused(detail, permanent[0])
    raise ShopifyUnavailable(detail)   # INTERNAL_SERVER_ERROR and the unknown: try again later


def _code(error: dict) -> str | None:
    return (error.get("extensions") or {}).get("code")


def _withheld(error: dict) -> bool:
    """A protected-data denial: Shopify's documented example has only the message, third-party
    reports add the ACCESS_DENIED code (docs/SHOPIFY_MODEL.md, Protected customer data)."""
    return _code(error) == "ACCESS_DENIED" or str(error.get("message", "")).startswith(
        "This app is not approved to access")


def _fresh(row: dict) -> bool:
    expires = row["access_token_expires_at"]
    return expires is not None and expires - REFRESH_MARGIN > datetime.now(timezone.utc)


def _oauth_error(resp) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _refused_for_good(exc: ShopifyAuthError) -> bool:
    """Whether a failed refresh means the stored tokens are dead: nothing to refresh with, or
    400/401 on the refresh (invalid_grant: refresh token expired or revoked). Not so for
    invalid_client: that blames our own client id or secret, and a configuration slip must not
    wipe every shop's refresh token."""
    if not isinstance(exc, TokenRefused):
        return True
    return exc.status in (400, 401) and exc.error != "invalid_client"


def _retry_after(resp) -> float | None:
    try:
        return float(resp.headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def _throttle_wait(cost: dict, reserve: float = 0.0) -> float:
    """Seconds until Shopify's bucket holds the query's requested cost (and the client's reserve)."""
    status = cost.get("throttleStatus") or {}
    restore = float(status.get("restoreRate") or DEFAULT_RESTORE_RATE)
    maximum = float(status.get("maximumAvailable") or DEFAULT_MAXIMUM)
    need = min(maximum, float(cost.get("requestedQueryCost") or 0) + reserve * maximum)
    return max((need - float(status.get("currentlyAvailable") or 0)) / restore, 1.0 / restore)
