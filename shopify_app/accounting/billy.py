"""Billy (billy.dk, API v2 at https://api.billysbilling.com/v2): a neutral credit note made into a
Billy credit note (`type: creditNote`) linked to the sale invoice it credits, approved (Billy
numbers it then; approval is irreversible), found again by our reference before anything is
created a second time. Behaviour, evidence and guesses: docs/BILLY_MODEL.md.

Config (a plain dict; the shop's settings fill it):
    access_token        Billy → Settings → Access tokens; sent as `X-Access-Token` (required)
    products            {"25": productId, "0": productId}: a VAT rate → the Billy product whose
                        sales-tax ruleset books that rate (a line's taxRate is read-only in Billy);
                        the keys are the rates the shop can book
    shipping_product    a productId, or {"25": id, ...}: shipping lines (default: `products`);
                        one product books 25 %, so it takes the 25 % lines only and a line at
                        another rate takes that rate's product in `products`
    fee_product         a productId, or {"25": id, ...}: return fees (default: `products`), the
                        same way
    default_contact_id  the Billy contact that takes a note without a buyer (Shopify withheld it)
    payment_accounts    {gateway: accountId}: with note.paid_date, the money's movement is posted
                        as a bank payment on that (payment-enabled) account
    currencies          the currencies the shop books in Billy (default ["DKK"])
    payment_terms_mode  default "net"; payment_terms_days default 0
    country             a new contact's country when the buyer's is unknown (default "DK")

The base URL is the argument, else BILLY_BASE_URL, else Billy's own.

Signs: a Billy credit note carries positive prices and quantities; the document type is the sign
(UNCONFIRMED, see the model file). So a note's credit lines (amount < 0) make one credit note and
its charged lines (amount > 0: an exchange's new item, a return fee) make one invoice; a note
that is a charge (total > 0) is thus an invoice, with a credit note beside it for any goods that
came back. The invoice's reference is `<reference>:charge`.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import requests

from . import DANISH_VAT, AccountingError, AuthError, Base, Booked, Journal, Line, Note, Transient, Unbookable, Unconfirmed, ValidationError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.billysbilling.com"
TIMEOUT = (5, 30)
READ_ATTEMPTS = 3
MAX_INLINE_WAIT = 10.0
PAGE_SIZE = 1000          # Billy's largest page (billy.dk/api, Paging)
MAX_PAGES = 20
CENT = Decimal("0.01")
CHARGE_SUFFIX = ":charge"
FEE_KINDS = ("return_shipping_fee", "restocking_fee")
# The words the adapter puts before a line's own text (the customer reads them; Danish shop).
KIND_WORDS = {"shipping": "Fragt", "return_shipping_fee": "Returfragt", "restocking_fee": "Returgebyr",
              "adjustment": "Regulering"}
PAYMENT_TERMS_MODES = ("net", "netEndOfMonth", "lumpSum")


def _rate(value) -> Decimal:
    rate = Decimal(str(value))
    return rate.quantize(Decimal(1)) if rate == rate.to_integral_value() else rate.normalize()


def _rate_map(value) -> dict[Decimal, str] | str | None:
    if isinstance(value, dict):
        return {_rate(k): str(v) for k, v in value.items() if v}
    return str(value) if value else None


def _number(value: Decimal):
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True)
class Part:
    """One Billy document a note becomes."""
    type: str                 # creditNote | invoice
    reference: str
    lines: tuple[dict, ...]   # Billy invoice lines, positive
    total: Decimal            # VAT included, positive


class BillyAdapter(Base):
    system = "billy"

    def __init__(self, config: dict, base_url: str | None = None, *, session: requests.Session | None = None,
                 timeout=TIMEOUT, sleep=time.sleep):
        base = (base_url or os.environ.get("BILLY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = base[:-3] if base.endswith("/v2") else base
        self.token = str(config.get("access_token") or "")
        self.products = _rate_map(config.get("products") or {}) or {}
        self.shipping = _rate_map(config.get("shipping_product"))
        self.fee = _rate_map(config.get("fee_product"))
        self.default_contact_id = config.get("default_contact_id") or None
        self.payment_accounts = dict(config.get("payment_accounts") or {})
        self.currencies = tuple(str(c).upper() for c in (config.get("currencies") or ("DKK",)))
        self.terms_mode = config.get("payment_terms_mode") or "net"
        self.terms_days = int(config.get("payment_terms_days") or 0)
        self.country = config.get("country") or "DK"
        self.http = session or requests.Session()
        self.timeout = timeout
        self.sleep = sleep
        # Whether Billy takes `externalId` on a create: documented as a list filter only, so
        # one refusal naming it turns it off for this adapter (the reference is in
        # contactMessage as well, which is what find() relies on).
        self.send_external_id = True

    def __repr__(self):  # never the token
        return f"BillyAdapter({self.base_url!r})"

    # --- the interface ---------------------------------------------------------------------

    def bookable_rates(self) -> frozenset[Decimal]:
        return frozenset(self.products)

    def test_connection(self) -> dict:
        try:
            org = self._get("/v2/organization").get("organization") or {}
            rulesets = {r["id"]: r for r in self._list("/v2/salesTaxRulesets", "salesTaxRulesets")}
            rates = {r["id"]: r for r in self._list("/v2/taxRates", "taxRates")}
            products = []
            for p in self._list("/v2/products", "products"):
                if p.get("isArchived"):
                    continue
                ruleset = rulesets.get(p.get("salesTaxRulesetId") or "") or {}
                tax_rate = rates.get(ruleset.get("fallbackTaxRateId") or "") or {}
                rate = tax_rate.get("rate")
                products.append({"id": p["id"], "name": p.get("name"), "ruleset": ruleset.get("name"),
                                 "vat_rate": None if rate is None else str(_rate(Decimal(str(rate)) * 100))})
            accounts = [{"id": a["id"], "name": a.get("name"), "accountNo": a.get("accountNo")}
                        for a in self._list("/v2/accounts", "accounts")
                        if a.get("isPaymentEnabled") and not a.get("isArchived")]
            contacts = [{"id": c["id"], "name": c.get("name"), "registrationNo": c.get("registrationNo")}
                        for c in self._list("/v2/contacts", "contacts", max_pages=1)]
        except AccountingError as exc:
            return {"ok": False, "message": exc.message, "choices": {}}
        return {"ok": True, "message": f"Forbundet til {org.get('name') or 'Billy'}",
                "choices": {"organization": {"id": org.get("id"), "name": org.get("name"),
                                             "baseCurrencyId": org.get("baseCurrencyId")},
                            "products": products, "payment_accounts": accounts, "contacts": contacts,
                            "payment_terms_modes": list(PAYMENT_TERMS_MODES)}}

    def find(self, note: Note, sent: dict | None = None) -> Booked | None:
        """Every document of the note, found by its reference and approved; None otherwise
        (send() then makes only what is missing)."""
        refs = [ref for _, ref in self._sides(note)]
        found = self._find_refs(note, refs)
        if len(found) != len(refs) or any(doc.get("state") != "approved" for doc in found.values()):
            return None
        return self._booked([found[r] for r in refs])

    def send(self, note: Note, journal: Journal | None = None) -> Booked:
        parts = self._plan(note)                       # Unbookable before any call
        if note.buyer is None and not self.default_contact_id:
            raise ValidationError("Billy: no default contact is set for documents without a customer")
        self.journaled(note, journal)
        found = self._find_refs(note, [p.reference for p in parts])
        docs, sale, contact_id, looked = [], None, None, False
        for part in parts:
            doc = found.get(part.reference)
            if doc is None:
                if not looked:
                    sale = self._sale_invoice(note)
                    contact_id = sale["contactId"] if sale else self._contact(note)
                    looked = True
                credited = sale if part.type == "creditNote" and self._can_credit(sale, note, part) else None
                doc = self._create(note, part, contact_id, credited)
            if doc.get("state") != "approved":
                doc = self._approve(doc)
            self._pay(note, doc)
            docs.append(doc)
        return self._booked(docs)

    # --- the plan (no calls) ---------------------------------------------------------------

    def _sides(self, note: Note) -> list[tuple[str, str]]:
        credit = any(self._is_credit(ln) for ln in note.lines)
        charge = any(not self._is_credit(ln) for ln in note.lines)
        sides = []
        if credit:
            sides.append(("creditNote", note.reference))
        if charge:
            sides.append(("invoice", note.reference + CHARGE_SUFFIX))
        return sides

    @staticmethod
    def _is_credit(line: Line) -> bool:
        return line.amount < 0 or (line.amount == 0 and line.quantity < 0)

    def _plan(self, note: Note) -> list[Part]:
        if (note.currency or "").upper() not in self.currencies:
            raise Unbookable(f"Billy: the shop does not book {note.currency}", code="unsupported_currency",
                             params={"currency": note.currency})
        if not note.lines:
            raise ValidationError("Billy: a document needs at least one line")
        mapped = [(ln, self._product_for(ln)) for ln in note.lines]   # every line checked first
        parts = []
        for kind, ref in self._sides(note):
            lines = [(ln, pid) for ln, pid in mapped if self._is_credit(ln) == (kind == "creditNote")]
            parts.append(Part(kind, ref, tuple(self._billy_line(ln, pid) for ln, pid in lines),
                              sum((abs(ln.amount) for ln, _ in lines), Decimal(0))))
        return parts

    def _product_for(self, line: Line) -> str:
        rate = _rate(line.vat_rate)
        special = self.shipping if line.kind == "shipping" else self.fee if line.kind in FEE_KINDS else None
        if isinstance(special, dict) and rate in special:
            return special[rate]
        if isinstance(special, str) and rate == DANISH_VAT and rate in self.products:
            # One product's sales-tax ruleset books one rate (accounting.DANISH_VAT).
            return special
        if rate in self.products:
            return self.products[rate]
        raise Unbookable(f"Billy: no product is mapped to {rate} % VAT", code="unsupported_vat_rate",
                         params={"rate": str(rate), "item": line.description})

    @staticmethod
    def _billy_line(line: Line, product_id: str) -> dict:
        amount, quantity = abs(line.amount), abs(line.quantity) or 1
        word = KIND_WORDS.get(line.kind)
        text = (line.description or "").strip()
        description = f"{word}: {text}" if word and text else (word or text)
        unit = (amount / quantity).quantize(CENT)
        if unit * quantity != amount:  # a total that does not divide: one line of the whole amount
            description = f"{quantity} × {description}"
            unit, quantity = amount, 1
        return {"productId": product_id, "unitPrice": _number(unit), "quantity": quantity,
                "description": description[:1000]}

    @staticmethod
    def _marker(reference: str) -> str:
        return f"Ref. {reference}"

    # --- finding ---------------------------------------------------------------------------

    def _find_refs(self, note: Note, refs: list[str]) -> dict[str, dict]:
        """Our documents by reference: the `externalId` filter first (documented), every answer
        re-checked; then the day's invoices (entryDate is always the note's date) by the
        reference line in contactMessage, for a Billy that does not keep externalId."""
        found: dict[str, dict] = {}
        if self.send_external_id:
            for ref in refs:
                for inv in self._list("/v2/invoices", "invoices", params={"externalId": ref}, max_pages=1):
                    if inv.get("externalId") == ref:
                        found[ref] = inv
        missing = [r for r in refs if r not in found]
        if missing:
            day = note.date.isoformat()
            rows = self._list("/v2/invoices", "invoices", params={"minEntryDate": day, "maxEntryDate": day},
                              bounded=True)
            for ref in missing:
                marker = self._marker(ref)
                want = "invoice" if ref.endswith(CHARGE_SUFFIX) else "creditNote"
                hits = [inv for inv in rows if inv.get("type", "invoice") == want
                        and marker in (inv.get("contactMessage") or "").splitlines()]
                if len(hits) > 1:
                    raise Unconfirmed(f"Billy holds {len(hits)} documents with the reference {ref}")
                if hits:
                    found[ref] = hits[0]
        return found

    def _sale_invoice(self, note: Note) -> dict | None:
        """The order's approved sale invoice: `q` searches `orderNo` (documented, billy.dk/api
        invoice list filters); every answer is re-checked here, and an ambiguous answer links
        nothing."""
        name = (note.order_name or "").strip()
        if not name:
            return None
        bare = name.lstrip("#")
        rows = self._list("/v2/invoices", "invoices", params={"q": bare, "state": "approved"}, max_pages=1)
        hits = [inv for inv in rows if inv.get("type", "invoice") == "invoice" and inv.get("state") == "approved"
                and (str(inv.get("orderNo") or "") in (name, bare) or str(inv.get("externalId") or "") in (name, bare))]
        return hits[0] if len(hits) == 1 else None

    def _can_credit(self, sale: dict | None, note: Note, part: Part) -> bool:
        if sale is None or (sale.get("currencyId") or "").upper() != note.currency.upper():
            return False
        credited = self._list("/v2/invoices", "invoices", params={"creditedInvoiceId": sale["id"], "state": "approved"},
                              max_pages=1)
        already = sum((Decimal(str(i.get("grossAmount") or 0)) for i in credited
                       if i.get("creditedInvoiceId") == sale["id"]), Decimal(0))
        gross = Decimal(str(sale.get("grossAmount") or 0))
        return already + part.total <= gross

    def _contact(self, note: Note) -> str:
        buyer = note.buyer
        if buyer is None:
            return self.default_contact_id
        cvr = _digits(buyer.national_id)
        email = (buyer.email or "").strip().casefold()
        if cvr or email:
            # No list filters are documented for contacts: read them all (bounded) and match here.
            contacts = self._list("/v2/contacts", "contacts", params={"include": "contact.contactPersons:embed"},
                                  bounded=False)
            if cvr:
                hit = next((c for c in contacts if _digits(c.get("registrationNo")) == cvr), None)
                if hit:
                    return hit["id"]
            if email:
                hit = next((c for c in contacts if any((p.get("email") or "").strip().casefold() == email
                                                       for p in c.get("contactPersons") or [])), None)
                if hit:
                    return hit["id"]
        address = buyer.address or {}
        country = address.get("country") if len(str(address.get("country") or "")) == 2 else self.country
        name = (buyer.name or buyer.email or "Kunde").strip()
        body = {"type": "company" if cvr else "person", "name": name, "countryId": country.upper(),
                "isCustomer": True, "paymentTermsMode": self.terms_mode, "paymentTermsDays": self.terms_days}
        if cvr:
            body["registrationNo"] = buyer.national_id.strip()
        for key, field in (("street", "line1"), ("cityText", "city"), ("zipcodeText", "zip")):
            if address.get(field):
                body[key] = address[field]
        if buyer.email:
            body["contactPersons"] = [{"name": name, "email": buyer.email.strip(), "isPrimary": True}]
        answer = self._call("POST", "/v2/contacts", body={"contact": body})
        return (answer.get("contacts") or [{}])[0]["id"]

    # --- making ----------------------------------------------------------------------------

    def _create(self, note: Note, part: Part, contact_id: str, credited: dict | None) -> dict:
        message = "\n\n".join(x for x in ((note.text or "").strip(), self._marker(part.reference)) if x)
        invoice = {"type": part.type, "contactId": contact_id, "entryDate": note.date.isoformat(),
                   "currencyId": note.currency.upper(), "paymentTermsMode": self.terms_mode,
                   "paymentTermsDays": self.terms_days, "taxMode": "incl", "state": "approved",
                   "contactMessage": message, "lines": list(part.lines)}
        if credited is not None:
            invoice["creditedInvoiceId"] = credited["id"]
        if self.send_external_id:
            invoice["externalId"] = part.reference
        try:
            answer = self._call("POST", "/v2/invoices", body={"invoice": invoice})
        except ValidationError as exc:
            if not (self.send_external_id and "externalid" in f"{exc.message} {exc.detail}".casefold()):
                raise
            # A refused create made nothing: once more without the field.
            self.send_external_id = False
            invoice.pop("externalId")
            answer = self._call("POST", "/v2/invoices", body={"invoice": invoice})
        made = [inv for inv in answer.get("invoices") or [] if inv.get("type", part.type) == part.type
                and inv.get("id") != invoice.get("creditedInvoiceId")]
        if not made:
            raise Unconfirmed("Billy's answer to the create names no invoice")
        log.info("Billy %s %s created for %s", part.type, made[0]["id"], part.reference)
        return made[0]

    def _approve(self, doc: dict) -> dict:
        answer = self._call("PUT", f"/v2/invoices/{doc['id']}", body={"invoice": {"state": "approved"}},
                            repeatable=True)  # approving an approved invoice changes nothing
        return next((inv for inv in answer.get("invoices") or [] if inv.get("id") == doc["id"]), doc)

    def _pay(self, note: Note, doc: dict) -> None:
        """The money's movement as a bank payment (billy.dk/api, "Posting a payment for an
        invoice"): only with a paid date and a mapped account, and only while the document still
        has a balance, so a repeat never pays twice."""
        account = self.payment_accounts.get(note.gateway or "") if note.paid_date else None
        if not account:
            return
        fresh = self._get(f"/v2/invoices/{doc['id']}").get("invoice") or doc
        balance = Decimal(str(fresh.get("balance") or 0))
        if fresh.get("isPaid") or balance <= 0:
            return
        body = {"bankPayment": {"entryDate": note.paid_date.isoformat(), "cashAmount": _number(balance),
                                "cashSide": "credit" if fresh.get("type") == "creditNote" else "debit",
                                "cashAccountId": account,
                                "associations": [{"subjectReference": f"invoice:{doc['id']}"}]}}
        try:
            self._call("POST", "/v2/bankPayments", body=body)
        except ValidationError as exc:
            # The document is booked; a refused payment must not hide it. The merchant posts
            # the payment in Billy (the log keeps Billy's words).
            log.warning("Billy refused the payment of %s: %s", doc["id"], exc.detail or exc.message)

    def _booked(self, docs: list[dict]) -> Booked:
        main = docs[0]
        credited = None
        if main.get("creditedInvoiceId"):
            try:
                sale = self._get(f"/v2/invoices/{main['creditedInvoiceId']}").get("invoice") or {}
                credited = sale.get("invoiceNo")
            except ValidationError:
                credited = None
        number = main.get("invoiceNo")
        return Booked(id=main["id"], number=None if number is None else str(number),
                      credited_invoice=None if credited is None else str(credited),
                      ids=tuple(d["id"] for d in docs))

    # --- transport -------------------------------------------------------------------------

    def _get(self, path: str, params: dict | None = None) -> dict:
        return self._call("GET", path, params=params)

    def _list(self, path: str, root: str, *, params: dict | None = None, max_pages: int = MAX_PAGES,
              bounded: bool = False) -> list[dict]:
        rows, page = [], 1
        while True:
            answer = self._get(path, {**(params or {}), "page": page, "pageSize": PAGE_SIZE})
            rows.extend(answer.get(root) or [])
            paging = (answer.get("meta") or {}).get("paging") or {}
            count = int(paging.get("pageCount") or 1)
            if page >= count:
                return rows
            if page >= max_pages:
                if bounded:
                    raise Unconfirmed(f"Billy lists more than {max_pages * PAGE_SIZE} {root} here")
                return rows
            page += 1

    def _call(self, method: str, path: str, *, params=None, body=None, repeatable: bool | None = None) -> dict:
        repeatable = method == "GET" if repeatable is None else repeatable
        attempts = READ_ATTEMPTS if repeatable else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._once(method, path, params=params, body=body, repeatable=repeatable)
            except Transient as exc:
                wait = exc.retry_after if exc.retry_after is not None else 0.25 * 2 ** (attempt - 1)
                if attempt >= attempts or wait > MAX_INLINE_WAIT:
                    raise
                self.sleep(wait)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, *, params, body, repeatable: bool) -> dict:
        headers = {"X-Access-Token": self.token, "Accept": "application/json", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body, ensure_ascii=False, default=_json_default).encode()
        try:
            resp = self.http.request(method, self.base_url + path, params=params, data=data, headers=headers,
                                     timeout=self.timeout)
        except requests.ConnectTimeout as exc:  # never reached Billy
            raise Transient(f"Billy did not accept the connection ({method} {path})") from exc
        except requests.RequestException as exc:
            raise Transient(f"{method} {path} to Billy failed: {type(exc).__name__}",
                            outcome_unknown=not repeatable) from exc
        status = resp.status_code
        if status < 400:
            try:
                return resp.json() if resp.content else {}
            except ValueError as exc:
                raise Transient(f"Billy answered {method} {path} with no JSON", outcome_unknown=not repeatable) from exc
        message, detail = _error_detail(resp)
        if status == 429:  # not carried out
            raise Transient(f"Billy: too many requests ({method} {path})", retry_after=_retry_after(resp),
                            detail=detail)
        if status >= 500 or status == 408:
            raise Transient(f"Billy: HTTP {status} ({method} {path})", retry_after=_retry_after(resp),
                            outcome_unknown=not repeatable, detail=detail)
        if status in (401, 403):
            raise AuthError(f"Billy refused the access token: {message}", detail=detail)
        raise ValidationError(f"Billy refused {method} {path}: {message}", detail=detail)


def _digits(value) -> str:
    return "".join(ch for ch in str(value or "") if ch.isdigit())


def _json_default(value):
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _error_detail(resp) -> tuple[str, str]:
    """Billy's words from an error answer: `errorMessage` (and `errorCode`, and any
    `validationErrors`), or the raw text."""
    text = resp.text.strip() if resp.content else ""
    try:
        data = resp.json() if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("errorMessage") or data.get("message") or text
        code = data.get("errorCode")
        extra = data.get("validationErrors")
        parts = (code, message, json.dumps(extra, ensure_ascii=False) if extra else None)
        detail = " ".join(str(x) for x in parts if x)
        return str(message or f"HTTP {resp.status_code}"), detail
    return text or f"HTTP {resp.status_code}", text


def _retry_after(resp) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None
