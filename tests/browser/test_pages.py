"""The merchant's pages in a real browser, against the sandbox's demo shop (sandbox/demo.py):
every status on the home page in both languages, filter and search, the detail page, Retry,
a credit by hand (also for an order found by its name), and the settings' connection test.

The demo shop is shared by the session and these tests change it (Retry, the credit), each in
a way the others allow for; test_sandbox_panel.py, which runs after, changes more."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from shopify_app.sandbox import demo
from tests.browser.conftest import EVERY_STATUS, ROWS, control, row_of, screenshot
from tests.test_processes import wait_for


def statuses(page) -> list[str]:
    return page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.status)")


def test_home_shows_every_status_in_icelandic_and_in_english(page, sandbox):
    badges = {}
    for locale in ("is", "en"):
        page.goto(sandbox.app_url("/", locale=locale))
        expect(page.locator(ROWS).first).to_be_visible()
        assert page.locator("html").get_attribute("lang") == locale
        assert set(statuses(page)) >= EVERY_STATUS
        badges[locale] = {status: row.locator("[data-testid=status]").first.inner_text().strip()
                          for status in EVERY_STATUS
                          for row in [page.locator(f"{ROWS}[data-status={status}]").first]}
        screenshot(page, f"home-{locale}")
    assert badges["en"]["created"] == "Recorded in Payday"
    assert all(badges["is"][s] != badges["en"][s] for s in EVERY_STATUS), badges
    # Pending settlement says what it waits for, in Icelandic money: Jón owes 5.000 kr.
    page.goto(sandbox.app_url("/", locale="is"))
    expect(row_of(page, "#1005")).to_contain_text("5.000 kr.")
    assert not page.js_errors


def test_filter_by_status_and_search_by_order_or_customer(page, sandbox):
    page.goto(sandbox.app_url("/", locale="en"))
    expect(page.locator(ROWS).first).to_be_visible()
    everything = page.locator(ROWS).count()

    control(page, "status-filter").select_option("none_needed")
    page.wait_for_url(re.compile(r"status=none_needed"))
    expect(page.locator(ROWS)).to_have_count(1)
    assert statuses(page) == ["none_needed"]
    expect(row_of(page, "#1003")).to_be_visible()
    screenshot(page, "home-filtered")

    control(page, "status-filter").select_option("")
    page.wait_for_url(lambda url: "status=" not in url)
    expect(page.locator(ROWS)).to_have_count(everything)

    control(page, "search").fill("Helga")
    control(page, "search").press("Enter")
    page.wait_for_url(re.compile(r"q=Helga"))
    expect(page.locator(ROWS)).to_have_count(1)
    expect(row_of(page, "#1004")).to_be_visible()

    control(page, "search").fill("#1002")
    control(page, "search").press("Enter")
    page.wait_for_url(re.compile(r"q=%231002"))
    expect(page.locator(ROWS)).to_have_count(1)
    expect(row_of(page, "#1002")).to_be_visible()
    screenshot(page, "home-search")


def test_detail_page_shows_the_timeline_and_the_document_sent_to_payday(page, sandbox):
    page.goto(sandbox.app_url("/", locale="en"))
    row_of(page, "#1001").locator("[data-testid=case-link]").click()
    page.wait_for_url(re.compile(r"/cases/\d+"))
    timeline = page.locator("[data-testid=timeline] :is(li, s-list-item)")
    expect(timeline.first).to_be_visible()
    assert timeline.count() >= 3   # webhooks received, the decision, the Payday call, the status
    document = page.locator("[data-testid=document]").first
    expect(document).to_contain_text("Lopapeysa")
    expect(document).to_contain_text("18,900")   # English money
    screenshot(page, "detail-en")
    page.goto(page.url.replace("locale=en", "locale=is"))
    expect(page.locator("[data-testid=document]").first).to_contain_text("18.900")
    screenshot(page, "detail-is")


def test_retry_turns_a_failed_credit_invoice_into_a_created_one(page, sandbox):
    # #1007's invoice was refused once by Payday (its setup unfinished); now Payday accepts it.
    page.goto(sandbox.app_url("/", locale="en"))
    row = row_of(page, "#1007")
    expect(row).to_have_attribute("data-status", "failed")
    expect(row.locator("[data-testid=reason]")).to_be_visible()
    screenshot(page, "retry-before")
    row.locator("[data-action=retry]").click()
    # No reload: the row refreshes itself while the work is in flight.
    expect(row_of(page, "#1007")).to_have_attribute("data-status", "created", timeout=30_000)
    screenshot(page, "retry-after")
    # #1006 fails for a VAT rate Payday does not have: no Retry can fix that, and none is offered.
    expect(row_of(page, "#1006")).to_have_attribute("data-status", "failed")
    assert not page.js_errors


def test_credit_by_hand_previews_the_lines_and_creates_the_invoice(page, sandbox):
    # #1001: two sweaters, one returned and credited; the other and the shipping are credited by hand.
    order_id = sandbox.order_id("#1001")
    before = len(sandbox.rows("SELECT id FROM documents WHERE order_id = %s AND status = 'sent'", order_id))
    page.goto(sandbox.app_url(f"/orders/{order_id}/credit", locale="is"))
    form = page.locator("form#credit-form")
    expect(form).to_be_visible()
    form.locator('input[name^="qty-"]').first.fill("1")
    shipping = form.locator("input[name=shipping]")
    if shipping.get_attribute("type") == "checkbox":
        shipping.check()
    else:
        shipping.fill("1500")
    page.click("#preview")
    expect(page.locator("[data-testid=preview-line]")).to_have_count(2)
    expect(page.locator("[data-testid=preview-total]")).to_contain_text("20.400")
    screenshot(page, "credit-preview")
    page.click("#create")
    wait_for(lambda: len(sandbox.rows("SELECT id FROM documents WHERE order_id = %s AND status = 'sent'",
                                      order_id)) == before + 1, timeout=30)
    screenshot(page, "credit-created")


def test_any_order_is_found_by_its_name_for_a_credit_by_hand(page, sandbox):
    page.goto(sandbox.app_url("/", locale="en"))
    control(page, "order-name").fill("#9999")
    control(page, "order-name").press("Enter")
    expect(page.locator("[data-testid=find-message]")).to_have_text("Shopify has no order named #9999.")
    control(page, "order-name").fill("1009")
    control(page, "order-name").press("Enter")
    page.wait_for_url(re.compile(r"/orders/\d+/credit"))
    expect(page.locator("form#credit-form")).to_be_visible()
    assert "#1009" in page.content()
    screenshot(page, "credit-find")
    assert not page.js_errors


def test_settings_test_connection_fails_with_wrong_credentials_and_passes_with_right_ones(page, sandbox):
    page.goto(sandbox.app_url("/settings", locale="en"))
    result = page.locator("[data-testid=connection-result]")
    control(page, "payday-client-id").fill("not-a-client")
    control(page, "payday-client-secret").fill("wrong-secret")
    control(page, "payday-environment").select_option("test")
    page.click("#test-connection")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).not_to_be_empty()
    screenshot(page, "settings-connection-failed")

    control(page, "payday-client-id").fill(demo.PAYDAY_CLIENT[0])
    control(page, "payday-client-secret").fill(demo.PAYDAY_CLIENT[1])
    page.click("#test-connection")
    expect(result).to_have_attribute("data-ok", "true")
    screenshot(page, "settings-connection-ok")
    for item in page.locator("[data-testid=checklist] :is(li, s-list-item)").all():
        assert item.get_attribute("data-done") in ("true", "false")
