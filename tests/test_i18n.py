"""Every language complete (Icelandic, English, Danish): every catalog entry translated, every
message in the code in the catalogs, every reason the code can put before the merchant rendered in
each; money and dates as people write them."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import force_locale

from shopify_app import i18n

ROOT = Path(__file__).resolve().parent.parent
CODE = ROOT / "shopify_app"


def forms(value) -> tuple:
    """A message's id or string as a tuple: one text, or a plural's forms."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def catalog(lang: str):
    with open(ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=lang)


@pytest.fixture(scope="module")
def app():
    app = Flask(__name__)
    i18n.init_app(app)
    return app


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_entry_is_translated_and_none_is_fuzzy(lang):
    cat = catalog(lang)
    assert not cat.fuzzy
    untranslated = [m.id for m in cat if m.id and not all(forms(m.string))]
    fuzzy = [m.id for m in cat if m.id and m.fuzzy]
    assert untranslated == [] and fuzzy == []
    for m in cat:   # the same placeholders on both sides (a plural's as its plural msgid's)
        if m.id:
            wanted = sorted(re.findall(r"%\(\w+\)s", forms(m.id)[-1]))
            for text in forms(m.string):
                assert sorted(re.findall(r"%\(\w+\)s", text)) == wanted, m.id


@pytest.mark.parametrize("lang,rule", [("is", "nplurals=2; plural=(n%10!=1 || n%100==11);"),
                                       ("en", "nplurals=2; plural=(n != 1);"),
                                       ("da", "nplurals=2; plural=(n != 1);")])
def test_each_catalog_counts_by_its_languages_plural_rule(lang, rule):
    assert catalog(lang).plural_forms == rule


def test_every_message_in_the_code_is_in_every_catalog():
    method_map = [("shopify_app/**.py", "python"), ("templates/*.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2), "lazy_ngettext": (1, 2)}
    found = {forms(msg[2])[0] for msg in extract_from_dir(str(ROOT), method_map, keywords=keywords)}
    assert len(found) > 100 and "%(num)s line" in found   # i18n.lines_count's ngettext
    for lang in i18n.LANGUAGES:
        ids = {forms(m.id)[0] for m in catalog(lang) if m.id}
        assert sorted(found - ids) == [], f"missing from {lang}: run pybabel extract/update (see babel.cfg)"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_compiled_catalogs_match_their_sources(lang):
    i18n.compile_catalogs()
    with open(ROOT / "translations" / lang / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = {forms(m.id): forms(m.string) for m in read_mo(f) if m.id}
    assert compiled == {forms(m.id): forms(m.string) for m in catalog(lang) if m.id}


def reason_codes_in_the_code() -> set[str]:
    """Every code decision.py, status.py and the manual-credit trigger can write to cases.reason."""
    decision = (CODE / "decision.py").read_text()
    status = (CODE / "status.py").read_text()
    docs = (CODE / "documents.py").read_text()
    codes = set(re.findall(r'\breason\("(\w+)"\s*[,)]', decision))
    # reason("return_" + ret.status.lower()) for the statuses it is guarded by
    statuses = re.search(r'ret\.status in \(([^)]*)\).*\n.*reason\("return_" \+ ret\.status\.lower\(\)\)', decision)
    codes |= {"return_" + s.lower() for s in re.findall(r'"(\w+)"', statuses.group(1))}
    # why = "a" if ... else "b"; reason(why)
    for a, b in re.findall(r'why = "(\w+)" if .* else "(\w+)"', decision):
        codes |= {a, b}
    codes |= set(re.findall(r'"code": "(\w+)"', status))
    # why the settings hold a document back: ShopSettings.holds_back
    codes |= set(re.findall(r'return "(\w+)"', (CODE / "shop_settings.py").read_text()))
    # how Shopify refused: ShopifyRefused.code
    from shopify_app.shopify_admin import PERMANENT_CODES, REFUSING_STATUSES
    codes |= set(PERMANENT_CODES.values()) | set(REFUSING_STATUSES.values())
    # "payday_" + the document's last_error_kind (or "error")
    kinds = set(re.findall(r'_give_up\(doc, "(\w+)"', docs)) | set(re.findall(r"last_error_kind = '(\w+)'", docs))
    codes |= {f"payday_{k}" for k in kinds | {"error"}}
    # why a pass could not read an order: pipeline._finish(order_id, error="...")
    pipeline = (CODE / "pipeline.py").read_text()
    codes |= set(re.findall(r'_finish\(order_id, error="(\w+)"', pipeline))
    codes |= set(re.findall(r'_finish\(order_id, error="\w+" if .* else "(\w+)"', pipeline))
    reconcile = (CODE / "reconcile.py").read_text()   # why a history read stopped
    codes |= set(re.findall(r'return "(\w+)"', reconcile)) | set(re.findall(r'error="(\w+)"', reconcile))
    migration = (CODE / "migrations" / "0004_manual_credits.sql").read_text()
    codes |= set(re.findall(r"'code', '(\w+)'(?!\s*\|\|)", migration))
    return codes


def test_every_reason_the_code_can_emit_exists_in_every_language(app):
    codes = reason_codes_in_the_code()
    assert {"waiting_for_close", "customer_owes", "refund_pending", "payment_pending", "refund_owed",
            "nothing_refunded", "refund_failed", "return_declined", "return_canceled", "unsupported_vat_rate",
            "payday_validation", "payday_auth", "payday_transient", "retrying", "automatic_processing_off",
            "payday_not_connected", "before_start", "shopify_auth", "default_customer_missing", "test_order",
            "order_outside_window", "shopify_access_denied", "shopify_query_refused", "shop_frozen",
            "history_bulk_running"} <= codes
    params = {"amount": "5000", "currency": "ISK", "rate": "25.5", "item": "Krús", "error": "Villa X",
              "attempts": "2", "next_attempt_at": "2026-11-23T14:05:00+00:00",
              "date": "2026-11-21T09:30:00+00:00"}
    for code in sorted(codes):
        assert code in i18n.REASONS, code
        texts = {}
        with app.test_request_context():
            for lang in i18n.LANGUAGES:
                with force_locale(lang):
                    texts[lang] = i18n.reason_text({"code": code, "params": params})
        assert texts["is"] and texts["en"] and texts["is"] != texts["en"], code
        assert texts["da"] and texts["da"] not in (texts["is"], texts["en"]), code
        assert "%(" not in "".join(texts.values()), code
    with app.test_request_context():
        with force_locale("is"):
            assert i18n.reason_text({"code": "customer_owes", "params": params}) == \
                "Bíður þess að viðskiptavinurinn greiði 5.000 kr."
            assert i18n.reason_text({"code": "unsupported_vat_rate", "params": params}) == \
                "25.5% VSK á „Krús“ er ekki hlutfall sem Payday tekur við (0, 11 eða 24%)"
            assert "23. nóv. 2026 kl. 14:05" in i18n.reason_text({"code": "retrying", "params": params})
        with force_locale("en"):
            # Payday's technical words are folded away for support (reasons.explain's detail).
            assert i18n.reason_text({"code": "payday_transient", "params": params}) == \
                "Payday did not answer, even after many attempts over several hours"
        with force_locale("da"):
            dkk = {**params, "amount": "1234.5", "currency": "DKK"}
            assert i18n.reason_text({"code": "customer_owes", "params": dkk}) == \
                "Venter på, at kunden betaler 1.234,50 kr."
            assert i18n.reason_text({"code": "unsupported_vat_rate", "params": params}) == \
                "25.5 % moms på »Krús« er ikke en momssats, som Payday accepterer (0, 11 eller 24 %)"
            assert "den 23. nov. 2026 kl. 14.05" in i18n.reason_text({"code": "retrying", "params": params})


def test_stored_errors_read_in_the_merchants_language_and_unknown_ones_as_they_are(app):
    with app.test_request_context():
        with force_locale("is"):
            assert i18n.timeline_text("read_error", {"error": "order_gone", "detail": "HTTP 200, order null"}) == \
                "Ekki tókst að lesa pöntunina úr Shopify: Pöntunin sést ekki lengur í Shopify"
            assert i18n.error_text("shopify_unavailable") == "Shopify svaraði ekki"
            assert i18n.error_text("Viðskiptavinur er ekki til") == "Viðskiptavinur er ekki til"


@pytest.mark.parametrize("amount,currency,is_text,en_text,da_text", [
    ("5000", "ISK", "5.000 kr.", "ISK 5,000", "5.000 ISK"),
    ("-5000", "ISK", "-5.000 kr.", "-ISK 5,000", "-5.000 ISK"),
    ("1234567", "ISK", "1.234.567 kr.", "ISK 1,234,567", "1.234.567 ISK"),
    ("0", "ISK", "0 kr.", "ISK 0", "0 ISK"),
    ("-1990.00", "ISK", "-1.990 kr.", "-ISK 1,990", "-1.990 ISK"),
    ("12.5", "EUR", "12,50 EUR", "EUR 12.50", "12,50 EUR"),
    ("1234.5", "DKK", "1.234,50 DKK", "DKK 1,234.50", "1.234,50 kr."),
    ("-1234.5", "DKK", "-1.234,50 DKK", "-DKK 1,234.50", "-1.234,50 kr."),
    ("1234567.005", "DKK", "1.234.567,00 DKK", "DKK 1,234,567.00", "1.234.567,00 kr."),
    ("0", "DKK", "0,00 DKK", "DKK 0.00", "0,00 kr."),
])
def test_money_in_each_language_with_kr_for_the_languages_own_krone(amount, currency, is_text, en_text, da_text):
    assert i18n.money(Decimal(amount), currency, "is") == is_text
    assert i18n.money(Decimal(amount), currency, "en") == en_text
    assert i18n.money(Decimal(amount), currency, "da") == da_text


def test_danish_money_groups_and_rounds_as_babels_da_locale():
    from babel.numbers import format_decimal
    for amount in ("0.005", "0.015", "999.995", "1234567.125", "12"):
        expect = format_decimal(Decimal(amount), format="#,##0.00", locale="da")
        assert i18n.money(Decimal(amount), "DKK", "da") == f"{expect} kr."


def test_dates_in_each_language():
    moment = datetime(2026, 11, 23, 14, 5, tzinfo=timezone.utc)
    assert i18n.when(moment, "is") == "23. nóv. 2026 kl. 14:05"
    assert i18n.when(moment, "en") == "23 Nov 2026, 14:05"
    assert i18n.when(moment, "da") == "23. nov. 2026 kl. 14.05"
    assert i18n.when(datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc), "is") == "1. maí 2026 kl. 09:00"
    assert i18n.when(datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc), "da") == "1. maj 2026 kl. 09.00"
    assert i18n.day(datetime(2026, 12, 1, 14, 5, tzinfo=timezone.utc), "da") == "1. dec. 2026"
    assert (i18n.day(moment, "is"), i18n.day(moment, "en"), i18n.day(moment, "da")) == \
        ("23. nóv. 2026", "23 Nov 2026", "23. nov. 2026")


def test_danish_months_are_babels_abbreviated_da_months():
    from babel.dates import format_date
    for month in range(1, 13):
        moment = datetime(2026, month, 15, 12, 0, tzinfo=timezone.utc)
        assert i18n.day(moment, "da") == format_date(moment, "d. MMM y", locale="da")


@pytest.mark.parametrize("value,expect", [
    ("is", "is"), ("is-IS", "is"), ("IS_is", "is"), ("en", "en"), ("en-US", "en"), ("de-DE", "en"),
    ("da", "da"), ("da-DK", "da"), ("DA_dk", "da"), ("nb-NO", "en"), ("sv-SE", "en"), ("fo", "en"),
    ("", None), (None, None),
])
def test_shopify_locale_parameter(value, expect):
    assert i18n.normalize(value) == expect
