"""The language is the person's, not the shop's: each request says its own (Shopify's `locale` on a
document load, the page's X-Skilvis-Locale header on its fetches, else Accept-Language, else
Icelandic), nothing about it is stored on the shop, and counts read right in both languages."""
from __future__ import annotations

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


@pytest.mark.parametrize("language,retry", [("is", ">Reyna aftur<"), ("en", ">Retry<")])
def test_the_pages_header_decides_a_fetchs_language(client, two_shops, language, retry):
    failed = two_shops["cases"]["failed"]["id"]
    other = ">Retry<" if language == "is" else ">Reyna aftur<"
    for browser in ("is-IS,is;q=0.9", "en-US,en;q=0.9"):   # whatever the browser prefers
        html = rows(client, failed, **{"X-Skilvis-Locale": language, "Accept-Language": browser})
        assert retry in html and other not in html


@pytest.mark.parametrize("locale,badge", [("en-US", "Needs attention"), ("is-IS", "Þarfnast athugunar")])
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
])
def test_the_request_says_its_language_locale_then_header_then_browser_then_icelandic(bare_app, query, headers, expect):
    with bare_app.test_request_context("/", query_string=query, headers=headers):
        assert i18n.requested() == expect
        assert i18n.lang() == expect


@pytest.mark.parametrize("n,is_text,en_text", [
    (1, "1 lína", "1 line"), (2, "2 línur", "2 lines"), (11, "11 línur", "11 lines"),
    (21, "21 lína", "21 lines"), (111, "111 línur", "111 lines"), (0, "0 línur", "0 lines"),
])
def test_counts_take_the_plural_form_of_each_language(bare_app, n, is_text, en_text):
    template = "{{ ngettext('%(num)s line', '%(num)s lines', n) }}"
    with bare_app.test_request_context("/"):
        for language, text in (("is", is_text), ("en", en_text)):
            with force_locale(language):
                assert i18n.lines_count(n) == text
                assert render_template_string(template, n=n) == text   # the templates' ngettext
