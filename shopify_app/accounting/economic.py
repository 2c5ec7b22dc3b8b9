"""e-conomic (Visma, Denmark): a credit note as e-conomic makes one — a draft invoice whose
lines carry negative quantities, then booked — over the legacy REST API (restapi.e-conomic.com).
What e-conomic is known to do, with sources, and what the stand-in assumes: docs/ECONOMIC_MODEL.md.

Config (a plain dict; numbers may be given as strings):
    app_secret_token        the app's X-AppSecretToken (from e-conomic's developer agreement)
    agreement_grant_token   the company's X-AgreementGrantToken (issued when it approved the app)
    layout_number           layout.layoutNumber of every document
    payment_terms_number    paymentTerms.paymentTermsNumber of every document (and of new customers)
    vat_zone_number         recipient.vatZone.vatZoneNumber (and the vatZone of new customers)
    products                {"25": "<productNumber>", "0": "<productNumber>"}: the product whose
                            product group books that VAT rate (e-conomic takes no rate per line)
    shipping_product        productNumber for shipping lines (or {"25": ..., "0": ...} by rate);
                            one product books 25 %, so it takes the 25 % lines only and a line
                            at another rate takes products[rate]
    fee_product             productNumber for return-shipping and restocking fees (or a dict by
                            rate), the same way
    default_customer_number the customer a note without a buyer goes to (Shopify withholds them)
    customer_group_number   customerGroup of customers this adapter creates (none: the default
                            customer takes buyers e-conomic does not know)
    currencies              optional, the currencies the shop books in (default ["DKK"])
    rounding_product        optional, the product an øre difference is booked on (default
                            products["0"]; it must carry no VAT)
    rate_limit_tokens       optional, the client-side bucket per agreement (default 2000 a minute)

Signs (e-conomic's): a line's quantity has the sign of the note line's amount (negative where the
customer gets money back), unitNetPrice is never negative. A note that nets to a charge (an
exchange costing the customer more) is one document with both kinds of line: its gross total is
positive, so e-conomic books and prints it as an invoice (e-conomic's own advice, see the model).

Exactly once: every write carries an `Idempotency-Key` derived from our reference and the body,
our reference is written into `references.other`, and before anything is made the booked
invoices and the drafts are looked up by it (a draft left by an earlier attempt is booked, not
made again). Amounts: e-conomic prices the document itself from net unit prices (two decimals)
and the products' VAT, so the adapter converts each VAT-included amount to net, books any øre
the conversion cannot reach on the rounding product, and reads the draft's own grossAmount
before booking: a draft that does not come to the note's total to the øre is corrected once or
deleted, never booked."""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from decimal import ROUND_HALF_UP, Decimal

import requests

from . import DANISH_VAT, AccountingError, AuthError, Base, Booked, Journal, Note, Transient, Unbookable, ValidationError

BASE_URL = "https://restapi.e-conomic.com"
TIMEOUT = (5, 30)          # connect, read (seconds)
READ_ATTEMPTS = 3          # a GET is repeated in place after a 5xx or a dropped connection
MAX_INLINE_WAIT = 5.0      # longer pauses go back to the caller as Transient(retry_after)
DEFAULT_RETRY_AFTER = 60.0  # a 429 without Retry-After: the bucket's refill window (Chift: 60 s)
BUCKET_WINDOW = 60.0
DEFAULT_BUCKET = 2000      # Chift: 2,000 tokens per 60 s (the smaller of the published figures)
DEFAULT_COST = {"GET": 10, "POST": 25, "PUT": 25, "DELETE": 10}  # [guess] until X-CallCost says
REFERENCE_MAX = 250        # references.other (restdocs)
HEADING_MAX, TEXT_MAX, DESCRIPTION_MAX = 250, 1000, 2500
CENT = Decimal("0.01")
MAX_ROUNDING = Decimal("0.05")  # more than this between our net and e-conomic's gross is not rounding
FEE_KINDS = ("return_shipping_fee", "restocking_fee")
ROUNDING_TEXT = "Øreafrunding"
KIND_WORDS = {"shipping": "Fragt", "return_shipping_fee": "Returfragt", "restocking_fee": "Returgebyr"}


class _NotFound(ValidationError):
    """404 from e-conomic."""


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _rate_key(rate: Decimal) -> str:
    return format(Decimal(rate).normalize(), "f")


def _escape_filter(value: str) -> str:
    """restdocs "Escaping special characters in your filter": $ ( ) * , [ ] are escaped with $."""
    out = value.replace("$", "$$")
    for ch in "()*,[]":
        out = out.replace(ch, "$" + ch)
    return out


def stored_reference(reference: str) -> str:
    """Our reference as it fits references.other (250 characters): a longer one keeps a hash of
    the whole so two long references never meet."""
    if len(reference) <= REFERENCE_MAX:
        return reference
    return reference[:REFERENCE_MAX - 17] + "~" + hashlib.sha256(reference.encode()).hexdigest()[:16]


class _Bucket:
    """The client-side share of e-conomic's cost-based bucket per agreement (docs model A4): each
    call takes its cost (the last X-CallCost e-conomic sent for that kind of call, else a guess);
    a call that would overdraw it waits a short while or goes back as Transient(retry_after)."""

    def __init__(self, capacity: float):
        self.capacity = capacity
        self.tokens = capacity
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self, cost: float) -> float:
        """0 when the call may go now, else the seconds to wait (nothing taken)."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.capacity / BUCKET_WINDOW)
            self.at = now
            if self.tokens >= cost:
                self.tokens -= cost
                return 0.0
            return (cost - self.tokens) * BUCKET_WINDOW / self.capacity

    def drain(self) -> None:
        with self.lock:
            self.tokens = 0.0
            self.at = time.monotonic()


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_LOCK = threading.Lock()


def _bucket_for(key: str, capacity: float) -> _Bucket:
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None or bucket.capacity != capacity:
            bucket = _BUCKETS[key] = _Bucket(capacity)
        return bucket


class EconomicAdapter(Base):
    system = "economic"

    def __init__(self, config: dict, base_url: str | None = None, *, timeout=TIMEOUT, sleep=time.sleep,
                 http: requests.Session | None = None):
        self.config = dict(config or {})
        self.base_url = (base_url or os.environ.get("ECONOMIC_BASE_URL") or BASE_URL).rstrip("/")
        self._app_secret = str(self.config.get("app_secret_token") or "")
        self._grant = str(self.config.get("agreement_grant_token") or "")
        self.timeout = timeout
        self.sleep = sleep
        self.http = http or requests.Session()
        agreement = hashlib.sha256(f"{self.base_url}\n{self._grant}".encode()).hexdigest()
        self._bucket = _bucket_for(agreement, float(self.config.get("rate_limit_tokens") or DEFAULT_BUCKET))
        self._costs: dict[str, float] = {}

    def __repr__(self):  # never the tokens
        return f"EconomicAdapter({self.base_url!r})"

    # --- the interface -----------------------------------------------------------------------

    def bookable_rates(self) -> frozenset[Decimal]:
        return frozenset(Decimal(k) for k in (self.config.get("products") or {}))

    def test_connection(self) -> dict:
        """Reads the agreement and what the settings map to, in e-conomic's own words."""
        try:
            me = self._call("GET", "/self")
            choices = {
                "layouts": [{"layoutNumber": x.get("layoutNumber"), "name": x.get("name")}
                            for x in self._collection("/layouts")],
                "paymentTerms": [{"paymentTermsNumber": x.get("paymentTermsNumber"), "name": x.get("name"),
                                  "paymentTermsType": x.get("paymentTermsType")}
                                 for x in self._collection("/payment-terms")],
                "vatZones": [{"vatZoneNumber": x.get("vatZoneNumber"), "name": x.get("name")}
                             for x in self._collection("/vat-zones")],
                "products": [{"productNumber": x.get("productNumber"), "name": x.get("name"),
                              "productGroup": (x.get("productGroup") or {}).get("productGroupNumber")}
                             for x in self._collection("/products")],
                "customerGroups": [{"customerGroupNumber": x.get("customerGroupNumber"), "name": x.get("name")}
                                   for x in self._collection("/customer-groups")],
                "currencies": [x.get("code") for x in self._collection("/currencies")],
            }
        except AccountingError as exc:
            return {"ok": False, "message": exc.message, "choices": {}}
        company = (me.get("company") or {}).get("name") if isinstance(me, dict) else None
        return {"ok": True, "message": f"e-conomic: {company or me.get('agreementNumber', '')}".strip(),
                "choices": choices}

    def find(self, note: Note, sent: dict | None = None) -> Booked | None:
        invoice = self._find_booked(stored_reference(note.reference))
        return self._booked(invoice) if invoice else None

    def send(self, note: Note, journal: Journal | None = None) -> Booked:
        lines = self._plan_lines(note)            # Unbookable before any call
        self.journaled(note, journal)
        reference = stored_reference(note.reference)
        found = self._find_booked(reference)
        if found:
            return self._booked(found)
        draft = None
        for existing in self._find_drafts(reference):
            if draft is None and _amount(existing.get("grossAmount")) == note.total:
                draft = existing
            else:  # a draft of an attempt that did not come to the total, or a second one: not booked
                self._delete_draft(existing["draftInvoiceNumber"])
        if draft is None:
            customer, recipient = self._customer(note)
            sale = self._sale_invoice(note.order_name)
            body = self._draft_body(note, reference, customer, recipient, sale, lines)
            draft = self._call("POST", "/invoices/drafts", body=body, key=_key(reference, "draft", body))
            draft = self._settle_gross(note, reference, body, draft)
        booked = self._call("POST", "/invoices/booked",
                            body={"draftInvoice": {"draftInvoiceNumber": draft["draftInvoiceNumber"]}},
                            key=_key(reference, "book", draft["draftInvoiceNumber"]))
        if not isinstance(booked, dict) or booked.get("bookedInvoiceNumber") is None:
            raise Transient("e-conomic answered the booking without an invoice number", outcome_unknown=True)
        return self._booked(booked)

    # --- lines and amounts -------------------------------------------------------------------

    def _plan_lines(self, note: Note) -> list[dict]:
        """Each note line as an e-conomic line (product, signed quantity, net unit price), plus an
        øre line where the net prices cannot reach the note's total; raises Unbookable first."""
        currencies = [str(c).upper() for c in (self.config.get("currencies") or ["DKK"])]
        if (note.currency or "").upper() not in currencies:
            raise Unbookable(f"e-conomic is not set up to book {note.currency}", code="unsupported_currency",
                             params={"currency": note.currency})
        products = {_rate_key(Decimal(k)): str(v) for k, v in (self.config.get("products") or {}).items()}
        out, predicted = [], Decimal(0)
        for line in note.lines:
            rate = _rate_key(line.vat_rate)
            if rate not in products:
                raise Unbookable(f"no e-conomic product is mapped to {rate} % VAT", code="unsupported_vat_rate",
                                 params={"rate": rate, "item": line.description})
            product = self._product_for(line.kind, rate, products)
            amount = Decimal(line.amount)
            sign = -1 if amount < 0 or (amount == 0 and line.quantity < 0) else 1
            net = _money(abs(amount) * 100 / (100 + Decimal(line.vat_rate)))
            count = abs(int(line.quantity)) or 1
            description = self._description(line)
            if count > 1 and (net * 100) % count:
                # The net total does not split into whole øre per unit: one line for all of them,
                # with the count in the text, so nothing is lost to rounding.
                description, count = f"{count} × {description}", 1
            unit = net / count
            out.append({"product": {"productNumber": product}, "quantity": sign * count,
                        "unitNetPrice": unit, "description": description[:DESCRIPTION_MAX]})
            predicted += sign * (net + _money(net * Decimal(line.vat_rate) / 100))
        difference = note.total - predicted
        if difference:
            out.append(self._rounding_line(difference))
        for number, line in enumerate(out, start=1):
            line["lineNumber"] = line["sortKey"] = number
        return out

    def _product_for(self, kind: str, rate: str, products: dict) -> str:
        mapped = self.config.get("shipping_product") if kind == "shipping" else (
            self.config.get("fee_product") if kind in FEE_KINDS else None)
        if isinstance(mapped, dict):
            mapped = {_rate_key(Decimal(k)): v for k, v in mapped.items()}.get(rate)
        elif rate != _rate_key(DANISH_VAT):
            # One product's group books one VAT rate (accounting.DANISH_VAT).
            mapped = None
        return str(mapped) if mapped else products[rate]

    @staticmethod
    def _description(line) -> str:
        words = KIND_WORDS.get(line.kind)
        text = (line.description or "").strip()
        if words:
            return f"{words}: {text}" if text and text.casefold() != words.casefold() else words
        return text or (line.sku or "Vare")

    def _rounding_line(self, difference: Decimal) -> dict:
        product = self.config.get("rounding_product") or (self.config.get("products") or {}).get("0")
        if not product:
            raise Unbookable("e-conomic cannot book this total to the øre without a 0 % product for øre rounding",
                             code="unsupported_vat_rate", params={"rate": "0", "item": ROUNDING_TEXT})
        return {"product": {"productNumber": str(product)}, "quantity": 1 if difference > 0 else -1,
                "unitNetPrice": abs(difference), "description": ROUNDING_TEXT}

    def _settle_gross(self, note: Note, reference: str, body: dict, draft: dict) -> dict:
        """The draft as e-conomic priced it must come to the note's total to the øre before it is
        booked: one correction of the øre line, else the draft is deleted and the note refused."""
        gross = _amount(draft.get("grossAmount"))
        if gross == note.total:
            return draft
        number = draft["draftInvoiceNumber"]
        difference = note.total - gross if gross is not None else None
        if difference is not None and abs(difference) <= MAX_ROUNDING:
            lines = [dict(x) for x in body["lines"]]
            current = Decimal(0)
            if lines and lines[-1]["description"] == ROUNDING_TEXT:
                last = lines.pop()
                current = Decimal(str(last["unitNetPrice"])) * Decimal(str(last["quantity"]))
            wanted = current + difference
            try:
                if wanted:
                    lines.append(_as_json_line(self._rounding_line(wanted)))
            except Unbookable:
                lines = None
            if lines:
                for n, line in enumerate(lines, start=1):
                    line["lineNumber"] = line["sortKey"] = n
                fixed = {**body, "lines": lines}
                draft = self._call("PUT", f"/invoices/drafts/{number}", body=fixed,
                                   key=_key(reference, "put", fixed))
                if _amount(draft.get("grossAmount")) == note.total:
                    return draft
        self._delete_draft(number)
        raise ValidationError(
            f"e-conomic prices this document at {gross} {note.currency}, not {note.total}: check that the "
            f"mapped products book the VAT rates of their lines",
            detail=json.dumps({"grossAmount": str(gross), "total": str(note.total)}))

    def _delete_draft(self, number) -> None:
        try:
            self._call("DELETE", f"/invoices/drafts/{number}", key=_key(str(number), "delete"))
        except _NotFound:
            pass

    # --- the document ------------------------------------------------------------------------

    def _draft_body(self, note: Note, reference: str, customer: int, recipient: dict, sale: dict | None,
                    lines: list[dict]) -> dict:
        kind = "Faktura" if note.is_charge else "Kreditnota"
        heading = f"{kind} – ordre {note.order_name}"
        if sale is not None:
            # e-conomic has no link to the invoice credited: it is named where the reader sees it.
            heading += f", faktura nr. {sale['bookedInvoiceNumber']}"
        notes = {"heading": heading[:HEADING_MAX]}
        if (note.text or "").strip():
            notes["textLine1"] = note.text.strip()[:TEXT_MAX]
        return {
            "date": note.date.isoformat(),
            "currency": note.currency.upper(),
            "customer": {"customerNumber": customer},
            "recipient": recipient,
            "layout": {"layoutNumber": int(self._required("layout_number"))},
            "paymentTerms": {"paymentTermsNumber": int(self._required("payment_terms_number"))},
            "references": {"other": reference},
            "notes": notes,
            "lines": [_as_json_line(line) for line in lines],
        }

    def _required(self, key: str):
        value = self.config.get(key)
        if value in (None, ""):
            raise ValidationError(f"the e-conomic setting {key} is missing")
        return value

    def _booked(self, invoice: dict) -> Booked:
        number = str(invoice["bookedInvoiceNumber"])
        heading = (invoice.get("notes") or {}).get("heading") or ""
        named = re.search(r"faktura nr\. (\d+)", heading)
        return Booked(id=number, number=number, credited_invoice=named.group(1) if named else None, ids=(number,))

    def _find_booked(self, reference: str) -> dict | None:
        for invoice in self._collection("/invoices/booked", f"references.other$eq:{_escape_filter(reference)}"):
            # string filters are case-insensitive (restdocs "Filtering"): compare exactly here
            if (invoice.get("references") or {}).get("other") == reference:
                return invoice
        return None

    def _find_drafts(self, reference: str) -> list[dict]:
        return [d for d in self._collection("/invoices/drafts", f"references.other$eq:{_escape_filter(reference)}")
                if (d.get("references") or {}).get("other") == reference]

    def _sale_invoice(self, order_name: str) -> dict | None:
        """The order's sale invoice, if e-conomic holds one whose references.other is the order's
        name (how a shop's invoicing app is assumed to mark it: UNCONFIRMED, docs model D4)."""
        if not order_name:
            return None
        found = [i for i in self._collection("/invoices/booked", f"references.other$eq:{_escape_filter(order_name)}")
                 if ((i.get("references") or {}).get("other") or "").strip() == order_name.strip()
                 and (_amount(i.get("grossAmount")) or 0) > 0]
        return min(found, key=lambda i: i["bookedInvoiceNumber"]) if found else None

    # --- customers ---------------------------------------------------------------------------

    def _customer(self, note: Note) -> tuple[int, dict]:
        """The customer number and the recipient: found by CVR, else e-mail, else created; the
        default customer when Shopify shares no buyer."""
        buyer = note.buyer
        zone = {"vatZoneNumber": int(self._required("vat_zone_number"))}
        cvr = re.sub(r"\D", "", buyer.national_id or "") if buyer else ""
        email = (buyer.email or "").strip() if buyer else ""
        found = None
        if cvr:
            found = next((c for c in self._collection("/customers", f"corporateIdentificationNumber$eq:{cvr}")
                          if re.sub(r"\D", "", c.get("corporateIdentificationNumber") or "") == cvr), None)
        if found is None and email:
            found = next((c for c in self._collection("/customers", f"email$eq:{_escape_filter(email)}")
                          if (c.get("email") or "").strip().casefold() == email.casefold()), None)
        if found is None and (cvr or email) and self.config.get("customer_group_number"):
            found = self._create_customer(buyer, cvr, email, note.currency)
        if found is None:
            number = int(self._required("default_customer_number"))
            found = self._call("GET", f"/customers/{number}")
        name = ((buyer.name if buyer else None) or found.get("name") or "").strip() or "Kunde"
        recipient = {"name": name[:250], "vatZone": zone}
        address = (buyer.address if buyer else None) or {}
        for ours, theirs in (("line1", "address"), ("zip", "zip"), ("city", "city"), ("country", "country")):
            if address.get(ours):
                recipient[theirs] = str(address[ours])[:50 if theirs == "country" else 250]
        return int(found["customerNumber"]), recipient

    def _create_customer(self, buyer, cvr: str, email: str, currency: str) -> dict:
        body = {
            "name": ((buyer.name or "").strip() or email or cvr)[:255],
            "currency": currency.upper(),
            "customerGroup": {"customerGroupNumber": int(self.config["customer_group_number"])},
            "paymentTerms": {"paymentTermsNumber": int(self._required("payment_terms_number"))},
            "vatZone": {"vatZoneNumber": int(self._required("vat_zone_number"))},
        }
        if email:
            body["email"] = email
        if cvr:
            body["corporateIdentificationNumber"] = cvr
        address = buyer.address or {}
        for ours, theirs in (("line1", "address"), ("zip", "zip"), ("city", "city"), ("country", "country")):
            if address.get(ours):
                body[theirs] = str(address[ours])
        return self._call("POST", "/customers", body=body, key=_key(cvr or email.casefold(), "customer", body))

    # --- transport ---------------------------------------------------------------------------

    def _collection(self, path: str, filter_: str | None = None) -> list[dict]:
        """Every page of a collection (restdocs "Pagination": skippages, pagesize ≤ 1000)."""
        rows, page = [], 0
        while True:
            params = {"skippages": page, "pagesize": 1000}
            if filter_:
                params["filter"] = filter_
            answer = self._call("GET", path, params=params)
            chunk = answer.get("collection") or [] if isinstance(answer, dict) else []
            rows.extend(chunk)
            if len(chunk) < 1000 or page >= 50:
                return rows
            page += 1

    def _headers(self, key: str | None) -> dict:
        headers = {"X-AppSecretToken": self._app_secret, "X-AgreementGrantToken": self._grant,
                   "Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def _call(self, method: str, path: str, *, params=None, body=None, key: str | None = None):
        attempts = READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, params=params, body=body, key=key)
            except Transient as exc:
                if attempt >= attempts or exc.retry_after is not None:
                    raise
                self.sleep(0.2 * attempt)

    def _once(self, method: str, path: str, *, params, body, key):
        kind = method + " " + _NUMBERS.sub("/n", path)
        wait = self._bucket.take(self._costs.get(kind, DEFAULT_COST.get(method, 10)))
        if wait:
            if wait > MAX_INLINE_WAIT:
                raise Transient("e-conomic's call budget is spent for now", retry_after=wait)
            self.sleep(wait)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        writes = method != "GET"
        try:
            resp = self.http.request(method, self.base_url + path, params=params, data=data,
                                     headers=self._headers(key), timeout=self.timeout)
        except requests.ConnectTimeout as exc:
            raise Transient(f"e-conomic did not accept the connection ({method} {path})") from exc
        except requests.RequestException as exc:
            # The request may have reached e-conomic: a write's outcome is unknown.
            raise Transient(f"{method} {path} to e-conomic failed: {type(exc).__name__}",
                            outcome_unknown=writes) from exc
        cost = resp.headers.get("X-CallCost")
        if cost:
            try:
                self._costs[kind] = float(cost)
            except ValueError:
                pass
        status = resp.status_code
        if status == 429:
            self._bucket.drain()
            raise Transient("e-conomic's rate limit (429)", retry_after=_retry_after(resp), detail=resp.text[:2000])
        if status >= 500:
            raise Transient(f"{method} {path}: e-conomic answered {status}", outcome_unknown=writes,
                            retry_after=_retry_after(resp, None), detail=resp.text[:2000])
        if status in (401, 403):
            raise AuthError(_message(resp) or "e-conomic refused the tokens", detail=resp.text[:2000])
        if status == 404:
            raise _NotFound(_message(resp) or f"{path} not found in e-conomic", detail=resp.text[:2000])
        if status >= 400:
            raise ValidationError(_message(resp) or f"e-conomic refused {method} {path} ({status})",
                                  detail=resp.text[:4000])
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            raise Transient(f"{method} {path}: e-conomic's answer is not JSON", outcome_unknown=writes) from None


_NUMBERS = re.compile(r"/\d+")


def _key(reference: str, step: str, body=None) -> str:
    """The Idempotency-Key of one write: the same reference, step and body give the same key (a
    repeat is answered from e-conomic's cache), a changed body a new one."""
    text = json.dumps(body, sort_keys=True, default=str) if body is not None else ""
    return hashlib.sha256(f"skilvis\n{reference}\n{step}\n{text}".encode()).hexdigest()


def _as_json_line(line: dict) -> dict:
    """Numbers as JSON numbers (e-conomic takes no strings for them)."""
    return {**line, "unitNetPrice": float(line["unitNetPrice"]), "quantity": float(line["quantity"])}


def _amount(value) -> Decimal | None:
    return None if value is None else _money(Decimal(str(value)))


def _retry_after(resp, default=DEFAULT_RETRY_AFTER):
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _message(resp) -> str:
    """e-conomic's words from an error answer ({"message", "developerHint", "errors": {...}}):
    the general message, then each annotated error's own message."""
    try:
        answer = resp.json()
    except ValueError:
        return resp.text.strip()[:500]
    if not isinstance(answer, dict):
        return str(answer)[:500]
    found = []

    def walk(node):
        if isinstance(node, dict):
            errors = node.get("errors")
            for item in errors if isinstance(errors, list) else []:
                if isinstance(item, dict) and item.get("message"):
                    found.append(item["message"])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(answer.get("errors"))
    head = answer.get("message") or answer.get("errorCode") or ""
    return " ".join([str(head)] + found).strip()[:1000]
