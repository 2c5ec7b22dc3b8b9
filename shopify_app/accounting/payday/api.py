"""Talking to Payday (payday.is): login, customers, invoices, payment types.

Every call to Payday goes through `PaydayClient`, so the rules of the API live in one place
(../shared/spec/payday.md, reconstructed from Payday's official WooCommerce plugin):
`Api-Version: alpha` on every request including the login, a 24 h bearer token cached per
shop, one fresh login on a 401, and every failure classified as transient (try again later),
auth (the merchant must fix the connection) or validation (Payday refused this invoice; its
own words are kept for the merchant).

Payday has no idempotency key. The client therefore never repeats a POST by itself; when a
create's outcome is unknown (`PaydayTransient.outcome_unknown`) the caller looks for the invoice
among the customer's own invoices (`find_own_invoice`) before trying again. Reads are repeated a
few times in place, waiting out short Retry-After pauses.

This module sends what it is given: invoice bodies are built elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote

import requests

from ... import crypto, db
from ... import kennitala as kennitala_rules
from .. import AccountingError, AuthError, Transient, Unconfirmed, ValidationError

log = logging.getLogger(__name__)

BASE_URLS = {"production": "https://api.payday.is", "test": "https://api.test.payday.is"}


def base_url(environment: str) -> str:
    """Payday's API for a shop's environment, unless PAYDAY_BASE_URL points the app elsewhere
    (the sandbox's and the tests' stand-in)."""
    from ...config import load

    return load().payday_base_url or BASE_URLS[environment]
API_VERSION = "alpha"
USER_AGENT = "skilvis-shopify-app:1.0 (Skilvis, Shopify credit invoices)"
TIMEOUT = (5, 30)  # connect, read (seconds); the plugin uses 30 s
READ_ATTEMPTS = 3
MAX_INLINE_WAIT = 10.0  # longer Retry-After pauses go back to the job queue instead of blocking a worker
TOKEN_MARGIN = timedelta(minutes=5)
DEFAULT_TOKEN_LIFETIME = 86400
# A customer's invoices are read 500 to a page (Payday's most, as far as is known) and at most
# 40 pages: 20,000 invoices, a cash customer's years of sales included.
LOOKUP_PERPAGE = 500
LOOKUP_PAGES = 40


class PaydayError(AccountingError):
    """Any failure talking to Payday."""


class PaydayTransient(PaydayError, Transient):
    """Timeout, connection failure, 5xx or 429: try again later.

    `retry_after` is Payday's Retry-After in seconds when it sent one. `outcome_unknown` is
    True when a non-repeatable request (a create) may have been carried out even so: look the
    result up before sending it again."""

    def __init__(self, message: str, retry_after: float | None = None, *, outcome_unknown: bool = False,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.status = status


class PaydayAuthError(PaydayError, AuthError):
    """Wrong or revoked credentials, the wrong environment, or a company that has not finished
    Payday's system setup: nothing succeeds until the merchant fixes it."""

    def __init__(self, message: str, *, status: int | None = None, code=None, setup_required: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.setup_required = setup_required


class PaydayValidationError(PaydayError, ValidationError):
    """Payday refused the request (4xx). `str(error)` is Payday's own message, verbatim, for
    the merchant; `code` is Payday's errorCode when it sent one (e.g. 21018)."""

    def __init__(self, message: str, *, status: int | None = None, code=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class PaydayUnconfirmed(PaydayError, Unconfirmed):
    """Payday could not be asked enough to be sure whether it holds an invoice: creating it
    again could make a second one, so the merchant is asked to look."""


class PaydayNotFound(PaydayValidationError):
    """404: no such customer or invoice."""


# --- token stores ------------------------------------------------------------------------


def credentials_hash(base_url: str, client_id: str) -> str:
    """The token cache key: new credentials or another environment never reuse a token."""
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{client_id}".encode()).hexdigest()


class MemoryTokenStore:
    """Tokens kept in this process only (one-off clients, the settings page's connection test)."""

    def __init__(self):
        self._tokens: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        with self._lock:
            self._tokens[key] = (token, expires_at)

    def drop(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)


class PostgresTokenStore:
    """The shop's token in `payday_tokens`, encrypted: RQ forks a process per job, and a login
    per job would be one more call to Payday each time."""

    def __init__(self, shop_id: int, *, database_url: str | None = None):
        self.shop_id = shop_id
        self.database_url = database_url

    def get(self, key: str) -> tuple[str, datetime] | None:
        with db.transaction(self.database_url) as conn:
            row = conn.execute(
                "SELECT access_token_enc, expires_at FROM payday_tokens WHERE shop_id = %s AND credentials_hash = %s",
                (self.shop_id, key)).fetchone()
        if row is None:
            return None
        return crypto.decrypt(row["access_token_enc"]), row["expires_at"]

    def put(self, key: str, token: str, expires_at: datetime) -> None:
        with db.transaction(self.database_url) as conn:
            conn.execute(
                "INSERT INTO payday_tokens (shop_id, credentials_hash, access_token_enc, expires_at)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (shop_id) DO UPDATE SET credentials_hash = EXCLUDED.credentials_hash,"
                " access_token_enc = EXCLUDED.access_token_enc, expires_at = EXCLUDED.expires_at",
                (self.shop_id, key, crypto.encrypt(token), expires_at))

    def drop(self, key: str) -> None:
        with db.transaction(self.database_url) as conn:
            conn.execute("DELETE FROM payday_tokens WHERE shop_id = %s AND credentials_hash = %s",
                         (self.shop_id, key))


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerMatch:
    id: str
    by: str              # kennitala | email | created
    has_email: bool      # Payday has an address to e-mail the invoice to


class PaydayClient:
    def __init__(self, base_url: str, client_id: str, client_secret: str, *, token_store=None,
                 http: requests.Session | None = None, sleep=time.sleep, timeout=TIMEOUT,
                 read_attempts: int = READ_ATTEMPTS):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_store = token_store if token_store is not None else MemoryTokenStore()
        self.token_key = credentials_hash(self.base_url, client_id)
        self.http = http or requests.Session()
        self.sleep = sleep
        self.timeout = timeout
        self.read_attempts = max(1, read_attempts)
        self._token: tuple[str, datetime] | None = None
        self._token_lock = threading.RLock()

    @classmethod
    def for_shop(cls, settings, **kwargs) -> "PaydayClient":
        """The shop's saved Payday connection (shop_settings.ShopSettings), its token kept in Postgres."""
        return cls(base_url(settings.payday_environment), settings.payday_client_id, settings.payday_client_secret,
                   token_store=PostgresTokenStore(settings.shop_id), **kwargs)

    @classmethod
    def for_environment(cls, environment: str, client_id: str, client_secret: str, **kwargs) -> "PaydayClient":
        if environment not in BASE_URLS:
            raise ValueError(f"unknown Payday environment {environment!r}")
        return cls(BASE_URLS[environment], client_id, client_secret, **kwargs)

    def __repr__(self):  # never the secret or the token
        return f"PaydayClient({self.base_url!r}, {self.client_id!r})"

    # --- customers -------------------------------------------------------------------------

    def find_or_create_customer(self, **buyer) -> str:
        """The Payday customer id for this buyer (see match_customer)."""
        return self.match_customer(**buyer).id

    def match_customer(self, *, kennitala: str | None = None, email: str | None = None, name: str,
                       address: str | None = None, zip_code: str | None = None, city: str | None = None,
                       country: str | None = None, phone: str | None = None,
                       contact: str | None = None, language: str | None = None) -> "CustomerMatch":
        """The Payday customer for this buyer and how it was found (`kennitala`, `email` or
        `created`), in the order Payday's own apps use: kennitala, then an exact e-mail match,
        else a new customer.

        A kennitala that fails only the check digit (issued since 2026-02-18, see kennitala.py)
        is still looked up, since Payday may already know it; but no customer is created from
        it, because a mistyped number would put the invoice on a stranger's kennitala, and
        falling back to the e-mail is what Payday does with an invalid one (H87)."""
        ssn = kennitala_rules.normalize(kennitala, check_digit=False) if kennitala else None
        fields = dict(name=name, email=email, address=address, zip_code=zip_code, city=city, country=country,
                      phone=phone, contact=contact, language=language)
        if ssn:
            found = self.get_customer_by_ssn(ssn)
            if found and found.get("id"):
                return CustomerMatch(str(found["id"]), "kennitala", bool((found.get("email") or "").strip()))
            if kennitala_rules.has_valid_check_digit(ssn):
                return CustomerMatch(self._create_customer(ssn=ssn, **fields), "created", bool(email))
            log.info("kennitala fails the check digit and Payday does not know it: using the e-mail instead")
        if email and email.strip():
            found = self.find_customer_by_email(email)
            if found:
                return CustomerMatch(str(found["id"]), "email", True)
        return CustomerMatch(self._create_customer(ssn=None, **fields), "created", bool(email and email.strip()))

    def get_customer(self, customer_id: str) -> dict:
        return self._call("GET", f"/customers/{quote(str(customer_id), safe='')}")

    def get_customer_by_ssn(self, ssn: str) -> dict | None:
        try:
            found = self._call("GET", f"/customers/number/{quote(ssn, safe='')}")
        except PaydayNotFound:
            return None
        return found if isinstance(found, dict) and found else None

    def search_customers(self, query: str) -> list[dict]:
        return _items(self._call("GET", "/customers/search/", params={"query": query}), "customers")

    def find_customer_by_email(self, email: str) -> dict | None:
        """Only an exact (case-insensitive) e-mail match: Payday's search also answers with
        near misses, and an invoice on the wrong customer is worse than a new customer."""
        wanted = email.strip().casefold()
        for customer in self.search_customers(email.strip()):
            if (customer.get("email") or "").strip().casefold() == wanted and customer.get("id"):
                return customer
        return None

    def create_customer(self, body: dict) -> dict:
        return self._call("POST", "/customers", body=body)

    def _create_customer(self, *, ssn, name, email, address, zip_code, city, country, phone, contact,
                         language) -> str:
        body = {"name": name, "ssn": ssn, "email": email, "address": address, "zipCode": zip_code,
                "city": city, "country": country, "phone": phone, "contact": contact, "language": language}
        body = {k: v for k, v in body.items() if v is not None}
        try:
            created = self.create_customer(body)
        except PaydayValidationError:
            # Another worker may have just made the same customer (Payday refuses a second one
            # with that kennitala or e-mail): one look before the document fails for good.
            found = (self.get_customer_by_ssn(ssn) if ssn else None) or (
                self.find_customer_by_email(email) if email else None)
            if found and found.get("id"):
                return str(found["id"])
            raise
        if isinstance(created, dict):
            customer = created.get("customer") if isinstance(created.get("customer"), dict) else created
            if customer.get("id"):
                return str(customer["id"])
        # Payday has answered a create with an empty body (payday.md §4): find what it made.
        found = (self.get_customer_by_ssn(ssn) if ssn else None) or (
            self.find_customer_by_email(email) if email else None)
        if found is None and not ssn and not email:
            found = next((c for c in self.search_customers(name)
                          if (c.get("name") or "").strip() == name.strip() and c.get("id")), None)
        if not found:
            raise PaydayTransient("Payday accepted the new customer but it cannot be found yet", outcome_unknown=True)
        return str(found["id"])

    # --- invoices --------------------------------------------------------------------------

    def create_invoice(self, body: dict) -> dict:
        """POST /invoices once. Payday answers with the invoice (its `id`); `number` is
        usually null here and assigned about a minute later (read it with get_invoice)."""
        created = self._call("POST", "/invoices", body=body)
        if not isinstance(created, dict) or not created.get("id"):
            raise PaydayTransient("Payday answered the invoice create without an invoice id", outcome_unknown=True)
        return created

    def get_invoice(self, invoice_id: str, include_lines: bool = False) -> dict:
        params = {"include": "lines"} if include_lines else None
        return self._call("GET", f"/invoices/{quote(str(invoice_id), safe='')}", params=params)

    def customer_invoices(self, customer_id: str, *, newest_pages: int | None = None):
        """The customer's invoices, newest pages first: GET /customers/{id}/invoice pages through
        them without `query` or filters (docs/PAYDAY_MODEL.md: `query` may search neither
        reference nor anything else, and unknown filters are ignored). The order of the list is
        not documented, so the first page is read, then the rest from the last back, at most
        `newest_pages` in all; raises PaydayUnconfirmed when they were not all read."""
        newest_pages = newest_pages or LOOKUP_PAGES
        path = f"/customers/{quote(str(customer_id), safe='')}/invoice"
        first = self._call("GET", path, params={"perpage": LOOKUP_PERPAGE, "page": 1})
        yield from _items(first, "invoices")
        pages = int(first.get("pages") or 1) if isinstance(first, dict) else 1
        for page in range(pages, 1, -1):
            if pages - page + 2 > newest_pages:
                raise PaydayUnconfirmed(f"the customer has more than {newest_pages} pages of invoices")
            yield from _items(self._call("GET", path, params={"perpage": LOOKUP_PERPAGE, "page": page}), "invoices")

    def invoice_pages(self, date_from: date, date_to: date, *, perpage: int = LOOKUP_PERPAGE):
        """The company's invoices dated `date_from`..`date_to`, a page at a time: GET /invoices
        with the documented date filters (docs/PAYDAY_MODEL.md B2) and `perpage` (at most 500, B3),
        no `query`. Page 1 first (it tells how many pages there are), then from the last page
        back (oldest first, a new invoice is on the last page). Yields `(invoices, pages, total)`
        per page, each read only when asked for: the caller stops when it has what it needs.
        Payday may ignore the filters (B2): the caller checks each invoice's date itself."""
        params = {"dateFrom": date_from.isoformat(), "dateTo": date_to.isoformat(), "perpage": perpage}

        def read(page: int):
            answer = self._call("GET", "/invoices", params={**params, "page": page})
            pages = total = None
            if isinstance(answer, dict):
                pages, total = answer.get("pages"), answer.get("total")
            return (_items(answer, "invoices"), max(1, int(pages or 1)),
                    None if total is None else int(total))

        first = read(1)
        yield first
        for page in range(first[1], 1, -1):
            yield read(page)

    def find_own_invoice(self, customer_id: str, reference: str, total: Decimal) -> dict | None:
        """The invoice we created for this customer under this reference and total, if Payday has
        it: how a create whose answer was lost is checked before it is sent again (Payday has no
        idempotency key). Compared on the whole reference and the total, not trusted to a search."""
        for invoice in self.customer_invoices(customer_id):
            amount = invoice.get("amountIncludingVat")
            if invoice.get("reference") == reference and (amount is None or Decimal(str(amount)) == total):
                return invoice
        return None

    def mark_paid(self, invoice_id: str, *, paid_date: str, payment_type: str) -> dict:
        """Register the payment of an issued invoice (PUT /invoices/{id}, status PAID): a credit
        invoice Payday refused to create as paid is created unpaid, then marked paid once issued."""
        return self._call("PUT", f"/invoices/{quote(str(invoice_id), safe='')}",
                          body={"status": "PAID", "paidDate": paid_date, "paymentType": payment_type}, repeatable=True)

    # --- products and stock (docs/PAYDAY_MODEL.md F) ------------------------------------------

    def product_by_sku(self, sku: str) -> dict | None:
        """GET /products/sku/?sku=: the product with this sku, or None."""
        try:
            return self._call("GET", "/products/sku/", params={"sku": sku})
        except PaydayNotFound:
            return None

    def movements_page(self, product_id: str, page: int) -> list[dict]:
        """One page of the product's stock movements, newest first (B3, F5)."""
        return _items(self._call("GET", f"/products/{quote(str(product_id), safe='')}/movements",
                                 params={"page": page, "perpage": 100}), "productMovements")

    def add_movement(self, product_id: str, *, change: int, day: str, description: str) -> dict:
        """POST /products/{id}/movements: stock changed by `change` (the observed way to put goods
        back, F5). Not repeatable: an unknown outcome is looked for by its description first."""
        return self._call("POST", f"/products/{quote(str(product_id), safe='')}/movements",
                          body={"date": day, "description": description, "changeInQuantity": change})

    # --- settings --------------------------------------------------------------------------

    def payment_types(self) -> list[dict]:
        """The company's payment types (accounting keys): `id`, `title`, `description`."""
        return _items(self._call("GET", "/sales/paymenttypes"), "paymentTypes", "data")

    def vat_rates(self) -> list[float]:
        return [float(r) for r in _items(self._call("GET", "/general/vat"), "data")]

    def test_connection(self) -> dict:
        """Log in afresh (a cached token would hide a changed secret) and read the payment
        types. Raises the classified error when it fails."""
        with self._token_lock:
            self._token = None
            self._login()
        types = self.payment_types()
        return {"ok": True, "base_url": self.base_url,
                "payment_types": [{"id": t.get("id"), "title": t.get("title")} for t in types]}

    # --- transport -------------------------------------------------------------------------

    def _headers(self, token: str | None) -> dict:
        headers = {"Api-Version": API_VERSION, "Content-Type": "application/json",
                   "Accept": "application/json", "User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(self, method: str, path: str, *, params=None, body=None, token=None, repeatable: bool):
        try:
            data = None if body is None else json.dumps(body, default=_json_default, ensure_ascii=False).encode()
            return self.http.request(method, self.base_url + path, params=params, data=data,
                                     headers=self._headers(token), timeout=self.timeout)
        except requests.ConnectTimeout as exc:
            raise PaydayTransient(f"Payday did not accept the connection ({method} {shown_path(path)}): "
                                  f"{type(exc).__name__}") from exc
        except requests.RequestException as exc:
            # The request may have reached Payday before the connection failed. The exception's
            # own text holds the whole URL (a search's e-mail): only its kind is kept.
            raise PaydayTransient(f"{method} {shown_path(path)} to Payday failed: {type(exc).__name__}",
                                  outcome_unknown=not repeatable) from exc

    def _call(self, method: str, path: str, *, params=None, body=None, repeatable: bool | None = None):
        repeatable = method == "GET" if repeatable is None else repeatable
        attempts = self.read_attempts if repeatable else 1
        attempt, renewed = 0, False
        while True:
            attempt += 1
            token = self._access_token()
            try:
                resp = self._send(method, path, params=params, body=body, token=token, repeatable=repeatable)
                if resp.status_code == 401:
                    message, code = error_detail(resp)
                    if is_setup_refusal(message):
                        raise PaydayAuthError(message, status=401, code=code, setup_required=True)
                    if renewed:
                        raise PaydayAuthError(message if resp.content else "Payday refused the access token",
                                              status=401, code=code)
                    self._renew(token)
                    renewed, attempt = True, attempt - 1
                    continue
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _transient(resp, method, path, outcome_unknown=not repeatable and resp.status_code != 429)
                if resp.status_code >= 400:
                    raise _refusal(resp)
                return _body(resp)
            except PaydayTransient as exc:
                if attempt >= attempts or not self._pause(exc, attempt):
                    raise

    def _pause(self, exc: PaydayTransient, attempt: int) -> bool:
        wait = exc.retry_after if exc.retry_after is not None else min(2.0 ** (attempt - 1), MAX_INLINE_WAIT)
        if wait > MAX_INLINE_WAIT:
            return False
        self.sleep(wait)
        return True

    # --- token -----------------------------------------------------------------------------

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token and _fresh(self._token[1]):
                return self._token[0]
            stored = self.token_store.get(self.token_key)
            if stored and _fresh(stored[1]):
                self._token = stored
                return stored[0]
            return self._login()

    def _renew(self, stale: str) -> str:
        """After a 401: another process may have logged in already; use its token rather
        than logging in a second time, otherwise drop the stale one and log in."""
        with self._token_lock:
            self._token = None
            stored = self.token_store.get(self.token_key)
            if stored and stored[0] != stale and _fresh(stored[1]):
                self._token = stored
                return stored[0]
            self.token_store.drop(self.token_key)
            return self._login()

    def _login(self) -> str:
        body = {"clientId": self.client_id, "clientSecret": self._client_secret}
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._send("POST", "/auth/token", body=body, repeatable=True)
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _transient(resp, "POST", "/auth/token")
                break
            except PaydayTransient as exc:
                if attempt >= self.read_attempts or not self._pause(exc, attempt):
                    raise
        if resp.status_code != 200:
            message, code = error_detail(resp)
            raise PaydayAuthError(message, status=resp.status_code, code=code)
        answer = _body(resp)
        token = answer.get("accessToken") if isinstance(answer, dict) else None
        if not token:
            raise PaydayAuthError("Payday's login answer carries no access token", status=resp.status_code)
        lifetime = answer.get("expiresIn") or DEFAULT_TOKEN_LIFETIME
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=int(lifetime))
        self.token_store.put(self.token_key, token, expires_at)
        self._token = (token, expires_at)
        log.info("logged in to Payday at %s as %s", self.base_url, self.client_id)
        return token


# --- answers -----------------------------------------------------------------------------

_NO_JSON = object()


def error_detail(resp: requests.Response) -> tuple[str, object]:
    """Payday's own message and code from an error answer, whatever its shape (payday.md §3):
    plain text, a JSON string, {"message"}, {"errorCode","errorMessage"}, OAuth's
    {"error","error_description"}, or ASP.NET's problem details {"title","errors"}."""
    text = resp.text.strip() if resp.content else ""
    fallback = text or f"HTTP {resp.status_code} {resp.reason or ''}".strip()
    try:
        data = resp.json() if text else _NO_JSON
    except ValueError:
        data = _NO_JSON
    if isinstance(data, str):
        return data.strip() or fallback, None
    if isinstance(data, list):
        parts = [p.strip() for p in data if isinstance(p, str) and p.strip()]
        return ("; ".join(parts) or fallback), None
    if not isinstance(data, dict):
        return fallback, None
    code = data.get("errorCode")
    message = next((data[k].strip() for k in ("errorMessage", "message", "error_description", "detail", "title")
                    if isinstance(data.get(k), str) and data[k].strip()), None)
    if code is None and isinstance(data.get("error"), str):
        code = data["error"]
        message = message or data["error"]
    errors = data.get("errors")
    if isinstance(errors, dict) and errors:
        details = "; ".join(f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                            for field, msgs in errors.items())
        message = f"{message} {details}" if message else details
    return message or fallback, code


def as_text(value) -> str | None:
    """An id or a number as Payday sends it (a number or a string), as text; None when absent."""
    return None if value in (None, "") else str(value)


def _json_default(value):
    # Money arrives as Decimal; a float's shortest repr keeps every digit Payday's 4-decimal
    # prices carry, and the stdlib encoder has no other way to write a Decimal as a number.
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not an amount Payday can take")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def is_setup_refusal(message: str | None) -> bool:
    """Payday's refusal until the company finishes its system setup in Payday ("Please complete
    the required system setup ..."): no credentials will help, the merchant must finish it there
    (reasons.py tells them so)."""
    return "system setup" in (message or "").casefold()


def _retry_after(resp) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


# A path segment that names a customer (their kennitala): errors, logs and the timeline show the
# path without it, so no stored text carries a customer's details (issue 8, redaction).
_PERSONAL_PATH = re.compile(r"^(/customers/number/)[^/?]+")


def shown_path(path: str) -> str:
    return _PERSONAL_PATH.sub(r"\1…", path.split("?", 1)[0])


def _transient(resp, method: str, path: str, *, outcome_unknown: bool = False) -> PaydayTransient:
    message, _ = error_detail(resp)
    return PaydayTransient(f"{method} {shown_path(path)}: HTTP {resp.status_code} {message}".strip(), _retry_after(resp),
                           outcome_unknown=outcome_unknown, status=resp.status_code)


def _refusal(resp) -> PaydayError:
    message, code = error_detail(resp)
    if resp.status_code == 403:
        return PaydayAuthError(message, status=403, code=code)
    if resp.status_code == 404:
        return PaydayNotFound(message, status=404, code=code)
    if resp.status_code == 408:
        return PaydayTransient(message, _retry_after(resp), status=408)
    return PaydayValidationError(message, status=resp.status_code, code=code)


def _body(resp):
    if not resp.content or not resp.content.strip():
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _items(answer, *keys) -> list:
    """A list answer, bare or in Payday's wrapper object ({"customers": [...]} etc.)."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        for key in keys:
            if isinstance(answer.get(key), list):
                return answer[key]
    return []


def _fresh(expires_at: datetime | None) -> bool:
    if expires_at is None:
        return False
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    return expires_at - TOKEN_MARGIN > datetime.now(timezone.utc)
