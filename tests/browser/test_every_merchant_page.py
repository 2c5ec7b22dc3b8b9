"""Every merchant page (home with cases and empty, a case's detail in its two shapes, a credit by
hand, settings) at 1440 and 390 px, in Icelandic and in English: accessible (axe-core finds
nothing serious or critical; one h1, a main landmark, every field labelled, every button named
for what it acts on) and laid out for the width (no sideways scrolling; dates on one line on a
desktop). Each page is opened once per width and language, its screenshot saved, and every
check below reads that one page.

Nothing here changes the demo shop, so it may run before test_pages.py, which does."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.browser import a11y
from tests.browser.conftest import SCREENSHOTS
from tests.browser.merchant_pages import EMPTY_SHOP, LOCALES, PAGES, WIDTHS, new_view, open_page, save_screenshot

VIEWS = [(p, locale, width) for p in PAGES for locale in LOCALES for width in WIDTHS]


@pytest.fixture(scope="module")
def empty_shop(sandbox):
    sandbox.install_empty_shop(EMPTY_SHOP)
    return EMPTY_SHOP


# Module scope, parametrized: pytest runs every check of one view before opening the next.
@pytest.fixture(scope="module", params=VIEWS, ids=[f"{p.name}-{loc}-{w}" for p, loc, w in VIEWS])
def view(request, browser, sandbox, empty_shop):
    merchant_page, locale, width = request.param
    context, page = new_view(browser, width)
    open_page(page, sandbox, merchant_page, locale)
    save_screenshot(page, merchant_page, locale, width)
    page.view = request.param
    yield page
    context.close()


def test_page_is_in_the_language_shopify_passes(view):
    _, locale, _ = view.view
    assert view.locator("html").get_attribute("lang") == locale


def test_page_loads_without_script_errors(view):
    assert not view.js_errors, view.js_errors


def test_axe_finds_no_serious_or_critical_violation(view):
    merchant_page, locale, width = view.view
    violations = a11y.axe_violations(view)
    # Every violation, minor ones too, for whoever fixes the page.
    report = SCREENSHOTS / "axe" / f"{merchant_page.name}-{locale}-{width}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(violations, indent=1, ensure_ascii=False))
    serious = a11y.blocking(violations)
    assert not serious, f"axe-core on {merchant_page.name} ({locale}, {width} px):\n{a11y.describe_violations(serious)}"


def test_page_has_exactly_one_h1(view):
    h1 = [n for n in a11y.ax_tree(view) if n.role == "heading" and n.level == 1]
    assert len(h1) == 1, f"h1 headings: {[(n.element, n.name) for n in h1]}"
    assert h1[0].name, f"the h1 ({h1[0].element}) has no text"


def test_page_has_one_main_landmark(view):
    main = [n for n in a11y.ax_tree(view) if n.role == "main"]
    assert len(main) == 1, f"main landmarks: {[n.element for n in main]}"


def test_every_input_and_select_is_labelled(view):
    unlabelled = [n.element for n in a11y.ax_tree(view) if n.role in a11y.FORM_CONTROL_ROLES and not n.name]
    assert not unlabelled, f"fields without a label: {unlabelled}"


def test_buttons_say_what_they_act_on(view):
    # Several buttons named alike ("Retry", "Retry", …) leave a screen reader user guessing which
    # row each acts on; a button without a name says nothing at all.
    buttons = [n for n in a11y.ax_tree(view) if n.role == "button"]
    nameless = [n.element for n in buttons if not n.name]
    alike = {name: count for name, count in Counter(n.name.casefold() for n in buttons if n.name).items()
             if count > 1}
    assert not nameless, f"buttons without a name: {nameless}"
    assert not alike, f"buttons sharing a name (name: how many): {alike}"


OVERFLOW = """() => {
  const all = [];
  (function walk(root) {
    for (const el of root.querySelectorAll('*')) { all.push(el); if (el.shadowRoot) walk(el.shadowRoot); }
  })(document);
  const describe = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + (el.getAttribute('data-testid') ? `[data-testid=${el.getAttribute('data-testid')}]` : '')
    + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
  const width = window.innerWidth;
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  // The outermost elements reaching past the right edge: where the page got too wide.
  const past = all.filter(el => visible(el) && el.getBoundingClientRect().right > width + 1
                                && !(el.parentElement && el.parentElement.getBoundingClientRect().right > width + 1));
  const scrollers = all.filter(el => {
    const x = getComputedStyle(el).overflowX;
    return (x === 'auto' || x === 'scroll') && el.scrollWidth > el.clientWidth + 1 && el !== document.documentElement;
  });
  return {scrollWidth: document.documentElement.scrollWidth, width,
          past: past.slice(0, 8).map(el => `${describe(el)} (right edge ${Math.round(el.getBoundingClientRect().right)} px)`),
          scrollers: scrollers.map(el => `${describe(el)} (${el.scrollWidth} px in ${el.clientWidth} px)`)};
}"""


def test_page_fits_its_width_without_scrolling_sideways(view):
    found = view.evaluate(OVERFLOW)
    assert found["scrollWidth"] <= found["width"], \
        f"the page is {found['scrollWidth']} px wide in a {found['width']} px window; too wide: {found['past']}"
    # A table scrolling inside its card is sideways scrolling too: at 390 px the list is stacked.
    assert not found["scrollers"], f"parts that scroll sideways: {found['scrollers']}"


# A date is a <time> (or the home list's "last change" cell); its line boxes show whether it wrapped.
DATE_LINES = """() => [...document.querySelectorAll('time, [data-testid=updated]')]
  .filter(el => el.getClientRects().length && el.textContent.trim())
  .map(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.top).sort((a, b) => a - b);
    const gap = parseFloat(getComputedStyle(el).fontSize) / 2;
    const lines = tops.filter((top, i) => i === 0 || top - tops[i - 1] > gap).length;
    return {text: el.textContent.trim(), lines};
  })"""


def test_dates_stay_on_one_line_on_a_desktop(view):
    merchant_page, _, width = view.view
    if width < 1440 or not merchant_page.has_dates:
        pytest.skip("dates may wrap on a phone" if width < 1440 else "no dates on this page")
    dates = view.evaluate(DATE_LINES)
    assert dates, "no date found on the page (dates are <time> elements, or the list's data-testid=updated cells)"
    wrapped = [d for d in dates if d["lines"] > 1]
    assert not wrapped, f"dates wrapped over several lines: {wrapped}"
