"""Without Shopify's CDN (App Bridge and Polaris' scripts refused, as on a blocked network or
when the CDN is down) the pages still read and still work: a case opens from the home list and
its back action leads home, and the status filter narrows the list. At both widths, in both
languages. The sandbox serves its own App Bridge stand-in (static/sandbox-app-bridge.js);
whatever the base template loads from cdn.shopify.com is refused here."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.merchant_pages import LOCALES, WIDTHS, new_view

CDN = re.compile(r"^https?://cdn\.shopify\.com/")
CASES = "[data-case-id][data-status]"   # one per case in the home list, as a table row or a stacked item


@pytest.fixture(params=[(w, loc) for w in WIDTHS for loc in LOCALES], ids=lambda p: f"{p[1]}-{p[0]}")
def offline_page(request, browser):
    width, locale = request.param
    context, page = new_view(browser, width)
    context.route(CDN, lambda route: route.abort())
    page.locale = locale
    yield page
    context.close()


def _reads(page) -> None:
    """The page says where the merchant is: a visible h1 with words in it."""
    h1 = page.locator("h1").filter(visible=True)
    expect(h1).to_have_count(1)
    assert h1.inner_text().strip()


def test_without_the_cdn_a_case_opens_from_home_and_the_back_action_leads_home(offline_page, sandbox):
    page = offline_page
    page.goto(sandbox.app_url("/", locale=page.locale))
    _reads(page)
    case_id = sandbox.case_id("#1001")
    page.locator(f'[href*="/cases/{case_id}?"], [href$="/cases/{case_id}"]').filter(visible=True).first.click()
    page.wait_for_url(re.compile(r"/cases/\d+"))
    _reads(page)
    assert f"locale={page.locale}" in page.url, "the case page lost the merchant's language"
    # The back action (s-page's breadcrumb, drawn without Polaris too), else any visible link home.
    candidates = page.locator('[slot="breadcrumb-actions"][href], [slot="breadcrumb-actions"] [href]').filter(visible=True).all() \
        + page.locator("[href]").filter(visible=True).all()
    back = [el for el in candidates if not urlsplit(el.get_attribute("href")).netloc
            and urlsplit(el.get_attribute("href")).path == "/"]
    assert back, "no visible link back to the home page on the case page"
    back[0].click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    expect(page.locator(CASES).filter(visible=True).first).to_be_visible()
    assert not page.js_errors, page.js_errors


def test_without_the_cdn_the_status_filter_narrows_the_list(offline_page, sandbox):
    page = offline_page
    page.goto(sandbox.app_url("/", locale=page.locale))
    _reads(page)
    expect(page.locator(CASES).filter(visible=True).first).to_be_visible()
    everything = page.locator(CASES).filter(visible=True).count()
    # Polaris' s-select needs its script; without it the page must still offer a real <select>.
    status = page.locator("select[name=status]").filter(visible=True)
    expect(status, "no visible <select name=status> without the CDN").to_have_count(1)
    status.select_option("none_needed")
    page.wait_for_url(re.compile(r"status=none_needed"))
    shown = page.locator(CASES).filter(visible=True)
    expect(shown).to_have_count(1)
    assert shown.evaluate_all("rows => rows.map(r => r.dataset.status)") == ["none_needed"]
    expect(shown).to_contain_text("#1003")
    page.locator("select[name=status]").filter(visible=True).select_option("")
    page.wait_for_url(lambda url: "status=none_needed" not in url)
    expect(page.locator(CASES).filter(visible=True)).to_have_count(everything)
    assert not page.js_errors, page.js_errors
