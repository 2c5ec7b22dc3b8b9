"""The sandbox panel (/sandbox): what a merchant does in Shopify, done in the panel, shows up
in the framed app; and App Bridge's stand-in gives a page without an ID token a fresh one.

These change the demo orders #1004 and #1005 (the only open and pending ones), so they live
apart from test_pages.py and run after it."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from shopify_app.sandbox import demo
from tests.browser.conftest import control, row_of, screenshot


def test_sandbox_panel_closes_a_return_and_the_frame_shows_the_credit_invoice(page, sandbox):
    page.goto(f"{sandbox.url}/sandbox?locale=en")
    frame = page.frame_locator("#app-frame")
    expect(row_of(frame, "#1004")).to_have_attribute("data-status", "open")
    screenshot(page, "sandbox-panel-before")
    page.locator('[data-order="#1004"] button[data-do=return_close]').click()
    expect(page.locator("[data-testid=said]")).to_contain_text("#1004")
    expect(row_of(page.frame_locator("#app-frame"), "#1004")).to_have_attribute("data-status", "created",
                                                                                timeout=20_000)
    screenshot(page, "sandbox-panel-after")


def test_sandbox_panel_payment_settles_the_exchange(page, sandbox):
    # #1005: an exchange for dearer boots; Jón owes 5.000 kr. until he pays and the payment settles.
    page.goto(f"{sandbox.url}/sandbox?locale=is")
    order = page.locator('[data-order="#1005"]')
    order.locator("button[data-do=pay]").click()
    expect(page.locator("[data-testid=said]")).to_contain_text("#1005")
    expect(row_of(page.frame_locator("#app-frame"), "#1005")).to_have_attribute("data-status", "pending_settlement")
    page.locator('[data-order="#1005"] button[data-do=settle]').first.click()
    expect(row_of(page.frame_locator("#app-frame"), "#1005")).to_have_attribute("data-status", "created",
                                                                                timeout=20_000)
    screenshot(page, "sandbox-panel-settled")


def test_a_page_opened_without_an_id_token_gets_one_from_the_app_bridge_stand_in(page, sandbox):
    # As when Shopify reloads an old URL: the bounce page asks App Bridge (here the sandbox's
    # stand-in) for a fresh token and comes back with it.
    page.goto(f"{sandbox.url}/settings?embedded=1&shop={demo.SHOP}&locale=en")
    page.wait_for_url(re.compile(r"/settings\?.*id_token="))
    expect(control(page, "payday-client-id")).to_be_visible()
