"""The language is the person's, not the shop's: each request says its own (Shopify's `locale` on a
document load, the page's X-Skilvis-Locale header on its fetches, else Accept-Language, else
Icelandic), nothing about it is stored on the shop, and counts read right in every language
(Icelandic, English, Danish)."""
from __future__ import annotations

import re

import pytest
from flask import Flask, render_template_string
from flask_babel import force_locale

from shopify_app import db, i18n, shops
from tests.helpers import SHOP
from tests.test_merchant_pages import page, two_shops  # noqa: F401  (two_shops: a fixture)
from tests.test_session_tokens import id_token


def rows(client, case_id: int, **headers) -> str:
    """The list's live refresh of one row, as the page's script fetches it."""
    resp = client.get(f"/api/cases?ids={case_id}", headers={"Authorization": f"Bearer {id_token(SHOP)}", **headers})
    assert resp.status_code == 200
    return "".join(r["html"] for r in resp.json["rows"])


def test_an_english_users_fetch_after_an_icelandic_colleagues_page_load_answers_in_english(client, two_shops):
    failed = two_shops["cases"]["failed"]["id"]
    assert page(client, "/", locale="en").status_code == 200
    assert "Reyna aftur" in page(client, "/", locale="is-IS").get_data(as_text=True)   # the colleague
    html = rows(client, failed, **{"X-Skilvis-Locale": "en"})
    assert ">Retry<" in html and "Reyna aftur" not in html


RETRY = {"is": ">Reyna aftur<", "en": ">Retry<", "da": ">Prøv igen<"}


@pytest.mark.parametrize("language", sorted(RETRY))
def test_the_pages_header_decides_a_fetchs_language(client, two_shops, language):
    failed = two_shops["cases"]["failed"]["id"]
    for browser in ("is-IS,is;q=0.9", "en-US,en;q=0.9", "da-DK,da;q=0.9"):   # whatever the browser prefers
        html = rows(client, failed, **{"X-Skilvis-Locale": language, "Accept-Language": browser})
        assert RETRY[language] in html
        assert not [text for other, text in RETRY.items() if other != language and text in html]


@pytest.mark.parametrize("locale,badge", [("en-US", "Needs attention"), ("is-IS", "Þarfnast athugunar"),
                                          ("da-DK", "Kræver handling"), ("da", "Kræver handling")])
def test_shopifys_locale_parameter_decides_a_page_loads_language(client, two_shops, locale, badge):
    other = "en" if locale.startswith("is") else "is"
    resp = client.get("/", query_string={"embedded": "1", "shop": SHOP, "id_token": id_token(SHOP), "locale": locale},
                      headers={"X-Skilvis-Locale": other, "Accept-Language": other})
    html = resp.get_data(as_text=True)
    assert f'lang="{locale[:2]}"' in html and badge in html


def test_nothing_about_the_language_is_kept_on_the_shop(client, two_shops):
    before = shops.get(SHOP)
    page(client, "/", locale="en")
    rows(client, two_shops["cases"]["failed"]["id"], **{"X-Skilvis-Locale": "en"})
    assert shops.get(SHOP) == before
    with db.transaction() as conn:
        columns = {r["column_name"] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'shops'")}
    assert "locale" not in columns


@pytest.fixture(scope="module")
def bare_app():
    app = Flask(__name__)
    i18n.init_app(app)
    return app


@pytest.mark.parametrize("query,headers,expect", [
    ({"locale": "en-GB"}, {"X-Skilvis-Locale": "is", "Accept-Language": "is"}, "en"),
    ({"locale": "is"}, {"X-Skilvis-Locale": "en"}, "is"),
    ({}, {"X-Skilvis-Locale": "en", "Accept-Language": "is-IS"}, "en"),
    ({}, {"X-Skilvis-Locale": "is", "Accept-Language": "en-US"}, "is"),
    ({}, {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, "en"),
    ({}, {"Accept-Language": "en-US,is;q=0.9"}, "en"),
    ({}, {"Accept-Language": "de-DE"}, "is"),
    ({}, {}, "is"),
    ({"locale": "da"}, {"X-Skilvis-Locale": "is", "Accept-Language": "is"}, "da"),
    ({"locale": "da-DK"}, {}, "da"),
    ({"locale": "nb-NO"}, {"Accept-Language": "da-DK"}, "en"),   # Norwegian admin: English, as any other
    ({}, {"X-Skilvis-Locale": "da", "Accept-Language": "en-US"}, "da"),
    ({}, {"Accept-Language": "da-DK,da;q=0.9,en;q=0.8"}, "da"),
    ({}, {"Accept-Language": "de-DE,da;q=0.9,is;q=0.8"}, "da"),
])
def test_the_request_says_its_language_locale_then_header_then_browser_then_icelandic(bare_app, query, headers, expect):
    with bare_app.test_request_context("/", query_string=query, headers=headers):
        assert i18n.requested() == expect
        assert i18n.lang() == expect


@pytest.mark.parametrize("n,is_text,en_text,da_text", [
    (1, "1 lína", "1 line", "1 linje"), (2, "2 línur", "2 lines", "2 linjer"), (11, "11 línur", "11 lines", "11 linjer"),
    (21, "21 lína", "21 lines", "21 linjer"), (111, "111 línur", "111 lines", "111 linjer"),
    (0, "0 línur", "0 lines", "0 linjer"),
])
def test_counts_take_the_plural_form_of_each_language(bare_app, n, is_text, en_text, da_text):
    template = "{{ ngettext('%(num)s line', '%(num)s lines', n) }}"
    with bare_app.test_request_context("/"):
        for language, text in (("is", is_text), ("en", en_text), ("da", da_text)):
            with force_locale(language):
                assert i18n.lines_count(n) == text
                assert render_template_string(template, n=n) == text   # the templates' ngettext


def test_a_danish_page_load_writes_money_and_dates_the_danish_way(client, two_shops):
    html = page(client, "/", locale="da-DK").get_data(as_text=True)
    assert 'lang="da"' in html and "Kræver handling" in html
    assert "-5.000 ISK" in html   # an Icelandic shop's krónur: `kr.` is the Danish krone
    assert re.search(r"23\. nov\. 2026 kl\. 14\.\d\d<", html)
    assert "Reyna aftur" not in html and ">Retry<" not in html
