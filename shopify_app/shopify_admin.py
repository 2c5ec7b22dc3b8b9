"""Talking to a shop's Admin API: token exchange, code grant, refresh, and the GraphQL transport.

All of Skilvís's calls to Shopify go through this module, so timeouts, throttling and the
"refresh once on 401" rule live in one place. ShopifyAPI has none of this (no expiring tokens,
no GraphQL timeouts or throttling), which is why it is ours.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests

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
MAX_THROTTLE_WAIT = 120.0  # seconds a single call may wait for the cost bucket


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
    """A transient failure (timeout, 5xx, throttling that did not clear): retry later."""


@dataclass(frozen=True)
class Answer:
    """A GraphQL answer: `data`, and the paths of the fields Shopify withheld from it (a field-level
    ACCESS_DENIED: protected customer data the app is not approved for). A withheld field is
    null in `data`."""
    data: dict
    withheld: frozenset[tuple] = frozenset()


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
        self.sleep = sleep
        self._buckets: dict[str, dict] = {}
        self._buckets_lock = threading.Lock()

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
        row = shops.get(shop)
        if not shops.is_installed(row):
            raise ShopifyAuthError(f"{shop} has no access token (not installed, or Shopify refused it: "
                                   "opening the app gets a new one)")
        if _fresh(row):
            return crypto.decrypt(row["access_token_enc"])
        return self._refresh_locked(shop, stale=crypto.decrypt(row["access_token_enc"]))

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
        """Run one GraphQL query. Waits out throttling (HTTP 200 with THROTTLED, or 429 with
        Retry-After), retries 5xx and timeouts with growing pauses, and refreshes the token once
        on a 401. A field Shopify withholds (ACCESS_DENIED on a path inside `data`) comes back
        null and named in `withheld`; every other error is classified (`_classify`)."""
        url = f"{self.settings.shop_url(shop)}/admin/api/{self.settings.api_version}/graphql.json"
        token = self.access_token(shop)
        refreshed, attempt, throttled_for = False, 0, 0.0
        while attempt < MAX_ATTEMPTS:
            attempt += 1
            self._wait_for_bucket(shop)
            try:
                resp = self.http.post(
                    url, json={"query": query, "variables": variables or {}}, timeout=TIMEOUT,
                    headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
                )
            except requests.RequestException as exc:
                if attempt == MAX_ATTEMPTS:
                    raise ShopifyUnavailable(f"GraphQL call to {shop} failed: {exc}") from exc
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
            if resp.status_code == 429 or resp.status_code >= 500:
                if attempt == MAX_ATTEMPTS:
                    raise ShopifyUnavailable(f"GraphQL call to {shop}: HTTP {resp.status_code}")
                self.sleep(_retry_after(resp) or min(2 ** (attempt - 1), 8))
                continue
            if resp.status_code != 200:
                raise ShopifyError(f"GraphQL call to {shop}: HTTP {resp.status_code} {resp.text[:200]}")
            body = resp.json()
            cost = (body.get("extensions") or {}).get("cost") or {}
            self._note_bucket(shop, cost)
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                # Throttling is Shopify pacing us, not failing: wait for the bucket to refill
                # (up to MAX_THROTTLE_WAIT in all) without spending an attempt.
                wait = _throttle_wait(cost)
                if throttled_for + wait > MAX_THROTTLE_WAIT:
                    raise ShopifyUnavailable(f"GraphQL call to {shop} stayed throttled for {throttled_for:.0f} s")
                throttled_for += wait
                attempt -= 1
                self.sleep(wait)
                continue
            return _classify(shop, body, errors)
        raise ShopifyUnavailable(f"GraphQL call to {shop} did not succeed")

    def _note_bucket(self, shop: str, cost: dict) -> None:
        status = cost.get("throttleStatus")
        if status:
            with self._buckets_lock:
                self._buckets[shop] = {**status, "at": time.monotonic(),
                                       "last_cost": cost.get("actualQueryCost") or cost.get("requestedQueryCost") or 0}

    def _wait_for_bucket(self, shop: str) -> None:
        """Pace calls by the last throttle status we saw, so a busy shop's bucket is never
        drained to THROTTLED in the first place (the BCApps bug, anchors.md A1)."""
        with self._buckets_lock:
            status = self._buckets.get(shop)
        if not status:
            return
        restore = float(status.get("restoreRate") or 50)
        elapsed = time.monotonic() - status["at"]
        available = min(float(status["maximumAvailable"]),
                        float(status["currentlyAvailable"]) + elapsed * restore)
        need = float(status.get("last_cost") or 0) + self.reserve * float(status["maximumAvailable"])
        if available < need:
            self.sleep((need - available) / restore)


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


def _throttle_wait(cost: dict) -> float:
    status = cost.get("throttleStatus") or {}
    restore = float(status.get("restoreRate") or 50)
    deficit = float(cost.get("requestedQueryCost") or 0) - float(status.get("currentlyAvailable") or 0)
    return max(deficit / restore, 1.0 / restore)
