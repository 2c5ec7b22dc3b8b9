"""The credit invoice in Payday, from a neutral note.

Payday has no credit endpoint (payday.md §6) and no idempotency key: the credit is an ordinary
invoice with negative unit prices (invoicing.invoice_body), put on the buyer's Payday customer
(found by kennitala, then e-mail, else created; the shop's default customer while Shopify
withholds the buyer), naming the sale invoice it credits (C7), paid when the money moved. A
create whose answer was lost is looked for among the customer's own invoices, on its whole
reference and total, never by Payday's search (docs/PAYDAY_MODEL.md)."""
from __future__ import annotations

from decimal import Decimal

from ... import invoicing
from .. import PAYDAY_RATES, Booked, Buyer, Journal, Note, local_day
from . import api, customers, originals, stock


class PaydayAdapter:
    system = "payday"

    def __init__(self, settings, client: api.PaydayClient | None = None):
        self.settings = settings
        self.client = client or api.PaydayClient.for_shop(settings)

    def bookable_rates(self) -> frozenset[Decimal]:
        return PAYDAY_RATES

    def test_connection(self) -> dict:
        return self.client.test_connection()

    def find(self, note: Note, sent: dict | None = None) -> Booked | None:
        customer_id = ((sent or {}).get("customer") or {}).get("id")
        invoice = self.client.find_own_invoice(customer_id, note.reference, note.total) if customer_id else None
        return _booked(invoice) if invoice else None

    def send(self, note: Note, journal: Journal | None = None) -> Booked:
        journal = journal or (lambda request, **columns: None)
        settings, manual = self.settings, note.trigger == "manual"
        match = self._customer(note.buyer)
        number, dated = (None, None) if manual else originals.original(self.client, _for_lookup(note), match.id)
        body = invoicing.invoice_body(
            _fields(note), order_name=note.order_name, customer_id=match.id, today=local_day("payday"),
            payment_type=settings.payment_types.get(note.gateway or ""),
            send_email=settings.send_email and match.has_email, original_number=number, original_date=dated,
            keeps_stock=settings.payday_keeps_stock)
        journal(body, customer_by=match.by, original_number=None if manual else number or "", original_date=dated)
        try:
            return _booked(self.client.create_invoice(body))
        except api.PaydayValidationError:
            if body.get("status") != "PAID":
                raise
            # Whether Payday takes a paid invoice with a negative total is unconfirmed: it is
            # made unpaid, and its payment registered once Payday has issued it (numbers.py),
            # since Payday changes no status before that.
            payment = {"paidDate": body.get("paidDate"), "paymentType": body.get("paymentType")}
            unpaid = {**{k: v for k, v in body.items() if k not in payment}, "status": "SENT"}
            journal(unpaid, pay_later=payment)
            return _booked(self.client.create_invoice(unpaid))

    def record_booked(self, conn, doc: dict) -> None:
        stock.record(conn, doc, self.settings.payday_keeps_stock)

    def follow_up(self, order_id: int) -> None:
        stock.put_back(order_id, self.client)

    def _customer(self, buyer: Buyer | None) -> api.CustomerMatch:
        if buyer is None:   # the shop's cash customer is never e-mailed
            return api.CustomerMatch(self.settings.payday_default_customer_id, "default", False)
        address = buyer.address or {}
        details = {"kennitala": buyer.national_id, "email": buyer.email, "name": buyer.name,
                   "address": address.get("line1"), "zip_code": address.get("zip"), "city": address.get("city"),
                   "country": address.get("country"), "shopify_id": buyer.shopify_id}
        shop_id = self.settings.shop_id
        match = customers.known(shop_id, self.client, details)
        if match is None:
            match = self.client.match_customer(**{k: v for k, v in details.items() if k != "shopify_id"})
            customers.remember(shop_id, self.client, details, match)
        return match


def _booked(invoice: dict) -> Booked:
    return Booked(id=str(invoice["id"]), number=api.as_text(invoice.get("number")))


def _fields(note: Note) -> dict:
    """The note as invoicing.invoice_body reads a document."""
    return {"trigger": note.trigger, "return_name": note.return_name, "gateway": note.gateway,
            "return_reason": note.reason, "note": note.remark, "reference": note.reference,
            "document_date": note.date, "paid_date": note.paid_date, "currency": note.currency,
            "lines": [{"kind": l.kind, "description": l.description, "sku": l.sku, "quantity": l.quantity,
                       "amount": str(l.amount), "vat_rate": str(l.vat_rate)} for l in note.lines]}


def _for_lookup(note: Note) -> dict:
    """The note as originals.py keys its lookups (per order, per shop's windows)."""
    source = note.source
    return {"id": source.document_id, "order_id": source.order_id, "shop_id": source.shop_id,
            "order_name": note.order_name, "order_date": note.order_placed, "document_date": note.date,
            "order_heard_at": source.order_heard_at}
