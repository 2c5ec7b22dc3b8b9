"""The merchant's pages as the browser tests open them: every page a merchant meets in Shopify
admin (the sandbox panel is Shopify's stand-in, not one of them), at the two widths admin is
used at, in the two languages Shopify passes as `locale`."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from tests.browser.conftest import ROOT, SCREENSHOTS

LOCALES = ("is", "en")
# A desktop browser, and a phone: Shopify's mobile app gives the frame the whole screen width.
WIDTHS = (1440, 390)
HEIGHTS = {1440: 900, 390: 844}
EMPTY_SHOP = "skilvis-tom.myshopify.com"   # installed, no orders: the empty state a new merchant sees


@dataclass(frozen=True)
class MerchantPage:
    name: str
    order: str | None = None   # the demo order the page is about
    shop: str | None = None
    has_dates: bool = False    # the page shows dates (in a list or a timeline)

    def path(self, sandbox) -> str:
        if self.name.startswith("case"):
            return f"/cases/{sandbox.case_id(self.order)}"
        if self.name == "credit":
            return f"/orders/{sandbox.order_id(self.order)}/credit"
        return "/settings" if self.name == "settings" else "/"


PAGES = (
    MerchantPage("home", has_dates=True),
    MerchantPage("home-empty", shop=EMPTY_SHOP),
    # A case whose credit invoice is in Payday, and one that failed (a VAT rate Payday lacks)
    # with its advice to the merchant: the detail page's two shapes.
    MerchantPage("case-created", order="#1001", has_dates=True),
    MerchantPage("case-failed", order="#1006", has_dates=True),
    MerchantPage("credit", order="#1001"),
    MerchantPage("settings"),
)

# Copied into docs/ for the README when this is set (the lead refreshes them after a change of
# look); otherwise every run would leave docs/ changed.
DOCS_SCREENSHOTS = {("home", "en", 1440): "home-1440-en.png", ("home", "is", 390): "home-390-is.png"}
UPDATE_DOCS = os.environ.get("SKILVIS_UPDATE_DOCS_SCREENSHOTS") == "1"


def new_view(browser, width: int):
    """A browser context at `width`, its page recording script errors as `page.js_errors`."""
    context = browser.new_context(viewport={"width": width, "height": HEIGHTS[width]})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    return context, page


def open_page(page, sandbox, merchant_page: MerchantPage, locale: str) -> None:
    shop = {"shop": merchant_page.shop} if merchant_page.shop else {}
    page.goto(sandbox.app_url(merchant_page.path(sandbox), locale=locale, **shop))
    page.evaluate("document.fonts.ready.then(() => true)")


def save_screenshot(page, merchant_page: MerchantPage, locale: str, width: int):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{merchant_page.name}-{locale}-{width}.png"
    page.screenshot(path=str(path), full_page=True)
    docs_name = DOCS_SCREENSHOTS.get((merchant_page.name, locale, width))
    if docs_name and UPDATE_DOCS:
        (ROOT / "docs" / "screenshots").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "docs" / "screenshots" / docs_name)
    return path
