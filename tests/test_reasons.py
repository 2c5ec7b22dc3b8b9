"""Every failure the merchant sees says what happened and what to do, in their words, with the
technical detail folded away for support; nothing the merchant or Payday's customer reads holds
an HTTP line, an id of ours or a gateway code."""
from __future__ import annotations

import re
from datetime import date

import pytest
from flask import Flask, g, render_template_string
from flask_babel import force_locale

from shopify_app import db, i18n, invoicing, orders, reasons, shops
from shopify_app.sandbox.accounting.payday import MSG_SETUP
from shopify_app.sandbox.player import SHOP as SANDBOX_SHOP, install_shop, run_worker_until_idle

HTTP_503 = "POST /invoices: HTTP 503 Service Unavailable"
# What may never stand where the merchant or Payday's customer reads: a request or status line,
# a key of ours, Shopify's long numeric ids, a gateway's code.
TECHNICAL = re.compile(r"HTTP \d{3}|\b(GET|POST) /|\b(refund|return|exchange|manual|correction)-\w+|\d{10,}|"
                       r"shopify_payments|\b[a-z]+_[a-z_]+\b")
PARAMS = {"amount": "5000", "currency": "ISK", "rate": "10", "item": "Krús", "error": HTTP_503,
          "attempts": "3", "next_attempt_at": "2026-11-23T14:05:00+00:00", "date": "2026-11-21T09:30:00+00:00"}
CONTEXT = {"order_legacy_id": "6000000000065", "order_name": "#1006"}


@pytest.fixture(scope="module")
def babel_app():
    babel_app = Flask(__name__, template_folder="../templates")
    i18n.init_app(babel_app)
    babel_app.jinja_env.globals["explain_reason"] = reasons.explain   # as create_app registers it
    return babel_app


def explained(babel_app, lang, reason, params=None):
    with babel_app.test_request_context(), force_locale(lang):
        return reasons.explain(reason, params)


@pytest.mark.parametrize("code", sorted(reasons.TABLE))
def test_every_reason_says_what_happened_and_what_to_do_in_both_languages(babel_app, code):
    texts = {lang: explained(babel_app, lang, {"code": code, "params": PARAMS}, CONTEXT) for lang in i18n.LANGUAGES}
    for lang, e in texts.items():
        assert e.code == code and e.what and e.next_step, (code, lang)
        assert "%(" not in e.what + e.next_step, (code, lang)
    assert texts["is"].what != texts["en"].what, code
    assert texts["is"].next_step != texts["en"].next_step, code


@pytest.mark.parametrize("code", sorted(reasons.TABLE))
@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_no_reason_shows_the_merchant_an_http_line_an_id_or_a_code(babel_app, code, lang):
    e = explained(babel_app, lang, {"code": code, "params": PARAMS}, CONTEXT)
    shown = " ".join([e.what, e.next_step, e.link.label if e.link else ""])
    assert not TECHNICAL.search(shown), (code, shown)
    if reasons.TABLE[code].detail:
        assert e.detail == HTTP_503   # ...kept whole for support


def test_a_payday_setup_refusal_says_to_finish_the_setup_in_payday_not_to_check_the_credentials(babel_app):
    stored = {"code": "payday_auth", "params": {"error": MSG_SETUP}}   # as documents store a 401 of it
    e = explained(babel_app, "en", stored)
    assert e.code == "payday_setup_required" and e.retry
    assert "setup" in e.what and "Payday" in e.next_step and "Retry" in e.next_step
    assert "client ID" not in e.what + e.next_step
    assert e.link == reasons.Link("https://app.payday.is", "Open Payday")
    assert e.detail == MSG_SETUP
    assert explained(babel_app, "en", stored, {"payday_environment": "test"}).link.url == "https://app.test.payday.is"
    # A refusal of the credentials themselves still sends the merchant to Settings.
    wrong = explained(babel_app, "en", {"code": "payday_auth", "params": {"error": "Client authentication failed"}})
    assert wrong.code == "payday_auth" and "client ID" in wrong.what


def test_an_unsupported_vat_rate_names_the_product_links_to_the_order_and_offers_retry(babel_app):
    reason = {"code": "unsupported_vat_rate", "params": {"rate": "10", "item": "Krús"}}
    e = explained(babel_app, "en", reason, {"order_legacy_id": "1001", "order_name": "#1001"})
    assert "“Krús”" in e.what and "10%" in e.what
    assert "“Krús”" in e.next_step and "Shopify" in e.next_step and "Retry" in e.next_step
    assert e.link == reasons.Link("shopify://admin/orders/1001", "Open order #1001 in Shopify") and e.retry
    assert explained(babel_app, "en", reason).link is None   # no order known: no link to guess
    with babel_app.test_request_context(), force_locale("is"):
        assert reasons.reason_text(reason) == "10% VSK á „Krús“ er ekki hlutfall sem Payday tekur við (0, 11 eða 24%)"


def test_payday_not_answering_says_when_skilvis_tries_again_and_keeps_the_http_line_for_support(babel_app):
    reason = {"code": "retrying", "params": {"error": HTTP_503, "attempts": "2",
                                             "next_attempt_at": "2026-11-23T14:05:00+00:00"}}
    e = explained(babel_app, "en", reason)
    assert e.what == "Payday is not answering; Skilvís tries again by itself at 23 Nov 2026, 14:05"
    assert not e.retry and e.detail == HTTP_503 and "HTTP" not in e.what + e.next_step
    assert "23. nóv. 2026 kl. 14:05" in explained(babel_app, "is", reason).what
    gave_up = explained(babel_app, "en", {"code": "payday_transient", "params": {"error": HTTP_503}})
    assert gave_up.retry and gave_up.detail == HTTP_503 and "HTTP" not in gave_up.what


def test_paydays_own_words_stay_beside_a_refusal_but_technical_text_is_folded_away(babel_app):
    words = explained(babel_app, "en", {"code": "payday_validation", "params": {"error": "Viðskiptavinur er ekki til"}})
    assert words.what == "Payday refused the invoice: Viðskiptavinur er ekki til"
    raw = explained(babel_app, "en", {"code": "payday_validation", "params": {"error": '{"errorCode": 21018}'}})
    assert raw.what == "Payday refused the invoice" and raw.detail == '{"errorCode": 21018}'


def test_a_danish_shops_failures_name_its_system_and_link_to_it(babel_app):
    # The stored codes are Payday's (payday_validation …, from before the other systems); a
    # Danish shop reads them in its own system's name, with a link to that system.
    def danish(lang, reason):
        with babel_app.test_request_context(), force_locale(lang):
            g.shop, g.accounting = "hygge-butik.myshopify.com", "dinero"
            return reasons.explain(reason)
    refused = danish("en", {"code": "payday_validation", "params": {"error": "Kontakten findes ikke"}})
    auth = danish("en", {"code": "payday_auth", "params": {"error": "invalid_grant"}})
    lost = danish("en", {"code": "payday_unconfirmed", "params": {"error": "read timed out"}})
    assert refused.what == "Dinero refused the invoice: Kontakten findes ikke"
    assert tuple(refused.link) == ("https://app.dinero.dk", "Open Dinero")
    assert auth.what == "Dinero did not accept the connection’s credentials" and "client ID" not in auth.next_step
    shown = [refused.what, refused.next_step, auth.what, auth.next_step, lost.what, lost.next_step]
    assert not [text for text in shown if "Payday" in text]
    assert danish("da", {"code": "payday_unconfirmed", "params": {}}).what.startswith("Dineros svar gik tabt")


def test_an_unknown_code_is_not_shown_but_kept_for_support(babel_app):
    e = explained(babel_app, "en", {"code": "something_new"})
    assert "something_new" not in e.what + e.next_step and e.detail == "something_new"


def test_the_one_line_text_is_what_happened(babel_app):
    with babel_app.test_request_context(), force_locale("en"):
        assert reasons.reason_text({"code": "payday_auth", "params": {"error": MSG_SETUP}}) == \
            "Payday will not make invoices until the company’s setup in Payday is finished"
        assert reasons.reason_text(None) == "" and i18n.reason_text is reasons.reason_text
        assert reasons.error_text("shopify_unavailable") == "Shopify did not answer"
        assert reasons.error_text("Customer not found") == "Customer not found"


def render_block(babel_app, reason, **kwargs):
    with babel_app.test_request_context(), force_locale("en"):
        return render_template_string('{% from "_reason.html" import reason_block %}'
                                      '{{ reason_block(reason, context, case_id=case_id) }}',
                                      reason=reason, context=kwargs.get("context"), case_id=kwargs.get("case_id"))


def test_the_reason_block_folds_the_detail_into_details_for_support(babel_app):
    html = render_block(babel_app, {"code": "payday_auth", "params": {"error": MSG_SETUP}}, case_id=7)
    shown, folded = html.split("<details", 1)
    assert "finish the required system setup" in shown and 'href="https://app.payday.is"' in shown
    assert 'target="_blank"' in shown and 'data-action="retry" data-case-id="7"' in shown
    assert MSG_SETUP not in shown and MSG_SETUP in folded and "<summary>Details for support</summary>" in folded
    # An Explanation made by the view renders the same.
    made = render_block(babel_app, explained(babel_app, "en", {"code": "payday_auth", "params": {"error": MSG_SETUP}}), case_id=7)
    assert made == html


def test_the_reason_block_of_a_wait_has_no_retry_and_nothing_folded(babel_app):
    html = render_block(babel_app, {"code": "waiting_for_close"}, context={"order_legacy_id": "1001", "order_name": "#1001"},
                        case_id=7)
    assert "<details" not in html and 'data-action="retry"' not in html
    assert 'href="shopify://admin/orders/1001" data-testid="reason-link" target="_top"' in html
    assert render_block(babel_app, None).strip() == ""


# --- what Payday's customer reads ------------------------------------------------------------

LINE = {"kind": "item", "description": "Krús", "sku": "KRUS", "quantity": -1, "amount": "-1990", "vat_rate": "24"}


@pytest.mark.parametrize("trigger,key,return_name,corrects", [
    ("return_close", "return-6000000000011", "#1006-R1", None),
    ("exchange_settled", "exchange-6000000000011", "#1006-R1", None),
    ("return_close", "return-6000000000011-6000000000023", "#1006-R1", None),
    ("refund", "refund-6000000000023", None, None),
    ("refund", "refund-6000000000023", "#1006-R1", None),
    ("correction", "correction-6000000000023", None, "refund-6000000000023"),
    ("manual", "manual-zTyJJ7E2698tp59pBRPYvmI8", "#1006-H1", None),
])
def test_the_invoice_text_reads_as_words_and_the_reference_holds_no_key_of_ours(trigger, key, return_name, corrects):
    reference = invoicing.reference("#1006", key, return_name, corrects)
    doc = {"trigger": trigger, "return_name": return_name, "gateway": "shopify_payments", "lines": [LINE],
           "currency": "ISK", "reference": reference, "return_reason": "Of lítið"}
    body = invoicing.invoice_body(doc, order_name="#1006", customer_id="c1", today=date(2026, 11, 23),
                                  payment_type=None, send_email=False, original_number="1042")
    assert not TECHNICAL.search(body["description"]), body["description"]
    assert "Shopify Payments" in body["description"] and "#1006" in body["description"]
    assert not re.search(r"\b(refund|return|exchange|manual|correction)-|zTyJJ7", reference), reference
    assert reference.startswith("#1006 ")   # the order first: Payday's search and the sandbox read it so
    for line in body["lines"]:
        assert not TECHNICAL.search(line["description"])


def test_a_gateway_is_named_as_the_customer_knows_it():
    assert invoicing.gateway_name("shopify_payments") == "Shopify Payments"
    assert invoicing.gateway_name("Millifærsla") == "Millifærsla"   # the merchant's own name, as typed
    assert invoicing.gateway_name("manual") == "Handvirk greiðsla"


def test_a_gateway_is_named_in_the_readers_language():
    # A Danish credit note says "Refunderet via Kontant", never the Icelandic word; Settings
    # names the gateways in the merchant's language.
    assert (invoicing.gateway_name("cash", "da"), invoicing.gateway_name("cash", "en")) == ("Kontant", "Cash")
    doc = {"trigger": "refund", "gateway": "cash", "lines": [{"amount": "-499.00"}]}
    assert "Refunderet via Kontant" in invoicing.description(doc, order_name="#1001", language="da")


# --- through the pipeline --------------------------------------------------------------------

ORDER = {"name": "#1001", "customer": {"email": "anna@example.is"},
         "lines": [{"sku": "KRUS", "title": "Krús", "price": "1990", "quantity": 3, "tax_rate": "24"}],
         "payment": {"gateway": "shopify_payments", "status": "success"}}


def refund_with_payday_answering(system, payday, status, body):
    install_shop(system, currency="ISK", taxes_included=True, gateways=["shopify_payments"])
    order = system.shopify.store.create_order(SANDBOX_SHOP, {**ORDER, "currency": "ISK", "taxes_included": True})
    orders.request_work(shops.get(SANDBOX_SHOP)["id"], order.id)
    run_worker_until_idle()
    payday.fail_next(1, status=status, body=body, paths=("POST /invoices",))
    system.shopify.store.apply(order, {"do": "refund", "lines": [{"sku": "KRUS", "quantity": 1}]})
    system.shopify.deliver()
    run_worker_until_idle()
    with db.transaction() as conn:
        [case] = conn.execute("SELECT c.status, c.reason, o.legacy_id, o.name FROM cases c JOIN orders o ON o.id = c.order_id")
    return case


def test_a_setup_refusal_from_payday_reaches_the_merchant_as_finish_the_setup(babel_app, system, payday):
    case = refund_with_payday_answering(system, payday, 401, MSG_SETUP)
    assert case["status"] == "failed"
    e = explained(babel_app, "en", case["reason"], {"order_legacy_id": case["legacy_id"], "order_name": case["name"]})
    assert e.code == "payday_setup_required" and e.link.url == "https://app.payday.is" and e.retry


def test_payday_503_reaches_the_merchant_as_not_answering_with_the_next_try(babel_app, system, payday):
    case = refund_with_payday_answering(system, payday, 503, "Service Unavailable")
    assert case["status"] == "processing" and case["reason"]["code"] == "retrying"
    e = explained(babel_app, "en", case["reason"])
    assert e.what.startswith("Payday is not answering; Skilvís tries again by itself at ")
    assert "HTTP 503" in e.detail and "HTTP" not in e.what + e.next_step
